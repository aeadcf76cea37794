"""eodhd.parse_daily's column-at-a-time path gives exactly what reading every row with
`eodhd.read_bar` gives (`by_row`, this file's reference): the same outcome, bars (values
and dtypes) and rejects, in order."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from stockpipe.providers import eodhd
from stockpipe.providers.wire import Outcome, Parsed, Response
from conftest import PROVIDER_FIXTURES

MAY = (dt.date(2024, 5, 1), dt.date(2024, 5, 31))
COLUMNS = ["open", "high", "low", "close", "adj_close", "volume"]  # BAR_COLUMNS after date
GOOD = {"date": "2024-05-06", "open": 182.35, "high": 184.2, "low": 180.42, "close": 181.71,
        "adjusted_close": 178.9213, "volume": 78569700}


def by_row(response: Response, start: dt.date, end: dt.date) -> Parsed:
    """The reference: parse_daily's careful path (`read_bar`) for every row, in order."""
    rows, failure = eodhd.read_rows(response)
    if failure:
        return failure
    kept, rejected = [], []
    for row in rows:
        day, bar, reason = eodhd.read_bar(row)
        if day is not None and not start <= day <= end:
            continue
        if reason:
            rejected.append({"date": str(row.get("date")), "reason": reason, "raw": row})
        else:
            kept.append((day, [bar[name] for name in COLUMNS]))
    days = np.array([day for day, _ in kept], dtype="datetime64[D]")
    values = np.array([v for _, v in kept], dtype=np.float64).reshape(len(kept), len(COLUMNS))
    frame = pd.DataFrame(values, columns=pd.Index(COLUMNS, dtype=object))
    frame.insert(0, "date", days.astype("datetime64[us]"))
    return Parsed(Outcome.OK if kept or rejected else Outcome.EMPTY, bars=frame,
                  actions=eodhd.parse_daily(Response(200, {}, b"[]"), start, end).actions, rejected=tuple(rejected))


def both(body: bytes | str, window=MAY, status: int = 200):
    """(fast, by_row) parses of one body."""
    data = body.encode() if isinstance(body, str) else body
    response = Response(status, {"content-type": "application/json"}, data)
    return eodhd.parse_daily(response, *window), by_row(response, *window)


def assert_same(body: bytes | str, window=MAY) -> eodhd.Parsed:
    fast, slow = both(body, window)
    assert fast.outcome is slow.outcome and fast.message == slow.message
    if slow.bars is None:
        assert fast.bars is None
    else:
        pd.testing.assert_frame_equal(fast.bars, slow.bars, check_exact=True)
        pd.testing.assert_frame_equal(fast.actions, slow.actions)
    # as text: a NaN sent in a row is not equal to itself
    assert json.dumps(fast.rejected, default=str) == json.dumps(slow.rejected, default=str)
    return fast


def rows_body(*changes: dict, base: dict = GOOD) -> str:
    days = pd.bdate_range("2024-05-01", periods=len(changes)).strftime("%Y-%m-%d")
    return json.dumps([{**base, "date": day, **change} for day, change in zip(days, changes)])


def test_the_fixture():
    parsed = assert_same((PROVIDER_FIXTURES / "eodhd" / "eod_success.json").read_bytes())
    assert parsed.outcome is Outcome.OK and len(parsed.bars) == 5


@pytest.mark.parametrize("window", [MAY, (dt.date(2024, 5, 8), dt.date(2024, 5, 9)), (dt.date(2025, 1, 1),) * 2])
def test_the_fixture_in_any_window(window):
    assert_same((PROVIDER_FIXTURES / "eodhd" / "eod_success.json").read_bytes(), window)


CELLS = {  # adversarial values, each put in every column in turn
    "null": None, "NA": "NA", "na lower": "na", "empty": "", "dash": "-", "text": "abc", "numeric text": "182.5",
    "spaced text": " 7 ", "zero": 0, "zero float": 0.0, "negative zero": -0.0, "negative": -1.5, "bool": True,
    "false": False, "list": [1], "huge int": 10**400, "big int": 2**70 + 1, "float noise": 0.1 + 0.2,
    "tiny": 5e-324, "underscore text": "1_000", "NaN literal": math.nan, "Infinity literal": math.inf,
}


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "adjusted_close", "volume"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_one_bad_cell_among_good_rows(column, name):
    body = rows_body({}, {column: CELLS[name]}, {})
    parsed = assert_same(body)
    assert len(parsed.bars) + len(parsed.rejected) >= 2


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("column", ["open", "adjusted_close", "volume"])
def test_json_nan_and_infinity_literals(literal, column):
    body = json.dumps([GOOD, {**GOOD, "date": "2024-05-07", column: "@"}]).replace('"@"', literal)
    assert_same(body)


