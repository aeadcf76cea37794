"""Tests for the alphavantage vendor module: every fixture and described case, requests, parsing."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pandas as pd
import pytest

from stockpipe.providers import alphavantage as av
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS
from stockpipe.providers.wire import Outcome, Response

from helpers import PROVIDER_FIXTURES, dates, fixture_response, response

FIXTURES = PROVIDER_FIXTURES / "alphavantage"
WIDE = (dt.date(2000, 1, 1), dt.date(2100, 1, 1))
JUNE = (dt.date(2024, 6, 1), dt.date(2024, 6, 30))
END_MAY = dt.date(2024, 5, 31)
KEY = "SECRETKEY0123456789"

# Described-only bodies (PROVIDERS.md), written from the descriptions and the vendor's texts.
LEGACY_NOTE = {"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per "
                       "minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you "
                       "would like to target a higher API call frequency."}
PREMIUM_FULL = {"Information": "Thank you for using Alpha Vantage! The **outputsize=full** parameter value is a "
                               "premium feature for the TIME_SERIES_DAILY endpoint. You may subscribe to any of the "
                               "premium plans at https://www.alphavantage.co/premium/ to instantly unlock all "
                               "premium features"}
QUOTA_VARIANT = {"Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per "
                                "day. Please subscribe to any of the premium plans at "
                                "https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."}
DEMO_KEY = {"Information": "The **demo** API key is for demo purposes only. Please claim your free API key at "
                           "(https://www.alphavantage.co/support/#api-key) to explore our full API offerings. "
                           "It takes fewer than 20 seconds."}


def fixture(name: str, content_type: str = "application/json") -> Response:
    return fixture_response("alphavantage", name, content_type=content_type)


def daily_body(rows: dict[str, dict], adjusted: bool = False) -> dict:
    """A TIME_SERIES_DAILY(_ADJUSTED) body from {date: {short name: text}} rows."""
    names = (["open", "high", "low", "close", "adjusted close", "volume", "dividend amount", "split coefficient"]
             if adjusted else ["open", "high", "low", "close", "volume"])
    series = {day: {f"{i}. {n}": row.get(n, "1.0" if n == "split coefficient" else "0.0000")
                    for i, n in enumerate(names, 1)} for day, row in rows.items()}
    return {"Meta Data": {"2. Symbol": "MSFT", "5. Time Zone": "US/Eastern"}, "Time Series (Daily)": series}


def row(o="10.0", h="11.0", l="9.0", c="10.5", v="1000", **extra) -> dict:
    return {"open": o, "high": h, "low": l, "close": c, "volume": v, **extra}


# ------------------------------------------------------------------------ fixtures

# Every file in the fixture folder: the parser that reads it and the outcome it must give.
TABLE = {
    "time_series_daily_success.json": ("daily", Outcome.OK),
    "time_series_daily_success.csv": ("daily", Outcome.OK),
    "time_series_daily_adjusted_success.json": ("daily", Outcome.OK),
    "time_series_intraday_success.json": ("intraday", Outcome.OK),
    "global_quote_success.json": ("quote", Outcome.OK),
    "global_quote_unknown_symbol.json": ("quote", Outcome.SYMBOL_NOT_FOUND),
    "unknown_symbol.json": ("daily", Outcome.SYMBOL_NOT_FOUND),
    "bad_key.json": ("daily", Outcome.AUTH_FAILED),
    "rate_limited.json": ("daily", Outcome.RATE_LIMITED),
    "quota_exhausted.json": ("daily", Outcome.QUOTA_EXHAUSTED),
    "premium_endpoint.json": ("daily", Outcome.NOT_ENTITLED),
}
PARSERS = {"daily": lambda r: av.parse_daily(r, *WIDE), "quote": av.parse_quote, "intraday": av.parse_intraday}
ERRORS = [name for name, (_, outcome) in TABLE.items() if outcome not in (Outcome.OK,)]


def test_the_table_covers_every_fixture_file():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_fixture_gives_its_outcome(name):
    parser, outcome = TABLE[name]
    content_type = "text/csv" if name.endswith(".csv") else "application/json"
    assert PARSERS[parser](fixture(name, content_type)).outcome is outcome


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("name", [n for n in ERRORS if n != "global_quote_unknown_symbol.json"])
def test_every_error_body_means_the_same_to_every_parser(name, parser):
    assert PARSERS[parser](fixture(name)).outcome is TABLE[name][1]


@pytest.mark.parametrize("name", ["bad_key.json", "rate_limited.json", "quota_exhausted.json", "unknown_symbol.json"])
def test_json_errors_on_a_csv_request_are_read_as_json(name):
    # datatype=csv still answers errors in JSON, whatever the content type says.
    parsed = av.parse_daily(fixture(name, content_type="text/csv"), *WIDE)
    assert parsed.outcome is TABLE[name][1]
    assert parsed.rejected == ()


@pytest.mark.parametrize("body, outcome, retry_after", [
    (LEGACY_NOTE, Outcome.RATE_LIMITED, 60.0),
    (PREMIUM_FULL, Outcome.NOT_ENTITLED, None),
    (QUOTA_VARIANT, Outcome.QUOTA_EXHAUSTED, None),
    (DEMO_KEY, Outcome.AUTH_FAILED, None),
    ({"Information": "Something new happened."}, Outcome.PROTOCOL_ERROR, None),
    ({}, Outcome.PROTOCOL_ERROR, None),
    ({"Meta Data": {"2. Symbol": "MSFT"}}, Outcome.PROTOCOL_ERROR, None),
    ({"Time Series (Daily)": "oops"}, Outcome.PROTOCOL_ERROR, None),
])
def test_described_only_and_unknown_bodies(body, outcome, retry_after):
    parsed = av.parse_daily(response(body), *WIDE)
    assert (parsed.outcome, parsed.retry_after) == (outcome, retry_after)
    assert parsed.bars is None


def test_burst_text_wins_over_its_own_daily_and_premium_words():
    text = (FIXTURES / "rate_limited.json").read_text()
    assert "25 requests per day" in text and "premium endpoints" in text
    parsed = av.parse_daily(fixture("rate_limited.json"), *WIDE)
    assert parsed.outcome is Outcome.RATE_LIMITED
    assert parsed.retry_after == 2.0
    assert "1 request per second" in parsed.message


def test_the_legacy_note_is_not_mistaken_for_a_premium_refusal():
    # Its text links to /premium/ and says "500 calls per day"; it is still a throttle.
    assert "premium" in LEGACY_NOTE["Note"]
    assert av.classify(LEGACY_NOTE).outcome is Outcome.RATE_LIMITED


def test_quota_message_hides_the_key_the_vendor_echoes():
    assert "EXAMPLEKEY123456" in (FIXTURES / "quota_exhausted.json").read_text()
    parsed = av.parse_daily(fixture("quota_exhausted.json"), *WIDE)
    assert "EXAMPLEKEY123456" not in parsed.message
    assert "25 requests per day" in parsed.message


def test_error_messages_are_the_vendors_words():
    assert "apikey is invalid or missing" in av.parse_daily(fixture("bad_key.json"), *WIDE).message
    assert av.parse_daily(fixture("unknown_symbol.json"), *WIDE).message.startswith("Invalid API call")
    assert "premium endpoint" in av.parse_daily(fixture("premium_endpoint.json"), *WIDE).message


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("body", [
    (FIXTURES / "time_series_daily_success.json").read_bytes()[:300],  # truncated mid-series
    (FIXTURES / "global_quote_success.json").read_bytes()[:80],
    b"\x00\xff\xfe garbage \x89PNG",
    b"<html><body>Bad gateway</body></html>",
    b"",
    b"[1, 2, 3]",
    b"{\"Time Series (Daily)\": {\"2024-06-07\": {\"1. open\": \"426",
])
def test_truncated_or_garbled_bodies_are_protocol_errors(parser, body):
    parsed = PARSERS[parser](response(body))
    assert parsed.outcome is Outcome.PROTOCOL_ERROR
    assert parsed.bars is None and parsed.quotes is None and parsed.intraday is None


def test_http_429_and_5xx():
    throttled = av.parse_daily(response(b"Too Many Requests", 429, "text/plain", retry_after="7"), *WIDE)
    assert (throttled.outcome, throttled.retry_after) == (Outcome.RATE_LIMITED, 7.0)
    assert av.parse_daily(response(b"oops", 503, "text/html"), *WIDE).outcome is Outcome.PROTOCOL_ERROR


# ------------------------------------------------------------------------ daily values


def test_daily_json_bars_are_sorted_with_exact_values():
    parsed = av.parse_daily(fixture("time_series_daily_success.json"), *JUNE)
    bars = parsed.bars
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert str(bars["date"].dtype) == "datetime64[us]"
    assert dates(bars) == ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]
    assert bars["close"].tolist() == [413.52, 416.07, 424.01, 424.52, 423.85]
    assert bars["open"].tolist() == [415.53, 412.43, 417.81, 424.01, 426.2]
    assert bars["low"].iloc[-1] == 423.0 and bars["high"].iloc[0] == 416.43
    assert bars["volume"].tolist() == [17484700, 14348900, 16988000, 14861300, 13621700]
    assert bars["adj_close"].isna().all()  # TIME_SERIES_DAILY has no adjusted close
    assert list(parsed.actions.columns) == list(ACTION_COLUMNS) and parsed.actions.empty
    assert parsed.rejected == () and parsed.message == ""


def test_csv_with_crlf_or_lf_gives_the_same_bars_as_json():
    from_json = av.parse_daily(fixture("time_series_daily_success.json"), *JUNE).bars
    crlf = (FIXTURES / "time_series_daily_success.csv").read_bytes()
    assert b"\r\n" in crlf
    for body in (crlf, crlf.replace(b"\r\n", b"\n")):
        pd.testing.assert_frame_equal(av.parse_daily(response(body, content_type="text/csv"), *JUNE).bars, from_json)


def test_adjusted_series_gives_adjusted_close_and_the_dividend():
    parsed = av.parse_daily(fixture("time_series_daily_adjusted_success.json"), *WIDE)
    bars = parsed.bars.set_index("date")
    assert dates(parsed.bars) == ["2024-05-13", "2024-05-14", "2024-05-15", "2024-05-16", "2024-05-17"]
    assert bars.loc["2024-05-13", "adj_close"] == 412.9751
    assert bars.loc["2024-05-13", "close"] == 413.72
    assert bars.loc["2024-05-14", "adj_close"] == 415.81
    assert bars.loc["2024-05-15", "volume"] == 22239500
    actions = parsed.actions
    assert list(actions.columns) == list(ACTION_COLUMNS)
    assert str(actions["date"].dtype) == "datetime64[us]"
    assert list(actions.itertuples(index=False, name=None)) == [(pd.Timestamp("2024-05-15"), "dividend", 0.75)]


def test_split_coefficient_becomes_a_split_and_zero_dividends_are_skipped():
    body = daily_body({"2022-07-15": row(**{"adjusted close": "10.5", "split coefficient": "20.0"}),
                       "2022-07-14": row(**{"adjusted close": "10.5"})}, adjusted=True)
    actions = av.parse_daily(response(body), *WIDE).actions
    assert list(actions.itertuples(index=False, name=None)) == [(pd.Timestamp("2022-07-15"), "split", 20.0)]


def test_rows_outside_the_window_are_dropped():
    window = (dt.date(2024, 6, 4), dt.date(2024, 6, 6))
    parsed = av.parse_daily(fixture("time_series_daily_success.json"), *window)
    assert dates(parsed.bars) == ["2024-06-04", "2024-06-05", "2024-06-06"]
    adjusted = av.parse_daily(fixture("time_series_daily_adjusted_success.json"), dt.date(2024, 5, 16), END_MAY)
    assert adjusted.actions.empty  # the 2024-05-15 dividend lies before the window


def test_a_window_without_rows_is_empty():
    parsed = av.parse_daily(fixture("time_series_daily_success.json"), dt.date(2020, 1, 1), dt.date(2020, 12, 31))
    assert parsed.outcome is Outcome.EMPTY
    assert parsed.bars.empty and list(parsed.bars.columns) == list(BAR_COLUMNS)
    assert av.parse_daily(response({"Meta Data": {}, "Time Series (Daily)": {}}), *WIDE).outcome is Outcome.EMPTY


def test_unreadable_rows_are_rejected_with_reason_and_raw_row():
    body = daily_body({
        "2024-06-03": row(),
        "2024-06-04": row(c="NA"),
        "2024-06-05": row(o="abc"),
        "2024-06-06": row(o="", h="", l="", c="", v=""),
        "2024-06-07": row(o="0.0000"),
        "2024-06-10": row(l="-1.0"),
        "2024-13-01": row(),
        "1999-01-04": row(c="NA"),  # outside the window: not reported
    })
    parsed = av.parse_daily(response(body), dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert dates(parsed.bars) == ["2024-06-03"]
    reasons = {r["date"]: r["reason"] for r in parsed.rejected}
    assert reasons == {"2024-06-04": "missing_value:close", "2024-06-05": "not_a_number:open",
                       "2024-06-06": "all_null", "2024-06-07": "zero_price", "2024-06-10": "negative_price",
                       "2024-13-01": "bad_date"}
    raw = next(r["raw"] for r in parsed.rejected if r["date"] == "2024-06-04")
    assert raw["4. close"] == "NA" and raw["1. open"] == "10.0"


def test_a_truncated_csv_line_is_rejected_not_stored():
    body = b"timestamp,open,high,low,close,volume\r\n2024-06-07,426.2,426.28,423.0,423.85,100\r\n2024-06-06,424.01,425"
    parsed = av.parse_daily(response(body, content_type="text/csv"), *WIDE)
    assert dates(parsed.bars) == ["2024-06-07"]
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [("2024-06-06", "field_count")]
    header_only = av.parse_daily(response(b"timestamp,open,high,low,close,volume\r\n", content_type="text/csv"), *WIDE)
    assert header_only.outcome is Outcome.EMPTY


# ------------------------------------------------------------------------ quote and intraday


def test_global_quote_values_and_close_timestamp_in_utc():
    parsed = av.parse_quote(fixture("global_quote_success.json"))
    quote = parsed.quotes.iloc[0]
    assert parsed.outcome is Outcome.OK
    assert list(parsed.quotes.columns) == ["ts", "price", "open", "high", "low", "prev_close", "change",
                                           "change_pct", "volume"]
    assert quote["ts"] == pd.Timestamp("2024-06-07 20:00", tz="UTC")  # 16:00 EDT
    assert (quote["price"], quote["open"], quote["high"], quote["low"]) == (423.85, 426.2, 426.28, 423.0)
    assert (quote["prev_close"], quote["change"], quote["change_pct"]) == (424.52, -0.67, -0.1578)
    assert quote["volume"] == 13621700


def test_a_winter_quote_closes_at_21_utc_and_a_zero_price_is_rejected():
    body = json.loads((FIXTURES / "global_quote_success.json").read_text())
    body["Global Quote"]["07. latest trading day"] = "2024-01-05"
    assert av.parse_quote(response(body)).quotes["ts"].iloc[0] == pd.Timestamp("2024-01-05 21:00", tz="UTC")
    body["Global Quote"]["05. price"] = "0.0000"
    parsed = av.parse_quote(response(body))
    assert parsed.outcome is Outcome.EMPTY and parsed.quotes is None
    assert parsed.rejected[0]["reason"] == "zero_price"


def test_intraday_stamps_are_new_york_time_converted_to_utc():
    parsed = av.parse_intraday(fixture("time_series_intraday_success.json"))
    frame = parsed.intraday
    assert list(frame.columns) == ["ts", "open", "high", "low", "close", "volume", "session_date"]
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"].iloc[-1] == pd.Timestamp("2024-06-07 23:55", tz="UTC")  # 19:55 EDT
    assert frame["ts"].is_monotonic_increasing
    assert frame["close"].tolist() == [423.45, 423.51, 423.6, 423.7]
    assert frame["volume"].iloc[-1] == 1852
    assert dates(frame, "session_date") == ["2024-06-07"] * 4  # 23:55Z is still Friday in New York


def test_intraday_across_daylight_saving_changes():
    stamps = {"2024-03-08 16:00:00": "2024-03-08 21:00", "2024-03-11 16:00:00": "2024-03-11 20:00",
              "2024-11-01 16:00:00": "2024-11-01 20:00", "2024-11-04 19:55:00": "2024-11-05 00:55"}
    series = {s: {"1. open": "1.0", "2. high": "1.0", "3. low": "1.0", "4. close": "1.0", "5. volume": "5"}
              for s in [*stamps, "2024-03-10 02:30:00"]}  # 02:30 on 10 March does not exist in New York
    body = {"Meta Data": {"6. Time Zone": "US/Eastern"}, "Time Series (5min)": series}
    parsed = av.parse_intraday(response(body))
    assert [t.strftime("%Y-%m-%d %H:%M") for t in parsed.intraday["ts"]] == list(stamps.values())
    assert dates(parsed.intraday, "session_date") == ["2024-03-08", "2024-03-11", "2024-11-01", "2024-11-04"]
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [("2024-03-10 02:30:00", "bad_timestamp")]
    window = av.parse_intraday(response(body), dt.date(2024, 3, 11), dt.date(2024, 11, 1))
    assert dates(window.intraday, "session_date") == ["2024-03-11", "2024-11-01"]
    assert window.rejected == ()  # the bad stamp's session lies before the window


# ------------------------------------------------------------------------ symbols and requests


@pytest.mark.parametrize("symbol, expected", [
    ("MSFT", "MSFT"), ("brk.b", "BRK-B"), ("BF.A", "BF-A"), ("RDS-A", "RDS-A"), ("TSCO.L", "TSCO.LON"),
    ("SHOP.TO", "SHOP.TRT"), ("GPV.V", "GPV.TRV"), ("MBG.DE", "MBG.DEX"), ("RELIANCE.BO", "RELIANCE.BSE"),
    ("600104.SS", "600104.SHH"), ("000002.SZ", "000002.SHZ"),
])
def test_vendor_symbol(symbol, expected):
    assert av.vendor_symbol(symbol) == expected


@pytest.mark.parametrize("symbol", ["7203.T", "VOD.PA", "^GSPC", "EURUSD=X", "A.B.C", "", "BRK/B"])
def test_vendor_symbol_refuses_what_av_does_not_document(symbol):
    with pytest.raises(ValueError):
        av.vendor_symbol(symbol)


def test_daily_request_is_compact_json_for_a_recent_window():
    request = av.daily_request("MSFT", dt.date(2024, 6, 3), dt.date(2024, 6, 7), today=dt.date(2024, 6, 10))
    assert request.path == "/query"
    assert dict(request.params) == {"function": "TIME_SERIES_DAILY", "symbol": "MSFT", "outputsize": "compact",
                                    "datatype": "json"}
    assert request.endpoint == "daily:compact" and request.cost == 1


def test_daily_request_is_full_for_an_old_window_and_size_can_be_forced():
    old = av.daily_request("MSFT", dt.date(2024, 1, 2), dt.date(2024, 6, 7), today=dt.date(2024, 6, 10))
    assert (old.params["outputsize"], old.endpoint) == ("full", "daily:full")
    forced = av.daily_request("MSFT", dt.date(2024, 1, 2), dt.date(2024, 6, 7), today=dt.date(2024, 6, 10),
                              outputsize="compact")
    assert forced.params["outputsize"] == "compact"


def test_compact_covers_exactly_the_last_100_weekdays():
    friday = dt.date(2024, 6, 7)
    assert av.outputsize_for(dt.date(2024, 1, 22), friday) == "compact"  # Monday: 100 weekdays
    assert av.outputsize_for(dt.date(2024, 1, 19), friday) == "full"  # Friday before: 101
    assert av.outputsize_for(friday, friday) == "compact"


def test_other_requests():
    adjusted = av.daily_adjusted_request("MSFT", dt.date(2024, 5, 13), dt.date(2024, 5, 17), today=END_MAY)
    assert adjusted.params["function"] == "TIME_SERIES_DAILY_ADJUSTED" and adjusted.endpoint == "daily_adjusted:compact"
    quote = av.quote_request("MSFT")
    assert dict(quote.params) == {"function": "GLOBAL_QUOTE", "symbol": "MSFT", "datatype": "json"}
    intraday = av.intraday_request("MSFT", "5min")
    assert dict(intraday.params) == {"function": "TIME_SERIES_INTRADAY", "symbol": "MSFT", "interval": "5min",
                                     "outputsize": "compact", "adjusted": "false", "extended_hours": "true",
                                     "datatype": "json"}
    assert intraday.endpoint == "intraday:5min"
    csv_request = av.daily_request("MSFT", dt.date(2024, 6, 3), dt.date(2024, 6, 7), today=END_MAY, datatype="csv")
    assert csv_request.params["datatype"] == "csv"


@pytest.mark.parametrize("build", [
    lambda: av.intraday_request("MSFT", "2min"),
    lambda: av.intraday_request("MSFT", "5m"),
    lambda: av.intraday_request("MSFT", "5min", outputsize="big"),
    lambda: av.daily_request("MSFT", dt.date(2024, 6, 7), dt.date(2024, 6, 3)),
    lambda: av.daily_request("MSFT", *JUNE, outputsize="medium"),
    lambda: av.daily_request("MSFT", *JUNE, datatype="xml"),
    lambda: av.daily_request("MS FT", *JUNE),
    lambda: av.quote_request(""),
])
def test_bad_parameters_fail_before_any_call(build):
    with pytest.raises(ValueError):
        build()


def test_no_request_carries_a_key_and_constants_are_published():
    requests = [av.daily_request("MSFT", *JUNE, today=END_MAY), av.daily_adjusted_request("MSFT", *JUNE),
                av.quote_request("MSFT"), av.intraday_request("MSFT", "60min")]
    for request in requests:
        assert av.KEY_PARAM not in request.params and not request.headers
    assert (av.NAME, av.BASE_URL, av.KEY_PARAM) == ("alphavantage", "https://www.alphavantage.co", "apikey")
    assert av.DEFAULT_LIMITS == {"calls_per_second": 1, "calls_per_minute": None, "calls_per_hour": None,
                                 "calls_per_day": 25}
    assert av.QUOTA_RESETS


@pytest.mark.parametrize("name, outcome", [("time_series_daily_success.json", Outcome.OK),
                                           ("quota_exhausted.json", Outcome.QUOTA_EXHAUSTED)])
def test_round_trip_through_an_http_transport(name, outcome):
    # The HTTP layer's job, done by hand: add the key, send, hand the answer to the parser.
    seen: list[httpx.URL] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, content=(FIXTURES / name).read_bytes(),
                              headers={"content-type": "application/json"})

    request = av.daily_request("MSFT", *JUNE, today=dt.date(2024, 6, 10))
    with httpx.Client(base_url=av.BASE_URL, transport=httpx.MockTransport(serve)) as client:
        reply = client.get(request.path, params={**request.params, av.KEY_PARAM: KEY})
    parsed = av.parse_daily(Response(reply.status_code, dict(reply.headers), reply.content), *JUNE)
    assert seen[0].path == "/query" and seen[0].params["function"] == "TIME_SERIES_DAILY"
    assert seen[0].params["apikey"] == KEY
    assert parsed.outcome is outcome
    assert KEY not in repr(parsed)
