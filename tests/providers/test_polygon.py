"""Tests for the polygon vendor module: every fixture and described case, requests, paging."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from functools import partial

import pandas as pd
import pytest

from stockpipe.providers import polygon
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS
from stockpipe.providers.wire import Outcome
from conftest import PROVIDER_FIXTURES
from helpers import assert_no_key, dates, fixture_response, response

FIXTURES = PROVIDER_FIXTURES / "polygon"
JUNE = (dt.date(2024, 6, 1), dt.date(2024, 6, 30))
WIDE = (dt.date(2000, 1, 1), dt.date(2100, 1, 1))
UNKNOWN_SYMBOL = {"ticker": "NOPEQ", "queryCount": 0, "resultsCount": 0, "adjusted": False,
                  "status": "OK", "request_id": "5e0f1d2c3b4a59687766554433221100"}
NO_KEY = {"status": "ERROR", "request_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
          "error": "API Key was not provided"}


fixture = partial(fixture_response, "polygon")  # fixture(name, status=200, **headers) -> Response


def ms(instant: str) -> int:
    """Epoch milliseconds of a New York wall-clock time."""
    return int(pd.Timestamp(instant, tz="America/New_York").timestamp()) * 1000


def aggs(*rows: dict, **extra) -> dict:
    return {"ticker": "AAPL", "queryCount": len(rows), "resultsCount": len(rows), "adjusted": False,
            "results": list(rows), "status": "OK", "request_id": "r1", "count": len(rows), **extra}


def bar(t: int, o=10.0, h=11.0, l=9.0, c=10.5, v=1000.0) -> dict:
    return {"v": v, "vw": 10.2, "o": o, "c": c, "h": h, "l": l, "t": t, "n": 12}


# ------------------------------------------------------------------------ fixtures

TABLE = {
    "aggs_success.json": (200, Outcome.OK),
    "bad_key.json": (401, Outcome.AUTH_FAILED),
    "rate_limited.json": (429, Outcome.RATE_LIMITED),
    "not_authorized.json": (403, Outcome.NOT_ENTITLED),
}


def test_the_table_covers_every_fixture_file():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_fixture_gives_its_outcome(name):
    status, outcome = TABLE[name]
    assert polygon.parse_daily(fixture(name, status), *JUNE).outcome is outcome


def test_aggs_success_bars_are_new_york_trading_dates_with_exact_values():
    parsed = polygon.parse_daily(fixture("aggs_success.json"), *JUNE)
    assert parsed.outcome is Outcome.OK
    bars = parsed.bars
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert str(bars["date"].dtype) == "datetime64[us]"
    assert dates(bars) == ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]
    assert bars["close"].tolist() == [194.03, 194.35, 195.87, 194.48, 196.89]
    assert bars["open"].tolist() == [192.9, 194.635, 195.4, 195.685, 194.65]
    assert bars["low"].tolist() == [192.52, 193.0342, 194.87, 194.17, 194.14]
    assert bars["high"].tolist() == [194.99, 195.32, 196.9, 196.5, 196.94]
    assert bars["volume"].tolist() == [50080539, 47471445, 54156785, 41181753, 53103912]
    assert bars["adj_close"].isna().all()
    assert list(parsed.actions.columns) == list(ACTION_COLUMNS) and parsed.actions.empty
    assert parsed.rejected == () and parsed.message == ""


def test_est_and_edt_bars_both_get_their_new_york_date():
    days = ["2024-01-02", "2024-03-08", "2024-03-11", "2024-11-01", "2024-11-04"]
    body = aggs(*(bar(ms(d)) for d in days))
    assert [r["t"] for r in body["results"][1:3]] == [1709874000000, 1710129600000]  # 05:00Z, 04:00Z
    assert dates(polygon.parse_daily(response(body), *WIDE).bars) == days


def test_dates_do_not_depend_on_the_machine_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Honolulu")
    time.tzset()
    try:
        parsed = polygon.parse_daily(fixture("aggs_success.json"), *JUNE)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert dates(parsed.bars)[0] == "2024-06-03"


def test_t_is_milliseconds_not_seconds():
    # The same instant read as seconds would land in the year 56000-odd (or be rejected).
    parsed = polygon.parse_daily(response(aggs(bar(1717387200000))), *JUNE)
    assert dates(parsed.bars) == ["2024-06-03"]


@pytest.mark.parametrize("status", ["OK", "DELAYED"])
def test_unknown_symbol_or_no_rows_is_empty(status):
    parsed = polygon.parse_daily(response({**UNKNOWN_SYMBOL, "status": status}), *JUNE)
    assert parsed.outcome is Outcome.EMPTY and parsed.bars is None


def test_empty_results_list_is_empty():
    assert polygon.parse_daily(response(aggs()), *JUNE).outcome is Outcome.EMPTY


def test_delayed_status_still_gives_bars():
    parsed = polygon.parse_daily(response(aggs(bar(ms("2024-06-03")), status="DELAYED")), *JUNE)
    assert parsed.outcome is Outcome.OK and dates(parsed.bars) == ["2024-06-03"]


@pytest.mark.parametrize(("start", "end", "expected"), [
    ((2024, 6, 4), (2024, 6, 6), ["2024-06-04", "2024-06-05", "2024-06-06"]),
    ((2024, 6, 7), (2024, 6, 9), ["2024-06-07"]),
    ((2024, 5, 1), (2024, 6, 3), ["2024-06-03"]),
])
def test_range_filter_is_inclusive_on_new_york_dates(start, end, expected):
    parsed = polygon.parse_daily(fixture("aggs_success.json"), dt.date(*start), dt.date(*end))
    assert parsed.outcome is Outcome.OK and dates(parsed.bars) == expected


def test_rows_all_outside_the_window_are_empty():
    parsed = polygon.parse_daily(fixture("aggs_success.json"), dt.date(2024, 5, 1), dt.date(2024, 5, 31))
    assert parsed.outcome is Outcome.EMPTY and parsed.bars.empty


def test_results_out_of_order_come_back_sorted():
    body = aggs(bar(ms("2024-06-05"), c=3.0), bar(ms("2024-06-03"), c=1.0), bar(ms("2024-06-04"), c=2.0))
    bars = polygon.parse_daily(response(body), *JUNE).bars
    assert dates(bars) == ["2024-06-03", "2024-06-04", "2024-06-05"] and bars["close"].tolist() == [1, 2, 3]


# ------------------------------------------------------------------------ errors

PARSERS = {
    "daily": lambda r: polygon.parse_daily(r, *JUNE),
    "intraday": lambda r: polygon.parse_intraday(r, *JUNE),
}


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS)
@pytest.mark.parametrize(("body", "status", "outcome", "message"), [
    ("bad_key.json", 401, Outcome.AUTH_FAILED, "Unknown API Key"),
    (NO_KEY, 401, Outcome.AUTH_FAILED, "API Key was not provided"),
    ("not_authorized.json", 403, Outcome.NOT_ENTITLED,
     "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"),
    ("rate_limited.json", 429, Outcome.RATE_LIMITED,
     "You've exceeded the maximum requests per minute, please wait or upgrade your subscription "
     "to continue. https://polygon.io/pricing"),
])
def test_error_bodies(parse, body, status, outcome, message):
    got = fixture(body, status) if isinstance(body, str) else response(body, status)
    parsed = parse(got)
    assert (parsed.outcome, parsed.message) == (outcome, message)
    assert parsed.bars is None and parsed.intraday is None


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, 60.0),
    ({"retry_after": "7"}, 7.0),
    ({"retry_after": "0"}, 0.0),
    ({"retry_after": "Fri, 07 Jun 2024 20:01:00 GMT", "date": "Fri, 07 Jun 2024 20:00:15 GMT"}, 45.0),
])
def test_rate_limited_waits_60_s_unless_retry_after(headers, expected):
    parsed = polygon.parse_daily(fixture("rate_limited.json", 429, **headers), *JUNE)
    assert parsed.outcome is Outcome.RATE_LIMITED and parsed.retry_after == expected


def test_not_authorized_status_is_not_entitled_whatever_the_http_status():
    body = json.loads((FIXTURES / "not_authorized.json").read_text())
    assert polygon.parse_daily(response(body, 200), *JUNE).outcome is Outcome.NOT_ENTITLED


def test_message_never_carries_a_key():
    body = {"status": "ERROR", "error": "Unknown API Key apiKey=sk_live_123"}
    parsed = polygon.parse_daily(response(body, 401), *JUNE)
    assert parsed.outcome is Outcome.AUTH_FAILED and "sk_live_123" not in parsed.message


GOOD = (FIXTURES / "aggs_success.json").read_bytes().rstrip()


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS)
@pytest.mark.parametrize(("body", "status"), [
    (GOOD[: len(GOOD) // 2], 200),  # truncated
    (GOOD[:-1], 200),
    (b"", 200),
    (b"\xff\xfe garbled", 200),
    (b"<html><body>502 Bad Gateway</body></html>", 502),
    (b"Internal Server Error", 500),
    (b"[1, 2, 3]", 200),
    (b'{"status": "OK", "resultsCount": 5}', 200),  # promised rows, none sent
    (b'{"status": "OK", "resultsCount": 1, "results": {"t": 1}}', 200),
    (b'{"status": "ERROR", "error": "something odd"}', 200),
    (b'{"results": []}', 200),  # no status
    (b"[" * 100_000, 200),
])
def test_garbled_bodies_are_protocol_errors_not_exceptions(parse, body, status):
    assert parse(response(body, status)).outcome is Outcome.PROTOCOL_ERROR


# ------------------------------------------------------------------------ rejected rows


def test_unreadable_rows_are_rejected_with_reason_and_raw_row():
    body = aggs(
        bar(ms("2024-06-03")),
        bar(ms("2024-06-04"), o=0, h=0, l=0, c=0, v=0),
        {"v": None, "o": None, "c": None, "h": None, "l": None, "t": ms("2024-06-05")},
        bar(ms("2024-06-06"), c="194.48"),
        {"v": 10.0, "o": 1.0, "h": 2.0, "l": 0.5, "t": ms("2024-06-07")},  # no close
        bar(None),
        "garbage",
        {"o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "t": ms("2024-06-10")},  # no volume: kept as NaN
    )
    parsed = polygon.parse_daily(response(body), *JUNE)
    assert parsed.outcome is Outcome.OK
    assert dates(parsed.bars) == ["2024-06-03", "2024-06-10"]
    assert math.isnan(parsed.bars["volume"].iloc[1])
    reasons = [(r["date"], r["reason"]) for r in parsed.rejected]
    assert reasons == [("2024-06-04", "zero_price"), ("2024-06-05", "all_null"),
                       ("2024-06-06", "bad_value:close"), ("2024-06-07", "missing_value:close"),
                       ("", "bad_date"), ("", "bad_row")]
    assert parsed.rejected[0]["raw"] == body["results"][1]
    assert parsed.rejected[5]["raw"] == "garbage"


def test_rejects_outside_the_window_are_left_out():
    body = aggs(bar(ms("2024-05-31"), o=0), bar(ms("2024-06-03")))
    parsed = polygon.parse_daily(response(body), *JUNE)
    assert dates(parsed.bars) == ["2024-06-03"] and parsed.rejected == ()


def test_float_noise_is_rounded_to_four_places():
    body = aggs(bar(ms("2024-06-03"), o=194.63500000000002, h=195.3199999, l=193.03421, c=194.12345))
    b = polygon.parse_daily(response(body), *JUNE).bars.iloc[0]
    assert (b["open"], b["high"], b["low"], b["close"]) == (194.635, 195.32, 193.0342, 194.1234)


# ------------------------------------------------------------------------ intraday


def test_intraday_ts_is_utc_and_session_date_is_new_york():
    body = aggs(bar(ms("2024-01-02 04:00")), bar(ms("2024-01-02 19:59")), bar(ms("2024-06-03 19:59")))
    parsed = polygon.parse_intraday(response(body), *WIDE)
    bars = parsed.intraday
    assert parsed.outcome is Outcome.OK
    assert list(bars.columns) == ["ts", "open", "high", "low", "close", "volume", "session_date"]
    assert bars["ts"].tolist() == [pd.Timestamp("2024-01-02 09:00", tz="UTC"),
                                   pd.Timestamp("2024-01-03 00:59", tz="UTC"),
                                   pd.Timestamp("2024-06-03 23:59", tz="UTC")]
    sessions = [d.strftime("%Y-%m-%d") for d in bars["session_date"]]
    assert sessions == ["2024-01-02", "2024-01-02", "2024-06-03"]
    only_jan_2 = polygon.parse_intraday(response(body), dt.date(2024, 1, 2), dt.date(2024, 1, 2))
    assert len(only_jan_2.intraday) == 2
    assert len(polygon.parse_intraday(response(body)).intraday) == 3  # no window: every bar


# ------------------------------------------------------------------------ requests


def test_constants():
    assert (polygon.NAME, polygon.KEY_PARAM) == ("polygon", "apiKey")
    assert polygon.BASE_URL == "https://api.polygon.io"
    assert polygon.DEFAULT_LIMITS == {"calls_per_second": None, "calls_per_minute": 5,
                                      "calls_per_hour": None, "calls_per_day": None}
    assert polygon.QUOTA_RESETS is None


@pytest.mark.parametrize(("canonical", "vendor"),
                         [("BRK.B", "BRK.B"), ("brk.b", "BRK.B"), (" AAPL ", "AAPL")])
def test_vendor_symbol(canonical, vendor):
    assert polygon.vendor_symbol(canonical) == vendor


def test_daily_request_asks_for_prices_as_traded():
    request = polygon.daily_request("brk.b", dt.date(2024, 6, 3), dt.date(2024, 6, 7))
    assert request.path == "/v2/aggs/ticker/BRK.B/range/1/day/2024-06-03/2024-06-07"
    assert dict(request.params) == {"adjusted": "false", "sort": "asc", "limit": "50000"}
    assert request.endpoint == "daily"
    assert_no_key(request)


@pytest.mark.parametrize(("interval", "span"), [(1, "1/minute"), ("5", "5/minute"), ("15m", "15/minute"),
                                                ("30min", "30/minute"), (60, "1/hour"), ("1h", "1/hour"),
                                                (120, "2/hour")])
def test_intraday_request_spans_whole_new_york_days_in_ms(interval, span):
    request = polygon.intraday_request("AAPL", interval, dt.date(2024, 1, 2), dt.date(2024, 1, 2))
    # 00:00 EST = 05:00Z .. 23:59:59.999 EST
    assert request.path == f"/v2/aggs/ticker/AAPL/range/{span}/1704171600000/1704257999999"
    assert dict(request.params) == {"adjusted": "false", "sort": "asc", "limit": "50000"}
    assert request.endpoint == "intraday"
    assert_no_key(request)


@pytest.mark.parametrize("interval", [0, "1d", "", "-5", 1440])
def test_intraday_request_refuses_other_intervals(interval):
    with pytest.raises(ValueError, match="interval"):
        polygon.intraday_request("AAPL", interval, dt.date(2024, 6, 3), dt.date(2024, 6, 3))


def test_requests_refuse_a_reversed_window():
    with pytest.raises(ValueError, match="after"):
        polygon.daily_request("AAPL", dt.date(2024, 6, 7), dt.date(2024, 6, 3))


# ------------------------------------------------------------------------ next_page

NEXT = ("https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/minute/1704171600000/1704257999999"
        "?cursor=bGltaXQ9NTAwMDAmc29ydD1hc2M%3D&adjusted=false&apiKey=sk_live_123&sort=asc")


def test_next_page_strips_the_key_and_keeps_the_rest_byte_for_byte():
    url = polygon.next_page(response(aggs(bar(ms("2024-01-02 04:00")), next_url=NEXT)))
    assert url == ("https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/minute/1704171600000/1704257999999"
                   "?cursor=bGltaXQ9NTAwMDAmc29ydD1hc2M%3D&adjusted=false&sort=asc")
    assert "sk_live_123" not in url


@pytest.mark.parametrize("url", [
    "https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=abc&APIKEY=sk_live_123",
    "https://api.massive.com/v2/aggs/ticker/AAPL/range/1/minute/1/2?apikey=sk_live_123&cursor=abc",
])
def test_next_page_strips_the_key_whatever_its_case_and_host(url):
    got = polygon.next_page(response({"status": "OK", "results": [], "next_url": url}))
    assert got is not None and got.endswith("?cursor=abc") and "sk_live_123" not in got


@pytest.mark.parametrize(("body", "status"), [
    (aggs(bar(ms("2024-06-03"))), 200),  # last page
    ({"status": "OK", "next_url": "https://evil.example/v2/aggs?cursor=x"}, 200),  # the key would follow
    ({"status": "OK", "next_url": "http://api.polygon.io/v2/aggs?cursor=x"}, 200),  # not https
    ({"status": "OK", "next_url": 42}, 200),
    ({"status": "ERROR", "next_url": NEXT}, 429),
    (b'{"status": "OK", "next_url": "https://api.polygon.io/v2/a', 200),  # truncated
])
def test_next_page_none(body, status):
    assert polygon.next_page(response(body, status)) is None


def test_the_fixture_is_a_last_page():
    assert polygon.next_page(fixture("aggs_success.json")) is None
