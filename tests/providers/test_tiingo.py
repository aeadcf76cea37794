"""Tests for the tiingo vendor module: every fixture and described case, requests, parsing."""

from __future__ import annotations

import datetime as dt
import time
from functools import partial

import httpx
import pandas as pd
import pytest

from stockpipe.errors import StopsProvider
from stockpipe.providers import tiingo
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS
from stockpipe.providers.wire import Outcome, Response, error_for

from helpers import PROVIDER_FIXTURES, dates, fixture_response, response

FIXTURES = PROVIDER_FIXTURES / "tiingo"
WIDE = (dt.date(2000, 1, 1), dt.date(2100, 1, 1))
MAY = (dt.date(2024, 5, 1), dt.date(2024, 5, 31))
KEY = "0123456789abcdef0123456789abcdef01234567"

# Described-only bodies (PROVIDERS.md), written from the descriptions.
MONTHLY = {"detail": "Error: You have run over your monthly unique symbol request allocation. Please upgrade at "
                     "https://api.tiingo.com/pricing to have your limits increased."}
DAILY = {"detail": "Error: You have run over your daily request allocation. Please upgrade at "
                   "https://api.tiingo.com/pricing to have your limits increased."}
NO_CREDENTIALS = {"detail": "Authentication credentials were not provided."}


fixture = partial(fixture_response, "tiingo")  # fixture(name, status=200, **headers) -> Response


def bar(day: str, close=10.5, **extra) -> dict:
    return {"date": f"{day}T00:00:00.000Z", "close": close, "high": 11.0, "low": 9.0, "open": 10.0,
            "volume": 1000, "adjClose": close, "adjHigh": 11.0, "adjLow": 9.0, "adjOpen": 10.0,
            "adjVolume": 1000, "divCash": 0.0, "splitFactor": 1.0, **extra}


# ------------------------------------------------------------------------ fixtures and described cases

TABLE = {
    "daily_prices_success.json": (200, Outcome.OK),
    "unknown_symbol.json": (404, Outcome.SYMBOL_NOT_FOUND),
    "bad_key.json": (401, Outcome.AUTH_FAILED),
    "rate_limited.json": (429, Outcome.RATE_LIMITED),
}


def test_the_table_covers_every_fixture_file():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_fixture_gives_its_outcome(name):
    status, outcome = TABLE[name]
    assert tiingo.parse_daily(fixture(name, status), *MAY).outcome is outcome


@pytest.mark.parametrize("name", [n for n, (_, outcome) in TABLE.items() if outcome is not Outcome.OK])
def test_a_detail_refusal_with_http_200_means_the_same(name):
    assert tiingo.parse_daily(fixture(name, 200), *MAY).outcome is TABLE[name][1]


@pytest.mark.parametrize("body, status, outcome", [
    (MONTHLY, 429, Outcome.QUOTA_EXHAUSTED),  # quota_exhausted.json (described only)
    (MONTHLY, 200, Outcome.QUOTA_EXHAUSTED),
    (DAILY, 429, Outcome.QUOTA_EXHAUSTED),
    (NO_CREDENTIALS, 401, Outcome.AUTH_FAILED),
    ({"detail": "Something else."}, 200, Outcome.PROTOCOL_ERROR),
    ({"ticker": "AAPL"}, 200, Outcome.PROTOCOL_ERROR),
    ([], 200, Outcome.EMPTY),
])
def test_described_and_unknown_bodies(body, status, outcome):
    parsed = tiingo.parse_daily(response(body, status), *MAY)
    assert parsed.outcome is outcome


def test_hourly_and_monthly_429s_are_told_apart_by_their_text():
    hourly = tiingo.parse_daily(fixture("rate_limited.json", 429), *MAY)
    monthly = tiingo.parse_daily(response(MONTHLY, 429), *MAY)
    assert (hourly.outcome, hourly.retry_after) == (Outcome.RATE_LIMITED, 3600.0)
    assert "hourly" in hourly.message
    assert monthly.outcome is Outcome.QUOTA_EXHAUSTED and "monthly" in monthly.message
    assert isinstance(error_for(monthly.outcome, "tiingo", "AAPL daily"), StopsProvider)
    with_header = tiingo.parse_daily(fixture("rate_limited.json", 429, retry_after="120"), *MAY)
    assert with_header.retry_after == 120.0


