"""Backward adjustment for splits and dividends, against values worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from stockpipe.stages.adjust import (
    SPAN_COLUMNS,
    adjustment_spans,
    apply_adjustments,
    unusable_actions,
    vendor_divergence,
)

D = pd.Timestamp


def bars(symbol: str, rows: list[tuple[str, float, int]], adj_close=None) -> pd.DataFrame:
    """Bars whose open/high/low are the close +0 / +1 / -1, so each column is easy to check."""
    frame = pd.DataFrame({
        "symbol": symbol,
        "date": pd.to_datetime([d for d, _, _ in rows]).astype("datetime64[ms]"),
        "open": [c for _, c, _ in rows],
        "high": [c + 1 for _, c, _ in rows],
        "low": [c - 1 for _, c, _ in rows],
        "close": [c for _, c, _ in rows],
        "adj_close": np.nan if adj_close is None else adj_close,
        "volume": np.array([v for _, _, v in rows], dtype=np.int64),
    })
    return frame


def actions(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "symbol": [r[0] for r in rows],
        "date": pd.to_datetime([r[1] for r in rows]).astype("datetime64[ms]"),
        "kind": [r[2] for r in rows],
        "value": [r[3] for r in rows],
    })


# A 10:1 split on Thu 2024-01-04, then a $0.50 dividend going ex on Mon 2024-01-08.
#
#   date        close  volume   split-only factor   full factor (split and dividend)
#   2024-01-02  100.0   1000    1/10                1/10 * 0.95 = 0.095
#   2024-01-03  102.0   1100    1/10                0.095
#   2024-01-04   10.3  12000    1  (ex-split)       0.95
#   2024-01-05   10.0   9000    1                   0.95
#   2024-01-08    9.6   9500    1  (ex-dividend)    1
#   2024-01-09    9.7   9800    1                   1
#
# Dividend factor = 1 - D / (close of the last bar before the ex-date) = 1 - 0.50 / 10.0 = 0.95.
# Volume factor = 10 before the split (ten new shares per old one), 1 after; dividends leave it.
# Full adjusted closes:  100 * 0.095 = 9.5, 102 * 0.095 = 9.69, 10.3 * 0.95 = 9.785,
#                        10 * 0.95 = 9.5, 9.6, 9.7
# Split-only closes:     10.0, 10.2, 10.3, 10.0, 9.6, 9.7
ROWS = [("2024-01-02", 100.0, 1000), ("2024-01-03", 102.0, 1100), ("2024-01-04", 10.3, 12000),
        ("2024-01-05", 10.0, 9000), ("2024-01-08", 9.6, 9500), ("2024-01-09", 9.7, 9800)]
ACTIONS = [("X", "2024-01-04", "split", 10.0), ("X", "2024-01-08", "dividend", 0.50)]


def test_spans_for_a_10_to_1_split_and_a_dividend():
    spans = adjustment_spans(bars("X", ROWS), actions(ACTIONS))
    assert list(spans.columns) == list(SPAN_COLUMNS)
    assert spans["symbol"].tolist() == ["X", "X"]
    assert spans["valid_from"].tolist() == [D("1900-01-01"), D("2024-01-04")]
    assert spans["valid_to"].tolist() == [D("2024-01-04"), D("2024-01-08")]
    assert spans["price_factor"].tolist() == pytest.approx([0.095, 0.95], rel=1e-12)
    assert spans["volume_factor"].tolist() == pytest.approx([10.0, 1.0], rel=1e-12)


def test_full_adjustment_by_hand():
    prices = bars("X", ROWS)
    out = apply_adjustments(prices, adjustment_spans(prices, actions(ACTIONS)))
    assert out["close"].tolist() == pytest.approx([9.5, 9.69, 9.785, 9.5, 9.6, 9.7], rel=1e-12)
    assert out["open"].tolist() == pytest.approx([9.5, 9.69, 9.785, 9.5, 9.6, 9.7], rel=1e-12)
    # high = close + 1 as traded, so adjusted high = (close + 1) * factor: 101 * 0.095 = 9.595
    assert out["high"].tolist() == pytest.approx([9.595, 9.785, 10.735, 10.45, 10.6, 10.7], rel=1e-12)
    assert out["low"].tolist() == pytest.approx([9.405, 9.595, 8.835, 8.55, 8.6, 8.7], rel=1e-12)
    assert out["volume"].tolist() == pytest.approx([10000, 11000, 12000, 9000, 9500, 9800], rel=1e-12)
    assert out["price_factor"].tolist() == pytest.approx([0.095, 0.095, 0.95, 0.95, 1, 1], rel=1e-12)
    # The -90% day is gone: 102 -> 10.3 as traded is 9.69 -> 9.785 adjusted, +0.98 %.
    assert out["close"].iloc[2] / out["close"].iloc[1] - 1 == pytest.approx(9.785 / 9.69 - 1)
    # The dividend day's move is the total return: 9.5 -> 9.6 (+1.05 %), not 10.0 -> 9.6 (-4 %).
    assert out["close"].iloc[4] / out["close"].iloc[3] - 1 == pytest.approx(9.6 / 9.5 - 1)


def test_split_only_adjustment_by_hand():
    prices = bars("X", ROWS)
    out = apply_adjustments(prices, adjustment_spans(prices, actions(ACTIONS)), dividends=False)
    assert out["close"].tolist() == pytest.approx([10.0, 10.2, 10.3, 10.0, 9.6, 9.7], rel=1e-12)
    assert out["volume"].tolist() == pytest.approx([10000, 11000, 12000, 9000, 9500, 9800], rel=1e-12)
    assert out["price_factor"].tolist() == pytest.approx([0.1, 0.1, 1, 1, 1, 1], rel=1e-12)


def test_apply_keeps_the_input_order_index_and_other_columns():
    prices = bars("X", ROWS).iloc[::-1]
    prices.index = [10, 11, 12, 13, 14, 15]
    out = apply_adjustments(prices, adjustment_spans(prices, actions(ACTIONS)))
    assert out.index.tolist() == [10, 11, 12, 13, 14, 15]
    assert out["close"].tolist() == pytest.approx([9.7, 9.6, 9.5, 9.785, 9.69, 9.5], rel=1e-12)
    assert out["adj_close"].isna().all() and out["date"].equals(prices["date"])


def test_several_actions_on_one_date_combine():
    # 2:1 split plus two dividends (0.40 regular + 1.10 special) all going ex on 2024-03-05.
    # Close before = 50.0. Cash adds up: 1 - (0.40 + 1.10) / 50 = 0.97; split: 1/2.
    # Price factor before = 0.5 * 0.97 = 0.485; volume factor = 2.
    prices = bars("Y", [("2024-03-04", 50.0, 100), ("2024-03-05", 24.0, 210)])
    spans = adjustment_spans(prices, actions([("Y", "2024-03-05", "split", 2.0),
                                             ("Y", "2024-03-05", "dividend", 0.40),
                                             ("Y", "2024-03-05", "dividend", 1.10)]))
    assert len(spans) == 1
    assert spans["price_factor"].iloc[0] == pytest.approx(0.485, rel=1e-12)
    assert spans["volume_factor"].iloc[0] == pytest.approx(2.0)
    out = apply_adjustments(prices, spans)
    assert out["close"].tolist() == pytest.approx([24.25, 24.0], rel=1e-12)
    assert apply_adjustments(prices, spans, dividends=False)["close"].tolist() == pytest.approx([25.0, 24.0])


def test_actions_without_an_earlier_bar_or_a_later_bar_adjust_nothing():
    prices = bars("Z", [("2024-05-02", 20.0, 100), ("2024-05-03", 21.0, 100)])
    acts = actions([("Z", "2024-04-01", "split", 4.0),  # before the history
                    ("Z", "2024-05-02", "dividend", 0.3),  # on the first bar: nothing before it
                    ("Z", "2024-06-03", "dividend", 0.5),  # announced, after the last bar
                    ("W", "2024-05-03", "split", 3.0)])  # a symbol with no bars at all
    assert adjustment_spans(prices, acts).empty
    assert unusable_actions(prices, acts).empty
    out = apply_adjustments(prices, adjustment_spans(prices, acts))
    assert out["close"].tolist() == [20.0, 21.0] and out["volume"].tolist() == [100.0, 100.0]


def test_a_gap_on_the_ex_date_uses_the_last_bar_before_it():
    # No bar on the ex-date 2024-05-06 (a data gap): the factor uses 2024-05-03's close 40,
    # 1 - 2 / 40 = 0.95, and applies to the bars before the ex-date.
    prices = bars("G", [("2024-05-02", 39.0, 1), ("2024-05-03", 40.0, 1), ("2024-05-07", 38.5, 1)])
    spans = adjustment_spans(prices, actions([("G", "2024-05-06", "dividend", 2.0)]))
    assert spans["valid_to"].tolist() == [D("2024-05-06")]
    assert apply_adjustments(prices, spans)["close"].tolist() == pytest.approx([37.05, 38.0, 38.5])


def test_unusable_actions_are_left_out_and_listed():
    prices = bars("U", [("2024-01-02", 10.0, 1), ("2024-01-03", 10.0, 1), ("2024-01-04", 10.0, 1)])
    acts = actions([("U", "2024-01-03", "split", 0.0), ("U", "2024-01-03", "dividend", 1.0),
                    ("U", "2024-01-04", "dividend", 12.0), ("U", "2024-01-04", "merger", 1.0)])
    spans = adjustment_spans(prices, acts)
    # Only the $1 dividend of 2024-01-03 applies: 1 - 1 / 10 = 0.9 before it.
    assert spans["valid_to"].tolist() == [D("2024-01-03")]
    assert spans["price_factor"].tolist() == pytest.approx([0.9])
    bad = unusable_actions(prices, acts)
    assert sorted(zip(bad["kind"], bad["reason"])) == [
        ("dividend", "dividend is not below the close before its ex-date"),
        ("merger", "unknown kind: only split and dividend adjust prices"),
        ("split", "split ratio must be a positive number")]


def test_many_symbols_shuffled_equal_one_at_a_time():
    rng = np.random.default_rng(7)
    frames, acts = [], []
    for i, symbol in enumerate(["AA", "B", "CCC", "D.E", "F"]):
        dates = pd.bdate_range("2020-01-01", periods=300 + 40 * i)
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates))))
        frames.append(pd.DataFrame({"symbol": symbol, "date": dates.astype("datetime64[ms]"), "close": close,
                                    "open": close, "high": close * 1.01, "low": close * 0.99,
                                    "volume": rng.integers(1, 10**6, len(dates))}))
        for k in rng.choice(len(dates), size=1 + 3 * i, replace=False):
            kind = "split" if rng.random() < 0.3 else "dividend"
            value = float(rng.choice([2.0, 0.5, 3.0])) if kind == "split" else float(rng.uniform(0.01, 1.0))
            acts.append((symbol, str(dates[k].date()), kind, value))
    prices = pd.concat(frames, ignore_index=True)
    acts_frame = actions(acts)
    shuffled = prices.sample(frac=1.0, random_state=3)
    together = apply_adjustments(shuffled, adjustment_spans(shuffled, acts_frame.sample(frac=1.0, random_state=4)))
    for symbol, part in prices.groupby("symbol"):
        alone = apply_adjustments(part, adjustment_spans(part, acts_frame[acts_frame["symbol"] == symbol]))
        np.testing.assert_allclose(together.loc[part.index, "close"], alone["close"], rtol=1e-13)
        # The reference, one bar at a time, newest to oldest.
        expected, factor = [], 1.0
        on_date: dict[pd.Timestamp, list[tuple[str, float]]] = {}
        for s, d, kind, value in acts:
            if s == symbol:
                on_date.setdefault(pd.Timestamp(d), []).append((kind, value))
        closes, dates = part["close"].tolist(), part["date"].tolist()
        for j in range(len(part) - 1, -1, -1):
            expected.append(closes[j] * factor)
            if j == 0:
                break
            today = on_date.get(dates[j], [])
            for kind, value in today:
                if kind == "split":
                    factor /= value
            factor *= 1 - sum(v for k, v in today if k == "dividend") / closes[j - 1]
        np.testing.assert_allclose(alone["close"].to_numpy(), expected[::-1], rtol=1e-12)


def test_spans_are_contiguous_and_match_the_view_semantics():
    prices = bars("X", ROWS)
    spans = adjustment_spans(prices, actions(ACTIONS))
    assert (spans["valid_from"].iloc[1:].to_numpy() == spans["valid_to"].iloc[:-1].to_numpy()).all()
    # Bars on or after the newest ex-date have no span.
    newest = spans["valid_to"].max()
    covered = [((spans["valid_from"] <= d) & (d < spans["valid_to"])).sum() for d in prices["date"]]
    assert covered == [1 if d < newest else 0 for d in prices["date"]]


def test_dates_may_be_python_dates():
    prices = bars("X", ROWS)
    prices["date"] = [d.date() for d in prices["date"]]
    acts = actions(ACTIONS)
    acts["date"] = [d.date() for d in acts["date"]]
    out = apply_adjustments(prices, adjustment_spans(prices, acts))
    assert out["close"].tolist() == pytest.approx([9.5, 9.69, 9.785, 9.5, 9.6, 9.7], rel=1e-12)


def test_empty_inputs():
    prices = bars("X", ROWS)
    no_actions = actions([])
    spans = adjustment_spans(prices, no_actions)
    assert spans.empty and list(spans.columns) == list(SPAN_COLUMNS)
    out = apply_adjustments(prices, spans)
    assert out["close"].tolist() == prices["close"].tolist()
    assert adjustment_spans(prices.iloc[:0], actions(ACTIONS)).empty
    assert apply_adjustments(prices.iloc[:0], spans).empty
    assert vendor_divergence(prices, spans).empty  # no vendor adj_close at all


def test_vendor_divergence_reports_the_largest_relative_difference():
    prices = bars("X", ROWS, adj_close=[9.5, 9.69, 9.785 * 1.01, 9.5, 9.6, 9.7])  # one bar 1 % off
    other = bars("V", [("2024-01-02", 30.0, 1), ("2024-01-03", 31.0, 1)], adj_close=[np.nan, 31.0])
    both = pd.concat([prices, other], ignore_index=True)
    spans = adjustment_spans(both, actions(ACTIONS))
    out = vendor_divergence(both, spans)
    assert out["symbol"].tolist() == ["V", "X"]
    assert out["compared"].tolist() == [1, 6]
    assert out["max_rel_diff"].tolist() == pytest.approx([0.0, 0.01], abs=1e-12)
    assert out["max_at"].tolist() == [D("2024-01-03"), D("2024-01-04")]


def test_a_split_only_vendor_differs_by_the_dividend_factor():
    split_only = [10.0, 10.2, 10.3, 10.0, 9.6, 9.7]  # the vendor ignored the $0.50 dividend
    prices = bars("X", ROWS, adj_close=split_only)
    out = vendor_divergence(prices, adjustment_spans(prices, actions(ACTIONS)))
    assert out["max_rel_diff"].iloc[0] == pytest.approx(1 / 0.95 - 1)  # 5.26 %


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="close"):
        adjustment_spans(pd.DataFrame({"symbol": [], "date": []}), actions([]))


def test_reverse_split_halves_the_volume_of_earlier_bars():
    # 1:2 reverse split (value 0.5): earlier prices x2, earlier volume x0.5.
    prices = bars("R", [("2024-02-01", 5.0, 1000), ("2024-02-02", 10.1, 480)])
    out = apply_adjustments(prices, adjustment_spans(prices, actions([("R", "2024-02-02", "split", 0.5)])))
    assert out["close"].tolist() == pytest.approx([10.0, 10.1])
    assert out["volume"].tolist() == pytest.approx([500.0, 480.0])


def test_dates_are_naive_days():
    spans = adjustment_spans(bars("X", ROWS), actions(ACTIONS))
    assert str(spans["valid_to"].dtype) == "datetime64[ms]" and str(spans["valid_from"].dtype) == "datetime64[ms]"
    assert spans["valid_to"].iloc[0].date() == dt.date(2024, 1, 4)
