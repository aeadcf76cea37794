"""Tests for the pure Yahoo chart module: fixture bodies and described-only cases -> outcome
and exact values; trading dates on non-US exchanges; symbols; requests; intraday windows."""

from __future__ import annotations

import datetime as dt
import json
import math
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pandas as pd
import pytest

from stockpipe.providers import yahoo
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS
from stockpipe.providers.wire import Outcome, Response
from conftest import PROVIDER_FIXTURES
from helpers import fixture_bytes, through_httpx

FIXTURES = PROVIDER_FIXTURES / "yahoo"
UTC = dt.timezone.utc
MAY = (dt.date(2024, 5, 1), dt.date(2024, 5, 31))
JUNE = (dt.date(2024, 6, 1), dt.date(2024, 6, 30))
NOW = dt.datetime(2024, 6, 20, 21, 0, tzinfo=UTC)


def browser_sent(sent: httpx.Request) -> None:
    assert sent.headers["user-agent"].startswith("Mozilla/5.0")


def fixture(name: str, status: int = 200, content_type: str = "application/json", **headers) -> Response:
    """The fixture as Yahoo's answer to AAPL's May bars, through httpx."""
    return through_httpx(yahoo.daily_request("AAPL", *MAY), yahoo.BASE_URL, status, fixture_bytes("yahoo", name),
                         content_type, check=browser_sent, **headers)


def body(status: int, data) -> Response:
    return Response(status, {"content-type": "application/json"}, json.dumps(data).encode())


def f32(values):
    """Prices as Yahoo sends them: float32 widened to double (None stays null)."""
    return [None if v is None else float(np.float32(v)) for v in values]


def at(day: str, time: str, zone: str) -> int:
    """Epoch seconds of a local wall-clock time on an exchange."""
    return int(dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=ZoneInfo(zone)).timestamp())


def chart(stamps, *, close, open_=None, high=None, low=None, volume=None, adjclose=None, events=None,
          **meta) -> dict:
    meta = {"currency": "USD", "exchangeTimezoneName": "America/New_York", "gmtoffset": -14400,
            "priceHint": 2, **meta}
    quote = {"open": f32(open_ or close), "high": f32(high or close), "low": f32(low or close),
             "close": f32(close), "volume": volume or [1000 if c is not None else None for c in close]}
    result = {"meta": {k: v for k, v in meta.items() if v is not None}, "timestamp": stamps,
              "indicators": {"quote": [quote], "adjclose": [{"adjclose": f32(adjclose or close)}]}}
    if events:
        result["events"] = events
    return {"chart": {"result": [result], "error": None}}


def dates(frame: pd.DataFrame, column: str = "date") -> list[str]:
    return frame[column].dt.strftime("%Y-%m-%d").tolist()


# --- every fixture file -> its outcome ----------------------------------------------

FIXTURE_OUTCOMES = {  # file -> (HTTP status, content type, outcome)
    "success.json": (200, "application/json", Outcome.OK),
    "split_after_window.json": (200, "application/json", Outcome.OK),  # test_split_basis.py
    "split_before_later_split.json": (200, "application/json", Outcome.OK),
    "no_data_in_range.json": (200, "application/json", Outcome.EMPTY),
    "unknown_symbol.json": (404, "application/json", Outcome.SYMBOL_NOT_FOUND),
    "unauthorized_crumb.json": (401, "application/json", Outcome.AUTH_FAILED),
    "rate_limited.txt": (429, "text/plain", Outcome.RATE_LIMITED),
}


def test_every_fixture_file_is_covered():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(FIXTURE_OUTCOMES)


@pytest.mark.parametrize("name", sorted(FIXTURE_OUTCOMES))
@pytest.mark.parametrize("parse", ["daily", "intraday"])
def test_fixture_outcome(name, parse):
    status, content_type, outcome = FIXTURE_OUTCOMES[name]
    response = fixture(name, status, content_type)
    every_day = (dt.date(2000, 1, 1), dt.date(2100, 1, 1))
    parsed = yahoo.parse_daily(response, *every_day) if parse == "daily" else yahoo.parse_intraday(response)
    assert parsed.outcome is outcome
    assert len(parsed.message) <= 200