def test_messages_are_the_vendors_words():
    assert tiingo.parse_daily(fixture("bad_key.json", 401), *MAY).message == "Invalid token."
    assert tiingo.parse_daily(fixture("unknown_symbol.json", 404), *MAY).message == "Error: Ticker 'NOSUCHTKR' not found"


@pytest.mark.parametrize("body, status, outcome", [
    ((FIXTURES / "daily_prices_success.json").read_bytes()[:400], 200, Outcome.PROTOCOL_ERROR),  # truncated
    (b"<html><body>Bad gateway</body></html>", 502, Outcome.PROTOCOL_ERROR),
    (b"<html><body>Welcome</body></html>", 200, Outcome.PROTOCOL_ERROR),
    (b"\x00\xff\xfe\x89PNG garbage", 200, Outcome.PROTOCOL_ERROR),
    (b"", 200, Outcome.PROTOCOL_ERROR),
    (b"Too Many Requests", 429, Outcome.RATE_LIMITED),
    (b"", 401, Outcome.AUTH_FAILED),
])
def test_garbled_bodies_never_raise(body, status, outcome):
    parsed = tiingo.parse_daily(response(body, status), *MAY)
    assert parsed.outcome is outcome and parsed.bars is None


# ------------------------------------------------------------------------ values


def test_success_bars_take_the_date_part_as_is_with_exact_values():
    parsed = tiingo.parse_daily(fixture("daily_prices_success.json"), *MAY)
    bars = parsed.bars
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert str(bars["date"].dtype) == "datetime64[us]"
    # 00:00Z would be the previous evening in New York: the date part is kept as written.
    assert dates(bars) == ["2024-05-06", "2024-05-07", "2024-05-08", "2024-05-09", "2024-05-10"]
    assert bars["close"].tolist() == [181.71, 182.4, 182.74, 184.57, 183.05]
    assert bars["adj_close"].tolist() == [181.463874, 182.152939, 182.492479, 184.32, 183.05]
    assert bars["open"].iloc[0] == 182.35 and bars["low"].iloc[-1] == 182.13
    assert bars["volume"].tolist() == [78569700, 77305800, 45057100, 48983000, 50759500]
    assert parsed.rejected == () and parsed.message == ""


def test_dates_do_not_depend_on_the_machine_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Honolulu")
    time.tzset()
    try:
        parsed = tiingo.parse_daily(fixture("daily_prices_success.json"), *MAY)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert dates(parsed.bars)[0] == "2024-05-06"


def test_dividend_and_split_actions():
    parsed = tiingo.parse_daily(fixture("daily_prices_success.json"), *MAY)
    assert list(parsed.actions.columns) == list(ACTION_COLUMNS)
    assert list(parsed.actions.itertuples(index=False, name=None)) == [(pd.Timestamp("2024-05-10"), "dividend", 0.25)]
    split = tiingo.parse_daily(response([bar("2020-08-28"), bar("2020-08-31", splitFactor=4.0)]), *WIDE)
    assert list(split.actions.itertuples(index=False, name=None)) == [(pd.Timestamp("2020-08-31"), "split", 4.0)]


def test_rows_outside_the_window_are_dropped():
    parsed = tiingo.parse_daily(fixture("daily_prices_success.json"), dt.date(2024, 5, 7), dt.date(2024, 5, 9))
    assert dates(parsed.bars) == ["2024-05-07", "2024-05-08", "2024-05-09"]
    assert parsed.actions.empty  # the 2024-05-10 dividend lies after the window
    later = tiingo.parse_daily(fixture("daily_prices_success.json"), dt.date(2024, 6, 1), dt.date(2024, 6, 30))
    assert later.outcome is Outcome.EMPTY and later.bars.empty


