"""compute_indicators against TA-Lib itself, the reference users compare with."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib

from stockpipe.models import INDICATOR_COLUMNS
from stockpipe.stages.indicators import compute_indicators

TOLERANCE = 1e-9
OUTPUT_COLUMNS = ["symbol", "date", *INDICATOR_COLUMNS]
# Edge lengths around every lookback (SMA 19, EMA 11, RSI 14), then long histories.
EDGE_LENGTHS = [1, 2, 11, 12, 13, 14, 15, 16, 19, 20, 21, 1000, 1500, 2600]


def random_walk(
    rng: np.random.Generator, length: int, start: float | None = None, vol: float = 0.02
) -> np.ndarray:
    """Closes with `vol` daily log returns from a realistic start price."""
    first = rng.uniform(2.0, 800.0) if start is None else start
    return first * np.exp(np.cumsum(rng.normal(0.0, vol, length)))


def frame_of(histories: dict[str, np.ndarray]) -> pd.DataFrame:
    """A prices frame (with the other OHLCV columns) from closes per symbol."""
    frames = []
    for symbol, close in histories.items():
        dates = pd.bdate_range("2010-01-04", periods=len(close))
        frames.append(pd.DataFrame({"symbol": symbol, "date": dates, "open": close,
                                    "close": close, "volume": 1000}))
    columns = ["symbol", "date", "open", "close", "volume"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def reference(close: np.ndarray, sma: int = 20, ema: int = 12, rsi: int = 14) -> dict:
    """TA-Lib's values for one symbol, by output column."""
    values = (talib.SMA(close, sma), talib.EMA(close, ema), talib.RSI(close, rsi))
    return dict(zip(INDICATOR_COLUMNS, values))


def assert_matches_talib(out: pd.DataFrame, histories: dict[str, np.ndarray], **periods) -> None:
    """Every symbol's every column: NaN exactly where TA-Lib's is, else within TOLERANCE."""
    assert list(out.columns) == OUTPUT_COLUMNS
    assert len(out) == sum(len(close) for close in histories.values())
    for symbol, rows in out.groupby("symbol", sort=False):
        expected = reference(histories[symbol], **periods)
        for name, values in expected.items():
            got, where = rows[name].to_numpy(), f"{symbol} {name}"
            np.testing.assert_array_equal(np.isnan(got), np.isnan(values), err_msg=where)
            worst = np.max(np.abs(got - values), initial=0.0, where=~np.isnan(values))
            assert worst <= TOLERANCE, f"{where}: off by {worst}"


@pytest.fixture(scope="module")
def universe() -> dict[str, np.ndarray]:
    """520 symbols: every edge length, then random lengths up to 1,200 bars."""
    rng = np.random.default_rng(20240614)
    lengths = EDGE_LENGTHS + rng.integers(1, 1200, size=520 - len(EDGE_LENGTHS)).tolist()
    return {f"S{i:03d}": random_walk(rng, length) for i, length in enumerate(lengths)}


def test_many_symbols_shuffled_equal_talib(universe):
    prices = frame_of(universe)
    shuffled = prices.sample(frac=1.0, random_state=np.random.default_rng(3))
    assert_matches_talib(compute_indicators(shuffled), universe)


def test_output_sorted_one_row_per_input_row(universe):
    prices = frame_of(universe).sample(frac=1.0, random_state=np.random.default_rng(4))
    out = compute_indicators(prices)
    expected = prices[["symbol", "date"]].sort_values(["symbol", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(out[["symbol", "date"]], expected)
    assert (out[list(INDICATOR_COLUMNS)].dtypes == np.float64).all()


def test_sorted_input_takes_the_same_path_to_the_same_values(universe):
    prices = frame_of(universe)
    shuffled = prices.sample(frac=1.0, random_state=np.random.default_rng(5))
    pd.testing.assert_frame_equal(compute_indicators(prices), compute_indicators(shuffled))


def test_symbols_shorter_than_a_lookback_get_nan():
    histories = {"A": np.linspace(10.0, 12.0, 12), "B": np.linspace(5.0, 4.0, 14)}
    out = compute_indicators(frame_of(histories)).set_index("symbol")
    assert out.loc["A", "sma_20"].isna().all() and out.loc["A", "rsi_14"].isna().all()
    assert out.loc["A", "ema_12"].notna().sum() == 1  # bar 11 is EMA(12)'s first value
    assert out.loc["B", "rsi_14"].isna().all()  # RSI(14) needs 15 bars


def test_flat_series_gives_talib_rsi_of_zero():
    histories = {"FLAT": np.full(60, 42.5), "FLAT_THEN_UP": np.r_[np.full(30, 10.0), 10.5, 11.0]}
    out = compute_indicators(frame_of(histories))
    assert_matches_talib(out, histories)
    flat = out[out["symbol"] == "FLAT"]
    assert (flat["rsi_14"].iloc[14:] == 0.0).all()


def test_single_symbol_long_history():
    histories = {"ONLY": random_walk(np.random.default_rng(7), 10_000)}
    assert_matches_talib(compute_indicators(frame_of(histories)), histories)


def test_custom_periods_keep_the_column_names(universe):
    histories = dict(list(universe.items())[:60])
    out = compute_indicators(frame_of(histories), sma=5, ema=3, rsi=2)
    assert_matches_talib(out, histories, sma=5, ema=3, rsi=2)


def test_sma_does_not_drift_on_long_expensive_histories():
    """Running sums restart every 64 bars: error does not grow with history length.

    An index near 30,000 over 50,000 bars: a plain cumulative sum reaches 1.5e9, where one
    rounding step is 2.4e-7, so its windows are off by ~6e-8; the check on it below shows
    this data catches drift. Exact windows come from math.fsum. (TA-Lib's own running sum,
    never restarted, is off by 2.9e-10 here; this module by ~4e-11.)
    """
    close = random_walk(np.random.default_rng(11), 50_000, start=30_000.0, vol=0.002)
    got = compute_indicators(frame_of({"IDX": close}))["sma_20"].to_numpy()
    exact = np.array([math.fsum(close[i - 19 : i + 1]) / 20 for i in range(19, len(close))])
    assert np.max(np.abs(got[19:] - exact)) <= 2e-10
    running = np.cumsum(close)
    naive = (running[19:] - np.r_[0.0, running[:-20]]) / 20
    assert np.max(np.abs(naive - exact)) > TOLERANCE


def test_extra_columns_ignored_and_input_untouched(universe):
    prices = frame_of(dict(list(universe.items())[:20]))
    before = prices.copy()
    compute_indicators(prices)
    pd.testing.assert_frame_equal(prices, before)


def test_empty_frame_gives_empty_frame_with_the_columns():
    out = compute_indicators(frame_of({}))
    assert list(out.columns) == OUTPUT_COLUMNS and out.empty


@pytest.mark.parametrize("periods", [{"sma": 1}, {"ema": 0}, {"rsi": 1}])
def test_period_below_talib_minimum_is_rejected(periods):
    with pytest.raises(ValueError, match=">= 2"):
        compute_indicators(frame_of({"A": np.ones(30)}), **periods)


def test_missing_close_column_is_rejected():
    with pytest.raises(ValueError, match="close"):
        compute_indicators(frame_of({"A": np.ones(30)}).drop(columns="close"))