def test_success_bars_actions_and_currency():
    parsed = yahoo.parse_daily(fixture("success.json"), *MAY)
    bars = parsed.bars
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert str(bars["date"].dtype) == "datetime64[us]"
    assert dates(bars) == ["2024-05-06", "2024-05-07", "2024-05-08", "2024-05-09", "2024-05-10"]
    assert bars["close"].tolist() == [181.71, 182.4, 182.74, 184.57, 183.05]  # priceHint 2
    assert bars["open"].iloc[0] == 182.35 and bars["high"].iloc[-1] == 185.09
    assert bars["adj_close"].tolist() == [181.4639, 182.1529, 182.4925, 184.32, 183.05]
    assert (bars["adj_close"].iloc[:4] < bars["close"].iloc[:4]).all()  # before the ex-date
    assert bars["volume"].tolist() == [78569700.0, 77305800.0, 45057100.0, 48983000.0, 50759500.0]
    assert list(parsed.actions.columns) == list(ACTION_COLUMNS)
    assert parsed.actions.to_dict("records") == [
        {"date": pd.Timestamp("2024-05-10"), "kind": "dividend", "value": 0.25}]
    assert parsed.currency == "USD" and parsed.rejected == ()


def test_window_keeps_only_exchange_dates_inside_it_and_every_action_reported_from_its_start():
    parsed = yahoo.parse_daily(fixture("success.json"), dt.date(2024, 5, 7), dt.date(2024, 5, 9))
    assert dates(parsed.bars) == ["2024-05-07", "2024-05-08", "2024-05-09"]
    # the 2024-05-10 dividend is after the window, but the answer reports it: a split there
    # would be needed to put the window's bars back as traded
    assert dates(parsed.actions) == ["2024-05-10"]
    assert parsed.basis == dt.date(2024, 5, 10)  # the answer's last day
    before = yahoo.parse_daily(fixture("success.json"), dt.date(2024, 5, 8), dt.date(2024, 5, 9))
    assert dates(before.actions) == ["2024-05-10"]
    after = yahoo.parse_daily(fixture("success.json"), dt.date(2024, 5, 6), dt.date(2024, 5, 6))
    assert dates(after.actions) == ["2024-05-10"]


def test_no_data_in_range_is_empty_and_keeps_currency():
    parsed = yahoo.parse_daily(fixture("no_data_in_range.json"), *MAY)
    assert parsed.outcome is Outcome.EMPTY and parsed.currency == "USD"


def test_unknown_symbol_message_is_the_vendors():
    parsed = yahoo.parse_daily(fixture("unknown_symbol.json", 404), *MAY)
    assert parsed.message == "Not Found: No data found, symbol may be delisted"


def test_not_found_about_the_date_range_is_empty():
    error = {"chart": {"result": None, "error": {
        "code": "Not Found", "description": "No data found for this date range, symbol may be delisted"}}}
    assert yahoo.parse_daily(body(404, error), *MAY).outcome is Outcome.EMPTY


@pytest.mark.parametrize("status", [401, 200])
@pytest.mark.parametrize("description", ["Invalid Crumb", "Invalid Cookie"])
def test_a_refused_session_is_auth_failed_in_the_vendors_words(status, description):
    data = json.loads((FIXTURES / "unauthorized_crumb.json").read_text().replace("Invalid Crumb", description))
    parsed = yahoo.parse_daily(body(status, data), *MAY)
    assert parsed.outcome is Outcome.AUTH_FAILED and parsed.message == f"Unauthorized: {description}"
    assert yahoo.parse_intraday(Response(401, {}, b"Unauthorized")).outcome is Outcome.AUTH_FAILED


def test_session_refused_message_names_the_session_and_the_way_out():
    text = yahoo.session_refused_message("AAPL daily", "Unauthorized: Invalid Crumb")
    assert text.startswith("yahoo refused the session (cookie and crumb) for AAPL daily: Unauthorized: Invalid Crumb;")
    assert "try again later" in text and "--provider" in text and "key" not in text.lower()


# --- the session handshake (pure parts; the I/O is in session.py) --------------------


def test_the_cookie_comes_from_fc_yahoo_com_or_the_configured_server():
    assert yahoo.cookie_request(yahoo.BASE_URL).path == "https://fc.yahoo.com/"
    assert yahoo.cookie_request("https://query2.finance.yahoo.com/").path == "https://fc.yahoo.com/"
    assert yahoo.cookie_request("http://127.0.0.1:8080").path == "/"  # a mirror or a test server
    crumb = yahoo.crumb_request()
    assert crumb.path == "/v1/test/getcrumb" and "Mozilla" in crumb.headers["User-Agent"]


