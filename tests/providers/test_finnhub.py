"""Tests for the finnhub vendor module: every fixture and described case, requests, parsing."""

from __future__ import annotations

import datetime as dt
import math
import time
from functools import partial

import pandas as pd
import pytest

from stockpipe.providers import finnhub
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS
from stockpipe.providers.wire import Outcome
from conftest import PROVIDER_FIXTURES
from helpers import assert_no_key, dates, fixture_response, response

FIXTURES = PROVIDER_FIXTURES / "finnhub"
JUNE = (dt.date(2024, 6, 1), dt.date(2024, 6, 30))
WIDE = (dt.date(2000, 1, 1), dt.date(2100, 1, 1))
QUOTE_UNKNOWN = {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}


fixture = partial(fixture_response, "finnhub")  # fixture(name, status=200, **headers) -> Response


def candles(*rows: tuple) -> dict:
    """A candle body from (t, o, h, l, c, v) rows."""
    t, o, h, l, c, v = (list(column) for column in zip(*rows)) if rows else ([],) * 6
    return {"c": c, "h": h, "l": l, "o": o, "s": "ok", "t": t, "v": v}


def ny_midnight(day: str) -> int:
    return int(pd.Timestamp(day, tz="America/New_York").timestamp())


# ------------------------------------------------------------------------ fixtures

# Every file in the fixture folder, with its HTTP status and the outcome it must give.
TABLE = {
    "quote_success.json": (200, Outcome.OK),
    "candle_success.json": (200, Outcome.OK),
    "candle_midnight_utc.json": (200, Outcome.OK),  # daily t at 00:00 UTC (since mid-2021)
    "candle_non_us_open.json": (200, Outcome.OK),  # daily t at a non-US open (RELIANCE.NS)
    "candle_intraday_sydney.json": (200, Outcome.OK),  # 5-minute candles of one Sydney session
    "candle_no_data.json": (200, Outcome.EMPTY),
    "bad_key.json": (401, Outcome.AUTH_FAILED),
    "missing_key.json": (401, Outcome.AUTH_FAILED),
    "rate_limited.json": (429, Outcome.RATE_LIMITED),
    "no_access.json": (403, Outcome.NOT_ENTITLED),
}


def test_the_table_covers_every_fixture_file():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_fixture_gives_its_outcome(name):
    status, outcome = TABLE[name]
    parse = finnhub.parse_quote if name.startswith("quote") else (
        lambda r: finnhub.parse_daily(r, *JUNE))
    assert parse(fixture(name, status)).outcome is outcome


def test_candle_success_bars_are_new_york_trading_dates_with_exact_values():
    parsed = finnhub.parse_daily(fixture("candle_success.json"), *JUNE)
    assert parsed.outcome is Outcome.OK
    bars = parsed.bars
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert str(bars["date"].dtype) == "datetime64[us]"
    assert dates(bars) == ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]
    assert bars["close"].tolist() == [194.03, 194.35, 195.87, 194.48, 196.89]
    assert bars["open"].tolist() == [192.9, 194.64, 195.4, 195.69, 194.65]
    assert bars["high"].tolist() == [194.99, 195.32, 196.9, 196.5, 196.94]
    assert bars["low"].tolist() == [192.52, 193.03, 194.87, 194.17, 194.14]
    assert bars["volume"].tolist() == [50080500, 47471400, 54156800, 41181800, 53103900]
    assert bars["adj_close"].isna().all()
    assert list(parsed.actions.columns) == list(ACTION_COLUMNS) and parsed.actions.empty
    assert parsed.rejected == ()


def test_est_and_edt_bars_both_get_their_new_york_date():
    # Friday 2024-03-08 is EST (05:00Z), Monday 2024-03-11 EDT (04:00Z), 2024-11-04 EST again.
    days = ["2024-01-02", "2024-03-08", "2024-03-11", "2024-11-01", "2024-11-04"]
    body = candles(*((ny_midnight(d), 10, 11, 9, 10.5, 100) for d in days))
    assert body["t"][:3] == [1704171600, 1709874000, 1710129600]  # the stamps themselves
    parsed = finnhub.parse_daily(response(body), *WIDE)
    assert dates(parsed.bars) == days


def test_dates_do_not_depend_on_the_machine_time_zone(monkeypatch):
    # 00:00 New York is the previous evening in Honolulu: a local-time conversion fails here.
    monkeypatch.setenv("TZ", "Pacific/Honolulu")
    time.tzset()
    try:
        parsed = finnhub.parse_daily(fixture("candle_success.json"), *JUNE)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert dates(parsed.bars)[0] == "2024-06-03"


def test_no_data_is_empty():
    parsed = finnhub.parse_daily(fixture("candle_no_data.json"), *JUNE)
    assert parsed.outcome is Outcome.EMPTY and parsed.bars is None


