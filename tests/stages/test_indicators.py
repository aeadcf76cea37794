"""compute_indicators against TA-Lib itself (the reference users compare with) and, for the
columns TA-Lib lacks, against plain per-symbol numpy written out in this file."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import talib
from numpy.lib.stride_tricks import sliding_window_view

from stockpipe.models import INDICATOR_COLUMNS
from stockpipe.stages import indicators
from stockpipe.stages.indicators import compute_indicators

TOLERANCE = 1e-9
OUTPUT_COLUMNS = ["symbol", "date", *INDICATOR_COLUMNS]
TALIB_COLUMNS = INDICATOR_COLUMNS[: INDICATOR_COLUMNS.index("mom_10") + 1]
OTHER_COLUMNS = INDICATOR_COLUMNS[len(TALIB_COLUMNS) :]
# First non-NaN bar of each column (0-based), as the module docstring documents and as
# TA-Lib 0.8 aligns them; test_first_values_where_documented checks it on TA-Lib too.
FIRST_BAR = {
    "sma_5": 4, "sma_10": 9, "sma_20": 19, "sma_50": 49, "sma_200": 199, "ema_12": 11,
    "ema_26": 25, "ema_50": 49, "macd": 33, "macd_signal": 33, "macd_hist": 33, "rsi_14": 14,
    "bb_middle": 19, "bb_upper": 19, "bb_lower": 19, "atr_14": 14, "stoch_k": 17,
    "stoch_d": 17, "adx_14": 27, "plus_di_14": 14, "minus_di_14": 14, "cci_20": 19,
    "willr_14": 13, "mfi_14": 14, "obv": 0, "roc_10": 10, "mom_10": 10, "return_1d": 1,
    "log_return_1d": 1, "volatility_30d": 30, "high_52w": 251, "low_52w": 251,
    "pct_from_high_52w": 251, "drawdown": 0,
}
# Lengths on both sides of every lookback, then long histories.
EDGE_LENGTHS = sorted(
    {1, 2, 3, 600, 1000, 2600} | {bar + step for bar in FIRST_BAR.values() for step in (0, 1)}
)


def random_bars(
    rng: np.random.Generator, length: int, *, start: float | None = None, vol: float = 0.02
) -> dict[str, np.ndarray]:
    """Real-shaped daily OHLCV: a random walk with gaps, high >= max(open, close) and
    low <= min(open, close), flat stretches (a halted stock: O = H = L = C) and days
    without volume."""
    first = rng.uniform(2.0, 800.0) if start is None else start
    close = first * np.exp(np.cumsum(rng.normal(0.0, vol, length)))
    previous = np.r_[first, close[:-1]]
    open_ = previous * np.exp(rng.normal(0.0, vol / 4, length))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, vol, length))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, vol, length))
    volume = rng.integers(0, 5_000_000, length).astype(np.float64)
    volume[rng.random(length) < 0.05] = 0.0
    for _ in range(rng.integers(0, 4) if length > 40 else 0):  # flat stretches
        begin = int(rng.integers(1, length - 1))
        end = min(length, begin + int(rng.integers(2, 60)))
        open_[begin:end] = high[begin:end] = low[begin:end] = close[begin:end] = close[begin - 1]
        volume[begin:end] = np.where(rng.random(end - begin) < 0.5, 0.0, volume[begin:end])
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def frame_of(histories: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """A prices frame (symbol, date, OHLCV) from bars per symbol, business days from 2010."""
    frames = []
    for symbol, bars in histories.items():
        dates = pd.bdate_range("2010-01-04", periods=len(bars["close"]))
        frames.append(pd.DataFrame({"symbol": symbol, "date": dates, **bars}))
    columns = ["symbol", "date", "open", "high", "low", "close", "volume"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def talib_reference(bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TA-Lib's own values for one symbol (its public API), by output column."""
    c, h, l, v = bars["close"], bars["high"], bars["low"], bars["volume"]
    upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2, nbdevdn=2, matype=0)
    values = (
        talib.SMA(c, 5), talib.SMA(c, 10), talib.SMA(c, 20), talib.SMA(c, 50), talib.SMA(c, 200),
        talib.EMA(c, 12), talib.EMA(c, 26), talib.EMA(c, 50),
        *talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9),
        talib.RSI(c, 14), middle, upper, lower, talib.ATR(h, l, c, 14),
        *talib.STOCH(h, l, c, fastk_period=14, slowk_period=3, slowk_matype=0,
                     slowd_period=3, slowd_matype=0),
        talib.ADX(h, l, c, 14), talib.PLUS_DI(h, l, c, 14), talib.MINUS_DI(h, l, c, 14),
        talib.CCI(h, l, c, 20), talib.WILLR(h, l, c, 14), talib.MFI(h, l, c, v, 14),
        talib.OBV(c, v), talib.ROC(c, 10), talib.MOM(c, 10),
    )
    return dict(zip(TALIB_COLUMNS, values))