@pytest.mark.parametrize("status, text, crumb", [
    (200, "Fq1mQ2x3yZ0\n", "Fq1mQ2x3yZ0"), (200, "a/b.c", "a/b.c"), (200, "", None), (200, "   ", None),
    (200, "<html>consent</html>", None), (200, '{"finance": {"error": {}}}', None), (401, "Fq1mQ2x3yZ0", None),
    (200, "Too Many Requests", None), (429, "Too Many Requests", None), (200, "x" * 65, None),
])
def test_parse_crumb_takes_only_a_crumb(status, text, crumb):
    assert yahoo.parse_crumb(Response(status, {}, text.encode())) == crumb


def test_with_crumb_adds_it_and_keeps_the_rest():
    request = yahoo.daily_request("AAPL", *MAY)
    signed = yahoo.with_crumb(request, "Fq1mQ2x3yZ0")
    assert signed.params == {**request.params, "crumb": "Fq1mQ2x3yZ0"} and "crumb" not in request.params
    assert (signed.path, signed.endpoint) == (request.path, request.endpoint)


# --- described only: split_and_nulls ------------------------------------------------

SPLIT_DAYS = ["2024-06-05", "2024-06-06", "2024-06-07", "2024-06-10", "2024-06-11"]


def split_and_nulls() -> dict:
    stamps = [at(day, "09:30", "America/New_York") for day in SPLIT_DAYS]
    data = chart(stamps, close=[122.44, 120.99, None, 121.79, 120.91],
                 adjclose=[122.43, 120.98, None, 121.78, 120.91],
                 events={"splits": {str(stamps[3]): {"date": stamps[3], "numerator": 10,
                                                     "denominator": 1, "splitRatio": "10:1"}},
                         "dividends": {str(stamps[4]): {"amount": 0.01, "date": stamps[4]}}})
    data["chart"]["result"][0]["indicators"]["adjclose"][0]["adjclose"][2] = None
    return data


def test_split_and_nulls_drops_the_all_null_row_and_reads_the_split():
    parsed = yahoo.parse_daily(body(200, split_and_nulls()), *JUNE)
    assert parsed.outcome is Outcome.OK
    assert dates(parsed.bars) == ["2024-06-05", "2024-06-06", "2024-06-10", "2024-06-11"]
    assert parsed.bars["close"].tolist() == [122.44, 120.99, 121.79, 120.91]
    assert (parsed.bars[["open", "high", "low", "close", "volume"]] > 0).all().all()  # no zeros
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [("2024-06-07", "all_null")]
    assert parsed.rejected[0]["raw"]["close"] is None
    assert parsed.actions.to_dict("records") == [
        {"date": pd.Timestamp("2024-06-10"), "kind": "split", "value": 10.0},
        {"date": pd.Timestamp("2024-06-11"), "kind": "dividend", "value": 0.01}]


def test_split_ratio_text_is_read_when_numbers_are_missing():
    data = split_and_nulls()
    split = next(iter(data["chart"]["result"][0]["events"]["splits"].values()))
    del split["numerator"], split["denominator"]
    split["splitRatio"] = "1:4"  # a reverse split
    actions = yahoo.parse_daily(body(200, data), *JUNE).actions
    assert actions.loc[actions["kind"] == "split", "value"].tolist() == [0.25]


@pytest.mark.parametrize("column, value, reason", [
    ("close", None, "missing_value:close"),
    ("volume", None, "missing_value:volume"),
    ("open", 0, "zero_price:open"),
    ("high", "abc", "not_a_number:high"),
])
def test_unreadable_rows_are_rejected_with_reason(column, value, reason):
    data = chart([at("2024-06-05", "09:30", "America/New_York"), at("2024-06-06", "09:30", "America/New_York")],
                 close=[10.0, 11.0])
    data["chart"]["result"][0]["indicators"]["quote"][0][column][1] = value
    parsed = yahoo.parse_daily(body(200, data), *JUNE)
    assert dates(parsed.bars) == ["2024-06-05"]
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [("2024-06-06", reason)]


def test_missing_adjclose_leaves_nan_not_a_reject():
    data = chart([at("2024-06-05", "09:30", "America/New_York")], close=[10.0])
    data["chart"]["result"][0]["indicators"]["adjclose"] = [{}]
    parsed = yahoo.parse_daily(body(200, data), *JUNE)
    assert parsed.rejected == () and math.isnan(parsed.bars["adj_close"].iloc[0])


# --- trading dates, rounding, currency ------------------------------------------------