def test_ok_with_no_candles_is_empty():
    assert finnhub.parse_daily(response(candles()), *JUNE).outcome is Outcome.EMPTY


@pytest.mark.parametrize(("start", "end", "expected"), [
    ((2024, 6, 4), (2024, 6, 6), ["2024-06-04", "2024-06-05", "2024-06-06"]),
    ((2024, 6, 7), (2024, 6, 7), ["2024-06-07"]),
    ((2024, 5, 1), (2024, 6, 3), ["2024-06-03"]),
])
def test_range_filter_is_inclusive_on_new_york_dates(start, end, expected):
    parsed = finnhub.parse_daily(fixture("candle_success.json"), dt.date(*start), dt.date(*end))
    assert parsed.outcome is Outcome.OK and dates(parsed.bars) == expected


def test_rows_all_outside_the_window_are_empty():
    parsed = finnhub.parse_daily(fixture("candle_success.json"), dt.date(2024, 7, 1), dt.date(2024, 7, 31))
    assert parsed.outcome is Outcome.EMPTY and parsed.bars.empty


def test_quote_success_values_and_utc_time():
    parsed = finnhub.parse_quote(fixture("quote_success.json"))
    assert parsed.outcome is Outcome.OK
    row = parsed.quotes.iloc[0]
    assert row["ts"] == pd.Timestamp("2024-06-07 20:00", tz="UTC")  # 16:00 EDT close
    assert str(parsed.quotes["ts"].dtype) == "datetime64[us, UTC]"
    assert (row["price"], row["open"], row["high"], row["low"]) == (196.89, 194.65, 196.94, 194.14)
    assert (row["prev_close"], row["change"], row["change_pct"]) == (194.48, 2.41, 1.2392)
    assert math.isnan(row["volume"])


def test_quote_in_winter_is_utc_five_hours_after_new_york():
    body = {"c": 185.64, "d": -1.5, "dp": -0.8016, "h": 188.44, "l": 183.89, "o": 187.15,
            "pc": 187.14, "t": 1704229200}
    row = finnhub.parse_quote(response(body)).quotes.iloc[0]
    assert row["ts"] == pd.Timestamp("2024-01-02 21:00", tz="UTC")  # 16:00 EST
    assert row["price"] == 185.64


def test_quote_unknown_symbol_is_never_a_zero_price():
    parsed = finnhub.parse_quote(response(QUOTE_UNKNOWN))
    assert parsed.outcome is Outcome.SYMBOL_NOT_FOUND
    assert parsed.quotes is None


def test_quote_zero_fields_are_unknown_not_zero():
    body = {"c": 101.5, "d": 0.5, "dp": 0.495, "h": 0, "l": 0, "o": 0, "pc": 101.0, "t": 1717790400}
    row = finnhub.parse_quote(response(body)).quotes.iloc[0]
    assert row["price"] == 101.5 and math.isnan(row["open"]) and math.isnan(row["high"])


@pytest.mark.parametrize("body", [
    {"c": 0, "d": 1.0, "dp": 0.5, "h": 10, "l": 9, "o": 9.5, "pc": 9, "t": 1717790400},
    {"c": 10.0, "d": 1.0, "dp": 0.5, "h": 10, "l": 9, "o": 9.5, "pc": 9, "t": 0},
    {"c": "10.0", "d": 1.0, "dp": 0.5, "h": 10, "l": 9, "o": 9.5, "pc": 9, "t": 1717790400},
    {"c": 10.0, "t": 1717790400},  # not the quote's eight fields
    {"price": 10.0},
])
def test_quote_without_a_usable_price_or_time_is_a_protocol_error(body):
    assert finnhub.parse_quote(response(body)).outcome is Outcome.PROTOCOL_ERROR


# ------------------------------------------------------------------ errors, any parser

PARSERS = {
    "daily": lambda r: finnhub.parse_daily(r, *JUNE),
    "intraday": lambda r: finnhub.parse_intraday(r, *JUNE),
    "quote": finnhub.parse_quote,
}


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS)
@pytest.mark.parametrize(("name", "status", "outcome", "message"), [
    ("bad_key.json", 401, Outcome.AUTH_FAILED, "Invalid API key."),
    ("missing_key.json", 401, Outcome.AUTH_FAILED, "Please use an API key."),
    ("no_access.json", 403, Outcome.NOT_ENTITLED, "You don't have access to this resource."),
    ("no_access.json", 401, Outcome.NOT_ENTITLED, "You don't have access to this resource."),
    ("rate_limited.json", 429, Outcome.RATE_LIMITED, "API limit reached. Please try again later. "
                                                     "Remaining Limit: 0"),
])
def test_error_fixtures(parse, name, status, outcome, message):
    parsed = parse(fixture(name, status))
    assert (parsed.outcome, parsed.message) == (outcome, message)
    assert parsed.bars is None and parsed.quotes is None and parsed.intraday is None


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, None),
    ({"retry_after": "12"}, 12.0),
    ({"retry_after": "Fri, 07 Jun 2024 20:01:00 GMT", "date": "Fri, 07 Jun 2024 20:00:30 GMT"}, 30.0),
])
def test_rate_limited_retry_after_only_when_sent(headers, expected):
    parsed = finnhub.parse_daily(fixture("rate_limited.json", 429, **headers), *JUNE)
    assert parsed.outcome is Outcome.RATE_LIMITED and parsed.retry_after == expected