@pytest.mark.parametrize("date", ["2024-02-30", "2024-13-01", "0000-01-01", "2024-5-6", "2024-05-06T00:00:00",
                                  " 2024-05-06", "20240506", None, 20240506, "", "NA", "2024-05-06\u00a0"])
def test_odd_dates(date):
    assert_same(json.dumps([GOOD, {**GOOD, "date": date}, {**GOOD, "date": "2024-05-07"}]))


def test_duplicate_and_unsorted_dates_and_dates_outside_the_window():
    days = ["2024-05-09", "2024-05-06", "2024-05-09", "2024-04-30", "2024-06-01", "2024-05-07", "2024-05-06"]
    parsed = assert_same(json.dumps([{**GOOD, "date": day} for day in days]))
    assert parsed.bars["date"].dt.strftime("%m-%d").tolist() == ["05-09", "05-06", "05-09", "05-07", "05-06"]


def test_upper_case_and_missing_keys():
    upper = {k.upper(): v for k, v in GOOD.items()}
    missing = {k: v for k, v in GOOD.items() if k != "adjusted_close"}
    assert_same(json.dumps([GOOD, {**upper, "date": "2024-05-07"}, {**missing, "date": "2024-05-08"}]))
    assert_same(json.dumps([{k.title(): v for k, v in GOOD.items()}]))


def test_all_null_and_all_na_rows():
    nulls = {k: None for k in GOOD if k != "date"}
    nas = {k: "NA" for k in GOOD if k != "date"}
    parsed = assert_same(rows_body({}, nulls, nas, {}))
    assert [r["reason"] for r in parsed.rejected] == ["all_null", "all_null"]


def test_zero_adjusted_close_is_nan_and_kept():
    parsed = assert_same(rows_body({"adjusted_close": 0}, {"adjusted_close": None}, {"adjusted_close": "NA"}))
    assert parsed.bars["adj_close"].isna().all() and len(parsed.bars) == 3


def test_csv_goes_row_by_row_and_agrees():
    text = "Date,Open,High,Low,Close,Adjusted_close,Volume\n2024-05-06,1,2,0.5,1.5,1.4,100\n2024-05-07,NA,2,1,1,1,1\n"
    assert_same(text)


@pytest.mark.parametrize("body", ["[]", "[{}]", '[{"date": "2024-05-06"}]', "{}", "[1, 2]", "[{\"date\": 1}] x"])
def test_empty_and_shapeless_bodies(body):
    assert_same(body)


def test_random_adversarial_bodies():
    """Rows drawn from good values and every adversarial cell, many times over (seeded)."""
    rng = np.random.default_rng(20261123)
    cells = list(CELLS.values()) + [182.35, 1, 1e-9, 123456.789]
    days = ["2024-05-06", "2024-05-07", "2024-05-31", "2024-06-03", "2024-02-30", None, "x"]
    for _ in range(60):
        rows = []
        for _ in range(int(rng.integers(1, 30))):
            row = dict(GOOD, date=days[rng.integers(len(days))])
            for key in ("open", "high", "low", "close", "adjusted_close", "volume"):
                if rng.random() < 0.15:
                    row[key] = cells[rng.integers(len(cells))]
                elif rng.random() < 0.03:
                    del row[key]
            rows.append(row)
        assert_same(json.dumps(rows))


def test_float_noise_is_read_bit_for_bit():
    rng = np.random.default_rng(7)
    noisy = [float(x) for x in rng.normal(100, 50, 300) * 10.0 ** rng.integers(-8, 8, 300)]
    body = json.dumps([{**GOOD, "date": f"2024-05-{1 + i % 28:02d}", "open": x, "close": abs(x) + 1e-12}
                       for i, x in enumerate(noisy)])
    parsed = assert_same(body)
    assert all(math.isfinite(x) for x in parsed.bars["open"])


@pytest.mark.parametrize("first", ["open", "high", "low", "close", "adjusted_close", "volume"])
@pytest.mark.parametrize("second", ["open", "high", "low", "close", "adjusted_close", "volume"])
def test_the_first_problem_wins_among_plain_numbers(first, second):
    """Rows of JSON numbers only (the column path) with two problems: zero, NaN or Infinity."""
    rows = [{**GOOD, "date": f"2024-05-{day:02d}", first: a, second: b}
            for day, (a, b) in enumerate([(0, math.nan), (math.nan, 0), (math.inf, math.nan), (0, 0)], start=6)]
    assert_same(json.dumps(rows))