TOKYO = [int(dt.datetime(2024, 6, 9, 15, tzinfo=UTC).timestamp()),  # 2024-06-10 00:00 JST
         int(dt.datetime(2024, 6, 10, 15, tzinfo=UTC).timestamp())]


@pytest.mark.parametrize("zone", ["Asia/Tokyo", None])  # None: only gmtoffset is sent
def test_tokyo_bar_dated_by_the_exchange_not_by_utc(zone):
    data = chart(TOKYO, close=[3361.25, 3370.5], currency="JPY", exchangeTimezoneName=zone,
                 gmtoffset=32400, priceHint=1)
    parsed = yahoo.parse_daily(body(200, data), dt.date(2024, 6, 10), dt.date(2024, 6, 11))
    assert dates(parsed.bars) == ["2024-06-10", "2024-06-11"]  # UTC would say 06-09, 06-10
    assert parsed.bars["close"].tolist() == [3361.25, 3370.5]  # priceHint 1, but 2 dp kept
    assert parsed.currency == "JPY"


def test_no_time_zone_at_all_is_a_protocol_error():
    data = chart(TOKYO, close=[1.0, 2.0], exchangeTimezoneName=None, gmtoffset=None)
    assert yahoo.parse_daily(body(200, data), *JUNE).outcome is Outcome.PROTOCOL_ERROR


def test_gbp_pence_kept_as_sent():
    stamps = [at("2024-06-10", "08:00", "Europe/London")]
    data = chart(stamps, close=[71.52], currency="GBp", exchangeTimezoneName="Europe/London", gmtoffset=3600)
    parsed = yahoo.parse_daily(body(200, data), *JUNE)
    assert parsed.currency == "GBp" and parsed.bars["close"].tolist() == [71.52]


@pytest.mark.parametrize("hint, expected", [(4, 0.1234), (None, 0.1234), (2, 0.12), (0, 0.12)])
def test_rounding_follows_price_hint_with_at_least_two_decimals(hint, expected):
    data = chart([at("2024-06-05", "09:30", "America/New_York")], close=[0.1234], priceHint=hint)
    assert yahoo.parse_daily(body(200, data), *JUNE).bars["close"].tolist() == [expected]


# --- errors, throttling, garbage ----------------------------------------------------

RANGE_ERROR = {"chart": {"result": None, "error": {
    "code": "Unprocessable Entity",
    "description": "1m data not available for startTime=1715000000 and endTime=1717000000. "
                   "Only 8 days worth of 1m granularity data are allowed to be fetched per request."}}}


@pytest.mark.parametrize("status", [422, 200])
def test_range_not_available_is_not_entitled_whatever_the_status(status):
    assert yahoo.parse_intraday(body(status, RANGE_ERROR)).outcome is Outcome.NOT_ENTITLED
    parsed = yahoo.parse_daily(body(status, RANGE_ERROR), *MAY)
    assert parsed.outcome is Outcome.NOT_ENTITLED and parsed.message.startswith("Unprocessable Entity: 1m data")


@pytest.mark.parametrize("headers, expected", [
    ({}, None),
    ({"Retry-After": "30"}, 30.0),
    ({"Retry-After": "Thu, 20 Jun 2024 21:01:00 GMT", "Date": "Thu, 20 Jun 2024 21:00:15 GMT"}, 45.0),
])
def test_rate_limited_honours_retry_after(headers, expected):
    parsed = yahoo.parse_daily(fixture("rate_limited.txt", 429, "text/plain", **headers), *MAY)
    assert parsed.outcome is Outcome.RATE_LIMITED and parsed.retry_after == expected
    assert "Too Many Requests" in parsed.message


@pytest.mark.parametrize("status, text", [(429, b"<html><body>Too Many Requests</body></html>"),
                                          (429, b"Edge: Too Many Requests"),
                                          (200, b"Too Many Requests\r\n")])
def test_rate_limited_by_body_shape_too(status, text):
    parsed = yahoo.parse_daily(Response(status, {"content-type": "text/html"}, text), *MAY)
    assert parsed.outcome is Outcome.RATE_LIMITED


SUCCESS = (FIXTURES / "success.json").read_bytes() if FIXTURES.is_dir() else b""


