"""validate_bars: accepted bars and rejects with the first rule broken. Pure."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from stockpipe.models import PRICES_DAILY, REJECTS
from stockpipe.stages.validate import validate_bars

NOW = dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.timezone.utc)
LATEST = dt.date(2026, 11, 23)
NAN = np.nan
GOOD = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "adj_close": 10.4, "volume": 1000.0}


def bars(*rows: tuple[str, dict]) -> pd.DataFrame:
    """A ParsedDaily.bars frame: datetime64 date, float64 prices and volume."""
    frame = pd.DataFrame([{"date": pd.Timestamp(day), **{**GOOD, **values}} for day, values in rows],
                         columns=["date", "open", "high", "low", "close", "adj_close", "volume"])
    return frame.astype({c: "float64" for c in frame.columns if c != "date"})


def run(frame: pd.DataFrame, **kwargs):
    kwargs.setdefault("latest_session", LATEST)
    return validate_bars("AAA", frame, provider="demo", run_id="r1", now=NOW, **kwargs)


def reasons(result) -> dict[str, str]:
    return dict(zip(result.rejected["date"], result.rejected["reason"]))


RULE_CASES = [
    ("all_null", {"open": NAN, "high": NAN, "low": NAN, "close": NAN, "adj_close": NAN, "volume": NAN}),
    ("missing_value", {"close": NAN}),
    ("missing_value", {"volume": NAN}),
    ("non_positive_price", {"open": 0.0}),
    ("non_positive_price", {"low": -1.0}),
    ("negative_volume", {"volume": -1.0}),
    ("high_low_inconsistent", {"high": 10.2}),  # high < close
    ("high_low_inconsistent", {"low": 10.1}),  # low > open
]


@pytest.mark.parametrize("reason, values", RULE_CASES, ids=[f"{r}-{'-'.join(v)}" for r, v in RULE_CASES])
def test_each_rule_produces_its_reason(reason: str, values: dict):
    result = run(bars(("2026-11-20", values), ("2026-11-19", {})))
    assert reasons(result) == {"2026-11-20": reason}
    assert result.accepted["date"].tolist() == [pd.Timestamp("2026-11-19")]


def test_future_date():
    result = run(bars(("2026-11-24", {}), ("2026-11-23", {})))
    assert reasons(result) == {"2026-11-24": "future_date"}
    assert result.accepted["date"].tolist() == [pd.Timestamp("2026-11-23")]


def test_duplicate_date_keeps_the_first():
    result = run(bars(("2026-11-20", {"close": 10.5}), ("2026-11-20", {"close": 10.75}), ("2026-11-20", {"close": 10.8})))
    assert result.rejected["reason"].tolist() == ["duplicate_date"]  # one reject per (run, symbol, date, reason)
    assert result.accepted["close"].tolist() == [10.5]
    assert json.loads(result.rejected["raw"].iloc[0])["close"] == 10.75


def test_a_valid_zero_volume_and_missing_adj_close_are_accepted():
    result = run(bars(("2026-11-20", {"volume": 0.0, "adj_close": NAN})))
    assert result.rejected.empty
    assert result.accepted["volume"].tolist() == [0]
    assert np.isnan(result.accepted["adj_close"].iloc[0])


FIRST_WINS = [
    ("all_null", {k: NAN for k in GOOD}),  # also missing_value
    ("missing_value", {"close": NAN, "open": -1.0}),  # also non_positive_price
    ("non_positive_price", {"open": 0.0, "volume": -5.0}),  # also negative_volume
    ("negative_volume", {"volume": -1.0, "high": 1.0}),  # also high_low_inconsistent
    ("high_low_inconsistent", {"high": 1.0}),  # dated in the future too
]


@pytest.mark.parametrize("expected, values", FIRST_WINS, ids=[r for r, _ in FIRST_WINS])
def test_the_first_rule_broken_wins(expected: str, values: dict):
    # Dated after the latest session, so every row also breaks future_date.
    result = run(bars(("2026-11-24", values)))
    assert result.rejected["reason"].tolist() == [expected]


def test_future_date_wins_over_duplicate_date():
    result = run(bars(("2026-11-24", {}), ("2026-11-24", {})))
    assert result.rejected["reason"].tolist() == ["future_date"]  # both rows; deduplicated on the reject key
    assert result.accepted.empty


def test_a_duplicate_of_a_rejected_row_is_still_a_duplicate():
    result = run(bars(("2026-11-20", {"open": NAN}), ("2026-11-20", {})))
    assert result.rejected["reason"].tolist() == ["missing_value", "duplicate_date"]
    assert result.accepted.empty


def test_accepted_frame_has_prices_daily_columns_and_int_volume():
    result = run(bars(("2026-11-19", {}), ("2026-11-20", {"volume": 2_500_000_000.0})))
    accepted = result.accepted
    assert list(accepted.columns) == [name for name, _ in PRICES_DAILY]
    assert accepted["volume"].dtype == np.dtype("int64")
    assert accepted["volume"].tolist() == [1000, 2_500_000_000]
    assert accepted["symbol"].tolist() == ["AAA", "AAA"]
    assert accepted["provider"].tolist() == ["demo", "demo"]
    assert accepted["fetched_at"].tolist() == [pd.Timestamp(NOW)] * 2
    assert accepted.index.tolist() == [0, 1]
    assert accepted.loc[0, ["open", "high", "low", "close", "adj_close"]].tolist() == [10.0, 11.0, 9.0, 10.5, 10.4]


def test_rejects_frame_has_rejects_columns():
    result = run(bars(("2026-11-20", {"open": -1.0})))
    assert list(result.rejected.columns) == [name for name, _ in REJECTS]
    row = result.rejected.iloc[0].to_dict()
    assert {k: row[k] for k in ("run_id", "symbol", "date", "reason", "provider")} == {
        "run_id": "r1", "symbol": "AAA", "date": "2026-11-20", "reason": "non_positive_price", "provider": "demo"}
    assert row["rejected_at"] == pd.Timestamp(NOW)


def test_parser_rejects_are_passed_through():
    parser_rejects = [{"date": "2026-13-45", "reason": "unparseable_date", "raw": {"line": "2026-13-45,1,2,3,4,5"}},
                      {"date": "", "reason": "missing_value", "raw": {"line": ",,,"}}]
    result = run(bars(("2026-11-20", {})), parser_rejects=parser_rejects)
    assert len(result.accepted) == 1
    got = [(r["date"], r["reason"], json.loads(r["raw"]), r["symbol"], r["run_id"], r["provider"])
           for r in result.rejected.to_dict("records")]
    assert got == [("2026-13-45", "unparseable_date", {"line": "2026-13-45,1,2,3,4,5"}, "AAA", "r1", "demo"),
                   ("", "missing_value", {"line": ",,,"}, "AAA", "r1", "demo")]


def test_nothing_is_silently_dropped():
    frame = bars(*[(f"2026-11-{d:02d}", values) for d, (_, values) in zip(range(10, 20), RULE_CASES + [("", {})] * 2)])
    result = run(frame)
    assert len(result.accepted) + len(result.rejected) == len(frame)
    assert len(result.rejected) == len(RULE_CASES)


def test_raw_json_has_nulls_not_nan():
    result = run(bars(("2026-11-20", {"close": NAN, "adj_close": NAN})))
    text = result.rejected["raw"].iloc[0]
    assert "NaN" not in text and "nan" not in text
    raw = json.loads(text)
    assert raw["close"] is None
    assert raw["adj_close"] is None
    assert raw["open"] == 10.0
    assert raw["volume"] == 1000.0
    assert raw["date"].startswith("2026-11-20")


def test_raw_json_of_an_all_null_row_has_nulls():
    result = run(bars(("2026-11-20", {k: NAN for k in GOOD}), ("2026-11-19", {})))
    assert result.rejected["reason"].tolist() == ["all_null"]
    raw = json.loads(result.rejected["raw"].iloc[0])
    assert {k: raw[k] for k in GOOD} == {k: None for k in GOOD}


def test_empty_bars():
    result = run(bars())
    assert result.accepted.empty and result.rejected.empty
    assert list(result.accepted.columns) == [name for name, _ in PRICES_DAILY]
    assert list(result.rejected.columns) == [name for name, _ in REJECTS]


# --- the batch frames a fetch builds from many symbols -------------------------------------


def test_one_frame_for_many_symbols_equals_the_frames_of_each():
    from stockpipe.stages.validate import accepted_frame, rejected_frame

    results = [validate_bars(symbol, frame, provider="demo", run_id="r1", now=NOW, latest_session=LATEST)
               for symbol, frame in (("AAA", bars(("2026-11-19", {}), ("2026-11-20", {"open": -1.0}))),
                                     ("BBB", bars().astype({"date": "datetime64[us]"})),
                                     ("CCC", bars(("2026-11-18", {"volume": 7.0}), ("2026-11-19", {}))))]
    expected = pd.concat([r.accepted for r in results], ignore_index=True)
    pd.testing.assert_frame_equal(accepted_frame(results), expected)
    assert accepted_frame(results)["symbol"].tolist() == ["AAA", "CCC", "CCC"]
    assert [r.rows for r in results] == [1, 0, 2]
    rejected = rejected_frame(results)
    assert rejected[["symbol", "reason"]].values.tolist() == [["AAA", "non_positive_price"]]
    assert list(rejected.columns) == [name for name, _ in REJECTS]


def test_no_symbols_make_empty_frames_with_the_columns():
    from stockpipe.stages.validate import accepted_frame, rejected_frame

    assert list(accepted_frame([]).columns) == [name for name, _ in PRICES_DAILY] and accepted_frame([]).empty
    assert list(rejected_frame([]).columns) == [name for name, _ in REJECTS] and rejected_frame([]).empty


def test_unsorted_dates_find_duplicates_wherever_they_are():
    result = run(bars(("2026-11-20", {}), ("2026-11-18", {}), ("2026-11-20", {"close": 10.7}), ("2026-11-19", {})))
    assert reasons(result) == {"2026-11-20": "duplicate_date"}
    assert result.accepted["date"].dt.day.tolist() == [20, 18, 19]  # the order sent, first of each date kept


def test_missing_dates_are_duplicates_of_each_other_and_never_future():
    frame = bars(("2026-11-20", {}), ("2026-11-19", {}), ("2026-11-18", {}))
    frame.loc[[0, 2], "date"] = pd.NaT
    result = run(frame)
    assert result.rejected["reason"].tolist() == ["duplicate_date"] and result.rows == 2