def test_error_text_decides_even_with_status_200():
    body = {"error": "You don't have access to this resource."}
    assert finnhub.parse_daily(response(body), *JUNE).outcome is Outcome.NOT_ENTITLED


def test_message_never_carries_a_key():
    parsed = finnhub.parse_daily(response({"error": "Invalid API key. token=sk_live_123"}, 401), *JUNE)
    assert parsed.outcome is Outcome.AUTH_FAILED and "sk_live_123" not in parsed.message


GOOD = (FIXTURES / "candle_success.json").read_bytes().rstrip()


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS)
@pytest.mark.parametrize(("body", "status"), [
    (GOOD[: len(GOOD) // 2], 200),  # truncated
    (GOOD[:-1], 200),
    (b"", 200),
    (b"\xff\xfe garbled", 200),
    (b"<html><body>502 Bad Gateway</body></html>", 502),
    (b"[1, 2, 3]", 200),
    (b"null", 200),
    (b'{"s": "error"}', 200),
    (b'{"c": [1], "h": [1], "l": [1], "o": [1], "t": [1717387200], "v": [1]}', 200),  # no "s"
    (b'{"c": [1, 2], "h": [1], "l": [1], "o": [1], "s": "ok", "t": [1717387200], "v": [1]}', 200),
    (b'{"c": 1, "h": 1, "l": 1, "o": 1, "s": "ok", "t": 1717387200, "v": 1}', 200),  # scalars
    (b"[" * 100_000, 200),  # nesting too deep for the JSON decoder
])
def test_garbled_bodies_are_protocol_errors_not_exceptions(parse, body, status):
    assert parse(response(body, status)).outcome is Outcome.PROTOCOL_ERROR


# ------------------------------------------------------------------------ rejected rows


def test_unreadable_rows_are_rejected_with_reason_and_raw_row():
    day = ny_midnight
    body = candles(
        (day("2024-06-03"), 192.9, 194.99, 192.52, 194.03, 50080500),
        (day("2024-06-04"), 0, 0, 0, 0, 0),  # zeros standing for "unknown"
        (day("2024-06-05"), None, None, None, None, None),
        (day("2024-06-06"), "n/a", 196.5, 194.17, 194.48, 41181800),
        (day("2024-06-07"), 194.65, 196.94, 194.14, None, 53103900),
        (None, 1, 1, 1, 1, 1),
        (day("2024-06-10"), 196.9, 197.3, 192.15, 193.12, None),  # no volume: kept as NaN
    )
    parsed = finnhub.parse_daily(response(body), *JUNE)
    assert parsed.outcome is Outcome.OK
    assert dates(parsed.bars) == ["2024-06-03", "2024-06-10"]
    assert math.isnan(parsed.bars["volume"].iloc[1])
    reasons = [(r["date"], r["reason"]) for r in parsed.rejected]
    assert reasons == [("2024-06-04", "zero_price"), ("2024-06-05", "all_null"),
                       ("2024-06-06", "bad_value:open"), ("2024-06-07", "missing_value:close"),
                       ("", "bad_date")]
    assert parsed.rejected[0]["raw"] == {"t": day("2024-06-04"), "o": 0, "h": 0, "l": 0, "c": 0, "v": 0}


def test_rejects_outside_the_window_are_left_out():
    body = candles((ny_midnight("2024-05-31"), 0, 0, 0, 0, 0),
                   (ny_midnight("2024-06-03"), 1, 2, 0.5, 1.5, 10))
    parsed = finnhub.parse_daily(response(body), *JUNE)
    assert dates(parsed.bars) == ["2024-06-03"] and parsed.rejected == ()


def test_only_rejected_rows_in_the_window_is_ok_so_they_get_recorded():
    parsed = finnhub.parse_daily(response(candles((ny_midnight("2024-06-03"), 0, 0, 0, 0, 0))), *JUNE)
    assert parsed.outcome is Outcome.OK and parsed.bars.empty and len(parsed.rejected) == 1


def test_float_noise_is_rounded_to_four_places():
    body = candles((ny_midnight("2024-06-03"), 194.35000000000002, 195.3199999999, 193.03421, 194.12345, 5))
    bar = finnhub.parse_daily(response(body), *JUNE).bars.iloc[0]
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (194.35, 195.32, 193.0342, 194.1234)


# ------------------------------------------------------------------------ intraday


def test_intraday_ts_is_utc_and_session_date_is_new_york():
    stamps = [
        int(pd.Timestamp("2024-01-02 09:30", tz="America/New_York").timestamp()),  # 14:30Z
        int(pd.Timestamp("2024-01-02 19:55", tz="America/New_York").timestamp()),  # 00:55Z Jan 3
        int(pd.Timestamp("2024-06-03 19:55", tz="America/New_York").timestamp()),  # 23:55Z EDT
    ]
    body = candles(*((t, 10, 11, 9, 10.5, 100) for t in stamps))
    parsed = finnhub.parse_intraday(response(body), *WIDE)
    bars = parsed.intraday
    assert parsed.outcome is Outcome.OK
    assert list(bars.columns) == ["ts", "open", "high", "low", "close", "volume", "session_date"]
    assert bars["ts"].tolist() == [pd.Timestamp("2024-01-02 14:30", tz="UTC"),
                                   pd.Timestamp("2024-01-03 00:55", tz="UTC"),
                                   pd.Timestamp("2024-06-03 23:55", tz="UTC")]
    sessions = [d.strftime("%Y-%m-%d") for d in bars["session_date"]]
    assert sessions == ["2024-01-02", "2024-01-02", "2024-06-03"]
    only_jan_2 = finnhub.parse_intraday(response(body), dt.date(2024, 1, 2), dt.date(2024, 1, 2))
    assert len(only_jan_2.intraday) == 2
    assert len(finnhub.parse_intraday(response(body)).intraday) == 3  # no window: every bar


def test_intraday_no_data_is_empty():
    assert finnhub.parse_intraday(fixture("candle_no_data.json"), *JUNE).outcome is Outcome.EMPTY


# ------------------------------------------------------------------------ requests


def test_constants():
    assert (finnhub.NAME, finnhub.BASE_URL, finnhub.KEY_PARAM) == ("finnhub", "https://finnhub.io", "token")
    assert finnhub.DEFAULT_LIMITS == {"calls_per_second": 30, "calls_per_minute": 60,
                                      "calls_per_hour": None, "calls_per_day": None}
    assert finnhub.QUOTA_RESETS is None


@pytest.mark.parametrize(("canonical", "vendor"),
                         [("BRK.B", "BRK.B"), ("brk.b", "BRK.B"), (" AAPL ", "AAPL")])
def test_vendor_symbol(canonical, vendor):
    assert finnhub.vendor_symbol(canonical) == vendor


def test_daily_request_covers_the_sessions_stamps_in_every_zone():
    # from the UTC midnight before start to the one two days after end: a session's stamp at
    # 00:00 UTC (since mid-2021), 00:00 New York (older) or its open in Kolkata is inside
    request = finnhub.daily_request("BRK.B", dt.date(2024, 6, 3), dt.date(2024, 6, 7))
    assert request.path == "/api/v1/stock/candle" and request.endpoint == "daily"
    assert dict(request.params) == {"symbol": "BRK.B", "resolution": "D",
                                    "from": "1717286400", "to": "1717891199"}  # 06-02 00:00Z .. 06-08 23:59:59Z
    assert_no_key(request)
    winter = finnhub.daily_request("AAPL", dt.date(2024, 1, 2), dt.date(2024, 1, 2))
    assert (winter.params["from"], winter.params["to"]) == ("1704067200", "1704326399")


def test_quote_request():
    request = finnhub.quote_request("brk.b")
    assert (request.path, request.endpoint) == ("/api/v1/quote", "quote")
    assert dict(request.params) == {"symbol": "BRK.B"}
    assert_no_key(request)


@pytest.mark.parametrize(("interval", "resolution"), [(1, "1"), ("5", "5"), ("15m", "15"), ("30min", "30"),
                                                      (60, "60"), ("1h", "60")])
def test_intraday_request_resolutions(interval, resolution):
    request = finnhub.intraday_request("AAPL", interval, dt.date(2024, 6, 3), dt.date(2024, 6, 3))
    assert request.params["resolution"] == resolution and request.endpoint == "intraday"
    assert (request.params["from"], request.params["to"]) == ("1717387200", "1717473599")
    assert_no_key(request)


@pytest.mark.parametrize("interval", [2, "10", "4h", "D", "", "-5"])
def test_intraday_request_refuses_other_intervals(interval):
    with pytest.raises(ValueError, match="interval"):
        finnhub.intraday_request("AAPL", interval, dt.date(2024, 6, 3), dt.date(2024, 6, 3))


def test_requests_refuse_a_reversed_window():
    with pytest.raises(ValueError, match="after"):
        finnhub.daily_request("AAPL", dt.date(2024, 6, 7), dt.date(2024, 6, 3))
