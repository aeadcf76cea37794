"""Tests for the stooq vendor module: every fixture and described case, requests, parsing."""

from __future__ import annotations

import datetime as dt

import httpx
import pandas as pd
import pytest

from stockpipe.errors import AuthFailedError, StopsProvider
from stockpipe.providers import stooq
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS
from stockpipe.providers.wire import Outcome, Response, error_for

from helpers import PROVIDER_FIXTURES, dates, fixture_response
from helpers import response as any_response

FIXTURES = PROVIDER_FIXTURES / "stooq"
WIDE = (dt.date(2000, 1, 1), dt.date(2100, 1, 1))
JUNE = (dt.date(2024, 6, 1), dt.date(2024, 6, 30))
KEY = "stooqsecret0123456789"
HEADER = "Date,Open,High,Low,Close,Volume\r\n"

# Described-only bodies (PROVIDERS.md), written from the descriptions.
APIKEY_REQUIRED = ("Get your apikey:\r\n1. Open https://stooq.com/q/d/?s=aapl.us&get_apikey\r\n"
                   "2. Enter the code shown, then add &apikey=<your key> to the download link.\r\n")
ANTI_BOT = ("<!DOCTYPE html><html><head><title>stooq</title></head><body><noscript>This site requires "
            "JavaScript to verify your browser.</noscript><script src=\"/challenge.js\"></script></body></html>")


def response(body: bytes | str, status: int = 200, content_type: str = "text/plain", **headers: str) -> Response:
    """helpers.response for stooq, whose answers are text: text/plain unless told."""
    return any_response(body, status, content_type, **headers)


def fixture(name: str) -> Response:
    return fixture_response("stooq", name, content_type="text/csv" if name.endswith(".csv") else "text/plain")


def csv_body(*lines: str) -> str:
    return HEADER + "".join(line + "\r\n" for line in lines)


# ------------------------------------------------------------------------ fixtures and described cases

TABLE = {
    "success.csv": Outcome.OK,
    "adjusted_history.csv": Outcome.OK,  # adjusted prices: test_adjusted_vendors.py
    "unknown_symbol.txt": Outcome.SYMBOL_NOT_FOUND,
    "quota_exhausted.txt": Outcome.QUOTA_EXHAUSTED,
}


def test_the_table_covers_every_fixture_file():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_fixture_gives_its_outcome(name):
    assert stooq.parse_daily(fixture(name), *JUNE).outcome is TABLE[name]


@pytest.mark.parametrize("body, outcome", [
    (APIKEY_REQUIRED, Outcome.AUTH_FAILED),  # apikey_required.txt (described only)
    ("No data\r\n", Outcome.SYMBOL_NOT_FOUND),
    ("Brak danych", Outcome.SYMBOL_NOT_FOUND),  # stooq.pl
    ("Exceeded the daily hits limit\n", Outcome.QUOTA_EXHAUSTED),
    (HEADER, Outcome.EMPTY),  # a valid symbol with no rows in the window
    ("Date,Open,High,Low,Close,Volume\n", Outcome.EMPTY),
])
def test_described_cases(body, outcome):
    parsed = stooq.parse_daily(response(body), *JUNE)
    assert parsed.outcome is outcome
    assert parsed.rejected == ()


def test_the_anti_bot_page_stops_the_provider_without_blaming_the_key():
    parsed = stooq.parse_daily(response(ANTI_BOT, content_type="text/html"), *JUNE)
    assert parsed.outcome is Outcome.QUOTA_EXHAUSTED
    stop = error_for(parsed.outcome, "stooq", "AAPL daily", parsed.message)
    assert isinstance(stop, StopsProvider) and not isinstance(stop, AuthFailedError)
    assert "JavaScript" in parsed.message and parsed.bars is None


def test_messages_are_the_vendors_words():
    assert stooq.parse_daily(fixture("quota_exhausted.txt"), *JUNE).message == "Exceeded the daily hits limit"
    assert stooq.parse_daily(fixture("unknown_symbol.txt"), *JUNE).message == "No data"
    assert stooq.parse_daily(response(APIKEY_REQUIRED), *JUNE).message.startswith("Get your apikey")


@pytest.mark.parametrize("body", [
    b"", b"   \r\n", b"<html><body>502 Bad Gateway</body></html>", b"\x00\xff\xfe\x89PNG garbage",
    b"Open,High,Low\r\n1,2,3\r\n", b"No data available for aapl.us", b"Dat",
])
def test_garbled_or_truncated_bodies_are_protocol_errors(body):
    parsed = stooq.parse_daily(response(body), *JUNE)
    assert parsed.outcome is Outcome.PROTOCOL_ERROR
    assert parsed.bars is None


def test_http_429_and_5xx():
    throttled = stooq.parse_daily(response("Too Many Requests", 429, retry_after="30"), *JUNE)
    assert (throttled.outcome, throttled.retry_after) == (Outcome.RATE_LIMITED, 30.0)
    assert stooq.parse_daily(response("oops", 503, "text/html"), *JUNE).outcome is Outcome.PROTOCOL_ERROR


# ------------------------------------------------------------------------ values


def test_success_bars_have_the_files_numbers():
    parsed = stooq.parse_daily(fixture("success.csv"), *JUNE)
    bars = parsed.bars
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert str(bars["date"].dtype) == "datetime64[us]"
    assert dates(bars) == ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]
    assert bars["close"].tolist() == [194.03, 194.35, 195.87, 194.48, 196.89]
    assert bars["open"].tolist() == [192.9, 194.64, 195.4, 195.685, 194.65]
    assert bars["low"].iloc[1] == 193.0342 and bars["high"].iloc[-1] == 196.94
    assert bars["volume"].tolist() == [50080539, 47471445, 54156785, 41181753, 53103912]
    assert bars["adj_close"].isna().all()
    assert list(parsed.actions.columns) == list(ACTION_COLUMNS) and parsed.actions.empty
    assert parsed.rejected == () and parsed.message == ""