def test_unreadable_rows_are_rejected_with_reason_and_raw_row():
    rows = [bar("2024-05-06"), bar("2024-05-07", close=None), bar("2024-05-08", close="abc"),
            {"date": "2024-05-09T00:00:00.000Z", "close": None, "high": None, "low": None, "open": None,
             "volume": None}, bar("2024-05-10", close=0.0, adjClose=0.0), bar("2024-05-32"), "oops",
            bar("2023-01-03", close=None)]  # outside the window: not reported
    parsed = tiingo.parse_daily(response(rows), *MAY)
    assert dates(parsed.bars) == ["2024-05-06"]
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [
        ("2024-05-07", "missing_value:close"), ("2024-05-08", "not_a_number:close"), ("2024-05-09", "all_null"),
        ("2024-05-10", "zero_price"), ("2024-05-32", "bad_date"), ("", "not_an_object")]
    assert parsed.rejected[0]["raw"] == rows[1]


# ------------------------------------------------------------------------ symbols and requests


@pytest.mark.parametrize("symbol, expected", [("AAPL", "AAPL"), ("brk.b", "BRK-B"), ("BF.A", "BF-A"),
                                              ("RDS-A", "RDS-A"), ("SPG-P-J", "SPG-P-J")])
def test_vendor_symbol(symbol, expected):
    assert tiingo.vendor_symbol(symbol) == expected


@pytest.mark.parametrize("symbol", ["VOD.L", "7203.T", "X.V", "SAP.DE", "^GSPC", "EURUSD=X", "BRK.BB", ""])
def test_vendor_symbol_refuses_non_us_listings(symbol):
    with pytest.raises(ValueError):
        tiingo.vendor_symbol(symbol)


def test_daily_request():
    request = tiingo.daily_request("BRK-B", dt.date(2024, 5, 6), dt.date(2024, 5, 10))
    assert request.path == "/tiingo/daily/BRK-B/prices"
    assert dict(request.params) == {"startDate": "2024-05-06", "endDate": "2024-05-10", "format": "json"}
    assert request.endpoint == "daily" and not request.headers
    assert tiingo.KEY_PARAM not in request.params


@pytest.mark.parametrize("symbol, start, end", [
    ("AAPL", dt.date(2024, 5, 10), dt.date(2024, 5, 6)), ("../meta", *MAY), ("AA PL", *MAY), ("BRK.B", *MAY), ("", *MAY),
])
def test_bad_request_parameters_fail_before_any_call(symbol, start, end):
    with pytest.raises(ValueError):
        tiingo.daily_request(symbol, start, end)


def test_constants():
    assert (tiingo.NAME, tiingo.BASE_URL, tiingo.KEY_PARAM) == ("tiingo", "https://api.tiingo.com", "token")
    assert tiingo.DEFAULT_LIMITS == {"calls_per_second": None, "calls_per_minute": None, "calls_per_hour": 50,
                                     "calls_per_day": 1000}
    assert tiingo.QUOTA_RESETS


@pytest.mark.parametrize("name, status, outcome", [("daily_prices_success.json", 200, Outcome.OK),
                                                   ("bad_key.json", 401, Outcome.AUTH_FAILED)])
def test_round_trip_through_an_http_transport(name, status, outcome):
    # The HTTP layer's job, done by hand: add the key, send, hand the answer to the parser.
    seen: list[httpx.URL] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(status, content=(FIXTURES / name).read_bytes(),
                              headers={"content-type": "application/json"})

    request = tiingo.daily_request(tiingo.vendor_symbol("AAPL"), *MAY)
    with httpx.Client(base_url=tiingo.BASE_URL, transport=httpx.MockTransport(serve)) as client:
        reply = client.get(request.path, params={**request.params, tiingo.KEY_PARAM: KEY})
    parsed = tiingo.parse_daily(Response(reply.status_code, dict(reply.headers), reply.content), *MAY)
    assert seen[0].path == "/tiingo/daily/AAPL/prices" and seen[0].params["token"] == KEY
    assert parsed.outcome is outcome
    assert KEY not in repr(parsed)