def numpy_reference(bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The columns TA-Lib lacks, the plain way: one symbol, whole windows, numpy."""
    close, high, low = bars["close"], bars["high"], bars["low"]
    length = len(close)
    ratio = np.full(length, np.nan)
    ratio[1:] = close[1:] / close[:-1]
    log_return = np.log(ratio)
    volatility = np.full(length, np.nan)
    if length > 30:  # the 30 returns of bars t-29..t, from bar 30 (bar 0 has none)
        windows = sliding_window_view(log_return[1:], 30)
        volatility[30:] = np.std(windows, axis=1, ddof=1) * math.sqrt(252)
    high_52w, low_52w = np.full(length, np.nan), np.full(length, np.nan)
    if length >= 252:
        high_52w[251:] = sliding_window_view(high, 252).max(axis=1)
        low_52w[251:] = sliding_window_view(low, 252).min(axis=1)
    return {
        "return_1d": ratio - 1, "log_return_1d": log_return, "volatility_30d": volatility,
        "high_52w": high_52w, "low_52w": low_52w, "pct_from_high_52w": close / high_52w - 1,
        "drawdown": close / np.maximum.accumulate(close) - 1,
    }


def assert_close(got: np.ndarray, expected: np.ndarray, where: str) -> None:
    """NaN exactly where expected is NaN, elsewhere within TOLERANCE."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=where)
    worst = np.max(np.abs(got - expected), initial=0.0, where=~np.isnan(expected))
    assert worst <= TOLERANCE, f"{where}: off by {worst}"


def by_symbol(out: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {symbol: rows for symbol, rows in out.groupby("symbol", sort=False)}


@pytest.fixture(scope="module")
def universe() -> dict[str, dict[str, np.ndarray]]:
    """540 symbols: every length around a lookback, then random lengths up to 1,200 bars."""
    rng = np.random.default_rng(20240614)
    lengths = EDGE_LENGTHS + rng.integers(1, 1200, size=540 - len(EDGE_LENGTHS)).tolist()
    return {f"S{i:03d}": random_bars(rng, length) for i, length in enumerate(lengths)}


@pytest.fixture(scope="module")
def universe_out(universe) -> pd.DataFrame:
    prices = frame_of(universe).sample(frac=1.0, random_state=np.random.default_rng(3))
    return compute_indicators(prices)


def test_talib_columns_equal_talib_on_many_symbols_shuffled(universe, universe_out):
    assert list(universe_out.columns) == OUTPUT_COLUMNS
    assert len(universe_out) == sum(len(bars["close"]) for bars in universe.values())
    for symbol, rows in by_symbol(universe_out).items():
        for name, expected in talib_reference(universe[symbol]).items():
            assert_close(rows[name].to_numpy(), expected, f"{symbol} {name}")


def test_talib_columns_are_talib_bit_for_bit(universe, universe_out):
    """The module calls TA-Lib itself, so not even the last bit differs."""
    for symbol, rows in list(by_symbol(universe_out).items())[::7]:
        for name, expected in talib_reference(universe[symbol]).items():
            np.testing.assert_array_equal(rows[name].to_numpy(), expected, f"{symbol} {name}")


def test_other_columns_equal_plain_numpy(universe, universe_out):
    for symbol, rows in by_symbol(universe_out).items():
        for name, expected in numpy_reference(universe[symbol]).items():
            assert_close(rows[name].to_numpy(), expected, f"{symbol} {name}")


def test_first_values_where_documented():
    bars = random_bars(np.random.default_rng(1), 400)
    out = compute_indicators(frame_of({"A": bars}))
    expected = {**talib_reference(bars), **numpy_reference(bars)}
    for name, bar in FIRST_BAR.items():
        got = out[name].to_numpy()
        assert np.isnan(got[:bar]).all() and not np.isnan(got[bar:]).any(), name
        assert np.argmax(~np.isnan(expected[name])) == bar, f"{name}: TA-Lib moved"


def test_every_column_nan_on_a_history_shorter_than_its_lookback():
    for length in (1, 5, 14, 33):
        bars = random_bars(np.random.default_rng(length), length)
        out = compute_indicators(frame_of({"A": bars}))
        for name, bar in FIRST_BAR.items():
            assert out[name].isna().sum() == min(bar, length), (length, name)


def test_zero_division_follows_talib():
    """Flat prices and no volume: where TA-Lib would divide by zero it gives 0.0."""
    flat = {name: np.full(300, 42.5) for name in ("open", "high", "low", "close")}
    histories = {"FLAT": {**flat, "volume": np.zeros(300)},
                 "FLAT_TRADED": {**flat, "volume": np.full(300, 1e6)},
                 "ZERO_CLOSE": {**random_bars(np.random.default_rng(2), 40)}}
    histories["ZERO_CLOSE"]["close"][5] = 0.0  # ROC's previous close of bar 15 is 0
    out = by_symbol(compute_indicators(frame_of(histories)))
    for symbol, bars in histories.items():
        for name, expected in talib_reference(bars).items():
            assert_close(out[symbol][name].to_numpy(), expected, f"{symbol} {name}")
    flat_rows = out["FLAT"]
    for name in ("rsi_14", "stoch_k", "stoch_d", "willr_14", "cci_20", "mfi_14", "adx_14",
                 "plus_di_14", "minus_di_14", "return_1d", "volatility_30d", "drawdown",
                 "pct_from_high_52w"):
        values = flat_rows[name].to_numpy()
        assert (values[FIRST_BAR[name]:] == 0.0).all(), name
    bands = flat_rows[["bb_lower", "bb_middle", "bb_upper"]].iloc[FIRST_BAR["bb_middle"]:]
    assert (bands.to_numpy() == 42.5).all()  # a zero-width band
    assert out["ZERO_CLOSE"]["roc_10"].iloc[15] == 0.0


def test_output_sorted_one_row_per_input_row(universe, universe_out):
    prices = frame_of(universe)
    expected = prices[["symbol", "date"]].sort_values(["symbol", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(universe_out[["symbol", "date"]], expected)
    assert (universe_out[list(INDICATOR_COLUMNS)].dtypes == np.float64).all()


def test_sorted_input_gives_the_same_frame_as_shuffled(universe, universe_out):
    pd.testing.assert_frame_equal(compute_indicators(frame_of(universe)), universe_out)


def same_bits(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Every indicator value identical to the last bit (NaN equal to NaN)."""
    a = left[list(INDICATOR_COLUMNS)].to_numpy()
    b = right[list(INDICATOR_COLUMNS)].to_numpy()
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.parametrize("chunk_rows", [None, 3_000])
def test_a_new_bar_changes_no_earlier_value_of_any_symbol(universe, monkeypatch, chunk_rows):
    """The pipeline rewrites only changed rows: one more bar for one symbol must leave
    every other row identical to the bit, whatever chunks the rows fall into."""
    if chunk_rows is not None:  # many chunks, whose boundaries move with the new bar
        monkeypatch.setattr(indicators, "_CHUNK_ROWS", chunk_rows)
    histories = dict(list(universe.items())[:200])
    grown = dict(histories)
    for symbol in ("S010", "S150"):  # a short and a long history each get a bar
        longer = random_bars(np.random.default_rng(9), len(histories[symbol]["close"]) + 1)
        grown[symbol] = {name: np.r_[bars, longer[name][-1]]
                         for name, bars in histories[symbol].items()}
    before = compute_indicators(frame_of(histories))
    after = compute_indicators(frame_of(grown))
    new_rows = after.groupby("symbol").cumcount().to_numpy() == [
        len(grown[s]["close"]) - 1 if s in ("S010", "S150") else -1 for s in after["symbol"]
    ]
    assert new_rows.sum() == 2
    assert same_bits(after[~new_rows].reset_index(drop=True), before)


@pytest.mark.parametrize("chunk_rows", [None, 3_000])
def test_since_returns_exactly_the_wanted_rows_with_the_same_bits(universe, universe_out, monkeypatch, chunk_rows):
    """The nightly asks only for the rows that may have changed: the same values, bit for
    bit, as the whole result's rows from each symbol's first wanted date on."""
    if chunk_rows is not None:
        monkeypatch.setattr(indicators, "_CHUNK_ROWS", chunk_rows)
    prices = frame_of(universe).sample(frac=1.0, random_state=np.random.default_rng(4))
    last = prices.groupby("symbol")["date"].max()
    since = {s: day - pd.Timedelta(days=3) for s, day in last.items()}  # each symbol's last bars
    since.update(S001=None, S002=last["S002"] + pd.Timedelta(days=1), S003=dt.date(1990, 1, 1))
    del since["S004"]  # absent: all of its rows, as None
    got = compute_indicators(prices, since=since)

    first = universe_out["symbol"].map({s: pd.NaT if d is None else pd.Timestamp(d) for s, d in since.items()})
    wanted = universe_out[(first.isna() | (universe_out["date"] >= first)).to_numpy()].reset_index(drop=True)
    assert 0 < len(wanted) < len(universe_out) / 5 and "S002" not in set(wanted["symbol"])
    assert same_bits(got, wanted)
    pd.testing.assert_frame_equal(got[["symbol", "date"]], wanted[["symbol", "date"]])


def test_a_symbol_alone_gets_the_same_bits_as_among_others(universe, universe_out, monkeypatch):
    monkeypatch.setattr(indicators, "_CHUNK_ROWS", 1_000)
    for symbol in ("S005", "S100", "S400"):
        alone = compute_indicators(frame_of({symbol: universe[symbol]}))
        among = universe_out[universe_out["symbol"] == symbol].reset_index(drop=True)
        assert same_bits(alone, among), symbol


def test_single_long_expensive_history():
    """20,000 bars of an index near 30,000: TA-Lib columns still TA-Lib's, and the 30-day
    volatility of a long history does not drift (window sums, no running total)."""
    bars = random_bars(np.random.default_rng(7), 20_000, start=30_000.0, vol=0.002)
    out = compute_indicators(frame_of({"IDX": bars}))
    for name, expected in talib_reference(bars).items():
        assert_close(out[name].to_numpy(), expected, name)
    log_return = np.diff(np.log(bars["close"]))  # exact-ish reference: fsum per window
    exact = []
    for t in range(30, 20_000):
        window = log_return[t - 30 : t]
        mean = math.fsum(window) / 30
        exact.append(math.sqrt(math.fsum((window - mean) ** 2) / 29 * 252))
    got = out["volatility_30d"].to_numpy()[30:]
    assert np.max(np.abs(got - np.array(exact)) / np.array(exact)) <= 1e-10


def test_int_volume_from_the_lake_is_accepted(universe):
    prices = frame_of(dict(list(universe.items())[:30]))
    as_int = prices.assign(volume=prices["volume"].astype(np.int64))
    pd.testing.assert_frame_equal(compute_indicators(as_int), compute_indicators(prices))


def test_extra_columns_ignored_and_input_untouched(universe):
    prices = frame_of(dict(list(universe.items())[:20])).assign(provider="demo")
    before = prices.copy()
    compute_indicators(prices)
    pd.testing.assert_frame_equal(prices, before)


def test_empty_frame_gives_empty_frame_with_the_columns():
    out = compute_indicators(frame_of({}))
    assert list(out.columns) == OUTPUT_COLUMNS and out.empty


@pytest.mark.parametrize("column", ["high", "low", "close", "volume", "symbol", "date"])
def test_missing_column_is_rejected(column):
    prices = frame_of({"A": random_bars(np.random.default_rng(0), 30)}).drop(columns=column)
    with pytest.raises(ValueError, match=column):
        compute_indicators(prices)