@pytest.mark.parametrize("data", [
    SUCCESS[:40], SUCCESS[: len(SUCCESS) // 2], SUCCESS[:-5], b"", b"null", b"[]",
    b"<html><title>Yahoo consent</title></html>", b'{"chart": {"result": [], "error": null}}',
    b'{"chart": {"result": [{"meta": {"gmtoffset": 0}, "timestamp": [1, 2],'
    b' "indicators": {"quote": [{"close": [1.0]}]}}]}}',  # columns shorter than timestamps
])
def test_truncated_or_garbled_bodies_are_protocol_errors(data):
    assert yahoo.parse_daily(Response(200, {}, data), *MAY).outcome is Outcome.PROTOCOL_ERROR
    assert yahoo.parse_intraday(Response(200, {}, data)).outcome is Outcome.PROTOCOL_ERROR


def test_garbled_events_are_a_protocol_error_not_an_exception():
    data = chart([at("2024-06-05", "09:30", "America/New_York")], close=[10.0], events={"splits": 7})
    assert yahoo.parse_daily(body(200, data), *JUNE).outcome is Outcome.PROTOCOL_ERROR


def test_server_error_is_a_protocol_error_with_the_status():
    parsed = yahoo.parse_daily(Response(503, {}, b"Service Unavailable"), *MAY)
    assert parsed.outcome is Outcome.PROTOCOL_ERROR and parsed.message == "HTTP 503: Service Unavailable"


# --- intraday -------------------------------------------------------------------------


def test_intraday_ts_utc_and_local_session_date():
    stamps = [at("2024-06-10", "10:00", "Pacific/Auckland") + 60 * i for i in range(3)]
    data = chart(stamps, close=[2.615, None, 2.62], exchangeTimezoneName="Pacific/Auckland",
                 gmtoffset=43200, currency="NZD", priceHint=3)
    parsed = yahoo.parse_intraday(body(200, data))
    frame = parsed.intraday
    assert parsed.outcome is Outcome.OK
    assert list(frame.columns) == ["ts", "open", "high", "low", "close", "volume", "session_date"]
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"].tolist() == [pd.Timestamp("2024-06-09 22:00", tz="UTC"),
                                    pd.Timestamp("2024-06-09 22:02", tz="UTC")]
    assert dates(frame, "session_date") == ["2024-06-10", "2024-06-10"]
    assert frame["close"].tolist() == [2.615, 2.62]
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [("2024-06-09T22:01:00+00:00", "all_null")]


def test_intraday_bars_stay_as_sent_and_the_splits_come_as_actions():
    stamps = [at(day, "15:55", "America/New_York") for day in ("2024-06-07", "2024-06-10")]
    split = at("2024-06-10", "09:30", "America/New_York")
    data = chart(stamps, close=[120.99, 121.79], events={"splits": {str(split): {
        "date": split, "numerator": 10, "denominator": 1, "splitRatio": "10:1"}}})
    parsed = yahoo.parse_intraday(body(200, data))
    assert parsed.intraday["close"].tolist() == [120.99, 121.79]  # the adapter undoes the split
    assert parsed.actions.to_dict("records") == [{"date": pd.Timestamp("2024-06-10"), "kind": "split", "value": 10.0}]
    request = yahoo.intraday_request("AAPL", "5m", NOW - dt.timedelta(days=2), NOW, now=NOW)
    assert request.params["events"] == "div,splits"


# --- symbols and requests -------------------------------------------------------------


@pytest.mark.parametrize("canonical, vendor", [
    ("BRK.B", "BRK-B"), ("AAPL", "AAPL"), ("VOD.L", "VOD.L"), ("SAP.DE", "SAP.DE"),
    ("SHOP.TO", "SHOP.TO"), ("7203.T", "7203.T"), ("RCI.B.TO", "RCI-B.TO"), ("bf.a", "BF-A"),
    ("^GSPC", "^GSPC"), ("EURUSD=X", "EURUSD=X"),
])
def test_vendor_symbol(canonical, vendor):
    assert yahoo.vendor_symbol(canonical) == vendor


def test_daily_request_brackets_every_time_zone():
    request = yahoo.daily_request("BRK.B", dt.date(2024, 5, 6), dt.date(2024, 5, 10))
    assert request.path == "/v8/finance/chart/BRK-B" and request.endpoint == "daily"
    assert request.params == {
        "period1": str(int(dt.datetime(2024, 5, 5, tzinfo=UTC).timestamp())),
        "period2": str(int(dt.datetime(2024, 5, 12, tzinfo=UTC).timestamp())),
        "interval": "1d", "events": "div,splits", "includePrePost": "false"}
    with pytest.raises(ValueError):
        yahoo.daily_request("AAPL", dt.date(2024, 5, 10), dt.date(2024, 5, 6))