def test_order_and_line_ends_do_not_matter():
    crlf = (FIXTURES / "success.csv").read_bytes().decode()
    assert "\r\n" in crlf
    header, *lines = [line for line in crlf.split("\r\n") if line]
    expected = stooq.parse_daily(fixture("success.csv"), *JUNE).bars
    for body in ("\n".join([header, *lines]), "\r\n".join([header, *reversed(lines)])):
        pd.testing.assert_frame_equal(stooq.parse_daily(response(body), *JUNE).bars, expected)


def test_rows_outside_the_window_are_dropped():
    parsed = stooq.parse_daily(fixture("success.csv"), dt.date(2024, 6, 4), dt.date(2024, 6, 6))
    assert dates(parsed.bars) == ["2024-06-04", "2024-06-05", "2024-06-06"]
    later = stooq.parse_daily(fixture("success.csv"), dt.date(2024, 7, 1), dt.date(2024, 7, 31))
    assert later.outcome is Outcome.EMPTY and later.bars.empty


def test_unreadable_rows_are_rejected_with_reason_and_raw_row():
    body = csv_body("2024-06-03,1,2,0.5,1.5,100", "2024-06-04,1,2,0.5,NA,100", "2024-06-05,,,,,",
                    "2024-06-06,x,2,0.5,1.5,100", "2024-06-07,0,0,0,0,0", "2024-06-10,1,2,0.5,1.5,",
                    "2024-06-03,1,2,0.5,1.5,100", "06/11/2024,1,2,0.5,1.5,100", "2024-06-12,1,2",
                    "2023-01-03,1,2,0.5,NA,100")  # outside the window: not reported
    parsed = stooq.parse_daily(response(body), *JUNE)
    assert dates(parsed.bars) == ["2024-06-03"]
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [
        ("2024-06-04", "missing_value:close"), ("2024-06-05", "all_null"), ("2024-06-06", "not_a_number:open"),
        ("2024-06-07", "zero_price"), ("2024-06-10", "missing_value:volume"), ("2024-06-03", "duplicate_date"),
        ("06/11/2024", "bad_date"), ("2024-06-12", "field_count")]
    assert parsed.rejected[0]["raw"] == {"Date": "2024-06-04", "Open": "1", "High": "2", "Low": "0.5",
                                         "Close": "NA", "Volume": "100"}


# ------------------------------------------------------------------------ symbols and requests


@pytest.mark.parametrize("symbol, expected", [
    ("AAPL", "aapl.us"), ("brk.b", "brk-b.us"), ("RDS-A", "rds-a.us"), ("VOD.L", "vod.uk"),
    ("SAP.DE", "sap.de"), ("7203.T", "7203.jp"), ("OTP.BD", "otp.hu"), ("PKN.WA", "pkn"),
])
def test_vendor_symbol(symbol, expected):
    assert stooq.vendor_symbol(symbol) == expected


@pytest.mark.parametrize("symbol", ["0700.HK", "SHOP.TO", "X.V", "^GSPC", "EURUSD=X", "A.B.C", ""])
def test_vendor_symbol_refuses_unmapped_markets(symbol):
    with pytest.raises(ValueError):
        stooq.vendor_symbol(symbol)


def test_daily_request():
    request = stooq.daily_request("aapl.us", dt.date(2024, 6, 3), dt.date(2024, 6, 7))
    assert request.path == "/q/d/l/"
    assert dict(request.params) == {"s": "aapl.us", "i": "d", "d1": "20240603", "d2": "20240607"}
    assert request.endpoint == "daily" and not request.headers
    assert stooq.KEY_PARAM not in request.params


@pytest.mark.parametrize("symbol, start, end", [
    ("aapl.us", dt.date(2024, 6, 7), dt.date(2024, 6, 3)), ("AAPL", *JUNE), ("aapl.us&i=w", *JUNE), ("", *JUNE),
])
def test_bad_request_parameters_fail_before_any_call(symbol, start, end):
    with pytest.raises(ValueError):
        stooq.daily_request(symbol, start, end)


def test_constants():
    assert (stooq.NAME, stooq.BASE_URL, stooq.KEY_PARAM) == ("stooq", "https://stooq.com", "apikey")
    assert set(stooq.DEFAULT_LIMITS) == {"calls_per_second", "calls_per_minute", "calls_per_hour", "calls_per_day"}
    assert all(limit is None for limit in stooq.DEFAULT_LIMITS.values())
    assert stooq.QUOTA_RESETS


@pytest.mark.parametrize("name, outcome", [("success.csv", Outcome.OK), ("quota_exhausted.txt", Outcome.QUOTA_EXHAUSTED)])
def test_round_trip_through_an_http_transport(name, outcome):
    # The HTTP layer's job, done by hand: add the key, send, hand the answer to the parser.
    seen: list[httpx.URL] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, content=(FIXTURES / name).read_bytes(), headers={"content-type": "text/csv"})

    request = stooq.daily_request(stooq.vendor_symbol("AAPL"), *JUNE)
    with httpx.Client(base_url=stooq.BASE_URL, transport=httpx.MockTransport(serve)) as client:
        reply = client.get(request.path, params={**request.params, stooq.KEY_PARAM: KEY})
    parsed = stooq.parse_daily(Response(reply.status_code, dict(reply.headers), reply.content), *JUNE)
    assert seen[0].path == "/q/d/l/" and seen[0].params["s"] == "aapl.us" and seen[0].params["apikey"] == KEY
    assert parsed.outcome is outcome
    assert KEY not in repr(parsed)