def test_requests_carry_no_key_and_reach_the_chart_path():
    seen = []
    requests = [yahoo.daily_request("^GSPC", *MAY),
                yahoo.intraday_request("AAPL", "5m", NOW - dt.timedelta(days=2), NOW, now=NOW)]
    for request in requests:
        def answer(sent: httpx.Request) -> httpx.Response:
            seen.append(sent.url)
            return httpx.Response(200, content=SUCCESS)

        with httpx.Client(transport=httpx.MockTransport(answer), base_url=yahoo.BASE_URL) as client:
            client.get(request.path, params=dict(request.params), headers=dict(request.headers))
        assert not {"apikey", "api_token", "token", "key", "crumb"} & {k.lower() for k in request.params}
    assert yahoo.KEY_PARAM is None
    assert [str(url.host) for url in seen] == ["query1.finance.yahoo.com"] * 2
    assert seen[0].raw_path.startswith(b"/v8/finance/chart/%5EGSPC?")


def test_published_constants():
    assert yahoo.NAME == "yahoo" and yahoo.BASE_URL == "https://query1.finance.yahoo.com"
    assert "Mozilla" in yahoo.DEFAULT_HEADERS["User-Agent"]
    assert yahoo.DEFAULT_LIMITS == {"calls_per_second": 2, "calls_per_minute": None,
                                    "calls_per_hour": 2000, "calls_per_day": None}


@pytest.mark.parametrize("interval, back, span", [
    ("1m", 29, 8), ("5m", 59, 30), ("15m", 10, 10), ("30m", 59, 59), ("60m", 729, 700)])
def test_intraday_request_within_limits(interval, back, span):
    start = NOW - dt.timedelta(days=back)
    request = yahoo.intraday_request("AAPL", interval, start, start + dt.timedelta(days=span), now=NOW)
    assert request.params["interval"] == interval and request.params["includePrePost"] == "false"
    assert request.params["period1"] == str(int(start.timestamp()))


@pytest.mark.parametrize("interval, start, end", [
    ("1m", NOW - dt.timedelta(days=9), NOW),  # more than 8 days in one request
    ("1m", NOW - dt.timedelta(days=31), NOW - dt.timedelta(days=28)),  # older than 30 days
    ("5m", NOW - dt.timedelta(days=61), NOW - dt.timedelta(days=50)),  # older than 60 days
    ("60m", NOW - dt.timedelta(days=731), NOW - dt.timedelta(days=700)),  # older than 730 days
    ("2m", NOW - dt.timedelta(days=1), NOW),  # not offered
    ("1m", NOW, NOW - dt.timedelta(hours=1)),  # ends before it starts
    ("1m", dt.datetime(2024, 6, 19), dt.datetime(2024, 6, 20)),  # naive
])
def test_intraday_request_refuses_what_yahoo_cannot_serve(interval, start, end):
    with pytest.raises(ValueError):
        yahoo.intraday_request("AAPL", interval, start, end, now=NOW)


def test_intraday_windows_split_one_minute_bars_into_accepted_requests():
    start = NOW - dt.timedelta(days=20)
    windows = yahoo.intraday_windows("1m", start, NOW + dt.timedelta(days=5), NOW)
    assert len(windows) == 3
    assert windows[0][0] == start and windows[-1][1] == NOW  # cut at now
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))  # contiguous
    assert all(hi - lo <= dt.timedelta(days=7) for lo, hi in windows)
    for lo, hi in windows:
        yahoo.intraday_request("AAPL", "1m", lo, hi, now=NOW)  # Yahoo accepts each


def test_intraday_windows_take_dates_and_longer_intervals_in_one_request():
    assert yahoo.intraday_windows("5m", dt.date(2024, 5, 1), dt.date(2024, 6, 10), NOW) == [
        (dt.datetime(2024, 5, 1, tzinfo=UTC), dt.datetime(2024, 6, 11, tzinfo=UTC))]


@pytest.mark.parametrize("interval, start", [("1m", NOW - dt.timedelta(days=40)), ("5m", NOW + dt.timedelta(hours=1)),
                                             ("90m", NOW - dt.timedelta(days=1))])
def test_intraday_windows_refuse_what_cannot_be_served(interval, start):
    with pytest.raises(ValueError):
        yahoo.intraday_windows(interval, start, NOW + dt.timedelta(days=2), NOW)
