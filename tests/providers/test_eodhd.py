"""Tests for the pure EODHD module: fixture bodies and described-only cases -> outcome and
exact values; JSON and CSV daily bars; quotes; bulk; symbol list; symbols; requests."""

from __future__ import annotations

import datetime as dt
import json
import math

import httpx
import pandas as pd
import pytest

from stockpipe.providers import eodhd, eodhd_lists
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS
from stockpipe.providers.wire import Outcome, Response
from conftest import PROVIDER_FIXTURES
from helpers import fixture_bytes, through_httpx

FIXTURES = PROVIDER_FIXTURES / "eodhd"
MAY = (dt.date(2024, 5, 1), dt.date(2024, 5, 31))
SECRET = "k3y-DO-NOT-LEAK.123"


def key_sent(sent: httpx.Request) -> None:
    assert sent.url.params["api_token"] == SECRET


def fixture(name: str, status: int = 200, content_type: str = "application/json", **headers) -> Response:
    """The fixture as EODHD's answer to AAPL's May bars, through httpx; the key is added here,
    as the HTTP layer would, and must never come back in a message."""
    return through_httpx(eodhd.daily_request(eodhd.vendor_symbol("AAPL"), *MAY), eodhd.BASE_URL, status,
                         fixture_bytes("eodhd", name), content_type, params={eodhd.KEY_PARAM: SECRET},
                         check=key_sent, **headers)


def ok(data, status: int = 200) -> Response:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return Response(status, {"content-type": "application/json"}, raw)


def dates(frame: pd.DataFrame) -> list[str]:
    return frame["date"].dt.strftime("%Y-%m-%d").tolist()


PARSERS = {
    "daily": lambda r: eodhd.parse_daily(r, *MAY),
    "quote": eodhd.parse_quote,
    "bulk": lambda r: eodhd_lists.parse_bulk_last_day(r, "US"),
    "symbols": lambda r: eodhd_lists.parse_symbol_list(r, "US"),
    "user": eodhd.parse_user,
}


# --- every fixture file -> its outcome ----------------------------------------------

FIXTURE_OUTCOMES = {  # file -> (status, content type, parser, outcome)
    "eod_success.json": (200, "application/json", "daily", Outcome.OK),
    "eod_success_count_line.csv": (200, "text/csv", "daily", Outcome.OK),  # ends with the row count
    "user_success.json": (200, "application/json", "user", Outcome.OK),  # the account: validate --probe
    "real_time_success.json": (200, "application/json", "quote", Outcome.OK),
    "eod_bulk_last_day_success.json": (200, "application/json", "bulk", Outcome.OK),
    "exchange_symbol_list_success.json": (200, "application/json", "symbols", Outcome.OK),
    "unknown_symbol.txt": (404, "text/plain", None, Outcome.SYMBOL_NOT_FOUND),
    "bad_key.txt": (401, "text/plain", None, Outcome.AUTH_FAILED),
    "rate_limited.txt": (429, "text/html", None, Outcome.RATE_LIMITED),
    "quota_exhausted.txt": (402, "text/plain", None, Outcome.QUOTA_EXHAUSTED),
}


def test_every_fixture_file_is_covered():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(FIXTURE_OUTCOMES)


@pytest.mark.parametrize("name, parser", [  # data bodies with their parser; errors with every one
    (name, parser) for name, (_, _, meant_for, _) in sorted(FIXTURE_OUTCOMES.items())
    for parser in sorted(PARSERS) if meant_for in (None, parser)])
def test_fixture_outcome(name, parser):
    status, content_type, _, outcome = FIXTURE_OUTCOMES[name]
    parsed = PARSERS[parser](fixture(name, status, content_type))
    assert parsed.outcome is outcome
    assert SECRET not in parsed.message and len(parsed.message) <= 200


def test_error_texts_are_the_vendors():
    assert eodhd.parse_daily(fixture("unknown_symbol.txt", 404, "text/plain"), *MAY).message == "Ticker Not Found."
    assert eodhd.parse_daily(fixture("bad_key.txt", 401, "text/plain"), *MAY).message == "Unauthenticated"


def test_eod_success_raw_ohlc_and_adjusted_close():
    parsed = eodhd.parse_daily(fixture("eod_success.json"), *MAY)
    bars = parsed.bars
    assert list(bars.columns) == list(BAR_COLUMNS) and str(bars["date"].dtype) == "datetime64[us]"
    assert dates(bars) == ["2024-05-06", "2024-05-07", "2024-05-08", "2024-05-09", "2024-05-10"]
    assert bars["close"].tolist() == [181.71, 182.4, 182.74, 184.57, 183.05]
    assert bars["open"].iloc[-1] == 184.9 and bars["volume"].iloc[0] == 78569700.0
    assert bars["adj_close"].tolist() == [178.9213, 179.6007, 179.9355, 181.7374, 180.4865]
    ratio = (bars["adj_close"] / bars["close"]).tolist()
    assert abs(ratio[0] - ratio[3]) < 1e-4 and abs(ratio[4] - ratio[3]) > 1e-3  # changes at the ex-date
    assert list(parsed.actions.columns) == list(ACTION_COLUMNS) and parsed.actions.empty
    assert parsed.rejected == () and parsed.currency is None


def test_window_filters_dates():
    parsed = eodhd.parse_daily(fixture("eod_success.json"), dt.date(2024, 5, 8), dt.date(2024, 5, 9))
    assert dates(parsed.bars) == ["2024-05-08", "2024-05-09"]


# --- described only: eod_success.csv ---------------------------------------------------


def eod_csv(newline: str) -> bytes:
    rows = json.loads((FIXTURES / "eod_success.json").read_text())
    lines = ["Date,Open,High,Low,Close,Adjusted_close,Volume"] + [
        ",".join(str(r[k]) for k in ("date", "open", "high", "low", "close", "adjusted_close", "volume"))
        for r in rows]
    return (newline.join(lines) + newline).encode()


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_csv_gives_the_same_bars_as_json(newline):
    from_csv = eodhd.parse_daily(Response(200, {"content-type": "text/csv"}, eod_csv(newline)), *MAY)
    from_json = eodhd.parse_daily(fixture("eod_success.json"), *MAY)
    assert from_csv.outcome is Outcome.OK
    pd.testing.assert_frame_equal(from_csv.bars, from_json.bars)


def test_csv_rows_that_cannot_be_read_are_rejected_never_zero():
    text = ("Date,Open,High,Low,Close,Adjusted_close,Volume\r\n"
            "2024-05-06,182.35,184.2,180.42,181.71,178.9213,78569700\r\n"
            "2024-05-07,NA,184.9,181.32,182.4,179.6007,77305800\r\n"
            "2024-05-08,182.85,183.07,181.45,,179.9355,45057100\r\n"
            "2024-05-09,182.56,abc,182.11,184.57,181.7374,48983000\r\n"
            "2024-05-10,0,0,0,0,0,0\r\n"
            "2024-05-13,NA,NA,NA,NA,NA,NA\r\n"
            "2024-05-14,185.44,187.1,184.62,187.07,,50433600\r\n"
            "not-a-date,1,1,1,1,1,1\r\n")
    parsed = eodhd.parse_daily(Response(200, {}, text.encode()), *MAY)
    assert dates(parsed.bars) == ["2024-05-06", "2024-05-14"]
    assert math.isnan(parsed.bars["adj_close"].iloc[1])  # empty adjusted close: NaN, kept
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [
        ("2024-05-07", "missing_value:open"), ("2024-05-08", "missing_value:close"),
        ("2024-05-09", "not_a_number:high"), ("2024-05-10", "zero_price:open"),
        ("2024-05-13", "all_null"), ("not-a-date", "bad_date")]
    assert parsed.rejected[0]["raw"]["open"] == "NA"


@pytest.mark.parametrize("data, outcome", [
    (b"Date,Open,High,Low,Close,Adjusted_close,Volume\r\n", Outcome.EMPTY),
    (b"[]", Outcome.EMPTY),
    (b"Symbol;Price\r\nAAPL;1\r\n", Outcome.PROTOCOL_ERROR),
])
def test_empty_and_foreign_bodies(data, outcome):
    assert eodhd.parse_daily(Response(200, {}, data), *MAY).outcome is outcome


# --- quotes ---------------------------------------------------------------------------


def test_real_time_quote_in_utc():
    parsed = eodhd.parse_quote(fixture("real_time_success.json"))
    row = parsed.quotes.iloc[0]
    assert list(parsed.quotes.columns) == ["ts", "price", "open", "high", "low", "prev_close",
                                           "change", "change_pct", "volume"]
    assert row["ts"] == pd.Timestamp("2024-05-10 20:00", tz="UTC")  # 16:00 New York
    assert str(parsed.quotes["ts"].dtype) == "datetime64[us, UTC]"
    assert (row["price"], row["open"], row["prev_close"]) == (183.05, 184.9, 184.57)
    assert (row["change"], row["change_pct"], row["volume"]) == (-1.52, -0.8235, 50759500.0)


NA_QUOTE = {"code": "AAPL.US", "timestamp": "NA", "gmtoffset": 0, "open": "NA", "high": "NA",
            "low": "NA", "close": "NA", "volume": "NA", "previousClose": "NA", "change": "NA",
            "change_p": "NA"}


@pytest.mark.parametrize("data", [NA_QUOTE, [NA_QUOTE]])
def test_real_time_na_values_are_empty_never_zero(data):
    parsed = eodhd.parse_quote(ok(data))
    assert parsed.outcome is Outcome.EMPTY and parsed.quotes is None


@pytest.mark.parametrize("close", ["NA", 0])
def test_quote_with_a_time_but_no_price_is_no_quote(close):
    parsed = eodhd.parse_quote(ok({**NA_QUOTE, "timestamp": 1715371200, "close": close}))
    assert parsed.outcome is Outcome.EMPTY and parsed.quotes is None
    assert [r["reason"] for r in parsed.rejected] == ["missing_value:close"]


def test_quote_with_some_na_keeps_nan():
    parsed = eodhd.parse_quote(ok({**NA_QUOTE, "timestamp": 1715371200, "close": 183.05}))
    assert parsed.outcome is Outcome.OK and parsed.quotes["price"].tolist() == [183.05]
    assert math.isnan(parsed.quotes["volume"].iloc[0])


# --- bulk and symbol list -------------------------------------------------------------


def test_bulk_last_day_rows_with_canonical_symbols():
    parsed = eodhd_lists.parse_bulk_last_day(fixture("eod_bulk_last_day_success.json"), "US")
    assert list(parsed.bars.columns) == ["symbol", *BAR_COLUMNS]
    assert parsed.bars["symbol"].tolist() == ["AAPL", "MSFT", "SPY"]
    assert dates(parsed.bars) == ["2024-05-10"] * 3
    assert parsed.bars["close"].tolist() == [183.05, 414.74, 520.84]


def test_bulk_last_day_on_london_maps_codes_back():
    rows = [{"code": "VOD", "exchange_short_name": "LSE", "date": "2024-05-10", "open": 71.5, "high": 72.1,
             "low": 71.0, "close": 71.52, "adjusted_close": 71.52, "volume": 40000000},
            {"code": "BT-A", "exchange_short_name": "LSE", "date": "2024-05-10", "open": 110.0, "high": 111.0,
             "low": 109.5, "close": 110.5, "adjusted_close": 110.5, "volume": 9000000},
            {"code": "XYZ", "exchange_short_name": "MARS", "date": "2024-05-10", "open": 1, "high": 1,
             "low": 1, "close": 1, "adjusted_close": 1, "volume": 1}]
    parsed = eodhd_lists.parse_bulk_last_day(ok(rows), "LSE")
    assert parsed.bars["symbol"].tolist() == ["VOD.L", "BT.A.L"]
    assert [r["reason"] for r in parsed.rejected] == ["unknown_exchange"]


def test_exchange_symbol_list():
    parsed = eodhd_lists.parse_symbol_list(fixture("exchange_symbol_list_success.json"), "US")
    assert isinstance(parsed, eodhd_lists.ParsedSymbols) and len(parsed.symbols) == 3
    assert parsed.symbols[0] == {"symbol": "AAPL", "code": "AAPL", "name": "Apple Inc", "country": "USA",
                                 "exchange": "NASDAQ", "currency": "USD", "type": "Common Stock",
                                 "isin": "US0378331005"}
    assert [s["type"] for s in parsed.symbols] == ["Common Stock", "Common Stock", "ETF"]


# --- errors, throttling, garbage ----------------------------------------------------


def test_rate_limited_honours_headers_only():
    plain = eodhd.parse_daily(fixture("rate_limited.txt", 429, "text/html"), *MAY)
    assert plain.retry_after is None and plain.message == "Too Many Requests"
    told = eodhd.parse_daily(fixture("rate_limited.txt", 429, "text/html", **{
        "Retry-After": "17", "X-RateLimit-Remaining": "0"}), *MAY)
    assert told.retry_after == 17.0 and "remaining 0" in told.message


@pytest.mark.parametrize("text", [b"You exceeded your daily API requests limit.",
                                  b"You exceeded your daily API requests limit.  "
                                  b"Please contact support@eodhistoricaldata.com"])
@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_quota_exhausted_both_variants(text, parser):
    parsed = PARSERS[parser](Response(402, {"content-type": "text/plain"}, text))
    assert parsed.outcome is Outcome.QUOTA_EXHAUSTED


@pytest.mark.parametrize("status, data, outcome", [
    (403, b"Forbidden. Please contact support@eodhistoricaldata.com", Outcome.NOT_ENTITLED),
    (200, b"Ticker Not Found.", Outcome.SYMBOL_NOT_FOUND),
    (404, b"<html><h1>404 Not Found</h1></html>", Outcome.PROTOCOL_ERROR),  # wrong path, not a ticker
    (500, b"Internal Server Error", Outcome.PROTOCOL_ERROR),
    (200, b"<html>maintenance</html>", Outcome.PROTOCOL_ERROR),
    (200, b"", Outcome.PROTOCOL_ERROR),
])
def test_status_and_text_outcomes(status, data, outcome):
    assert eodhd.parse_daily(Response(status, {}, data), *MAY).outcome is outcome


@pytest.mark.parametrize("parser", ["daily", "bulk", "symbols", "quote"])
@pytest.mark.parametrize("cut", [1, 60, -2])
def test_truncated_json_is_a_protocol_error(parser, cut):
    name = {"daily": "eod_success.json", "bulk": "eod_bulk_last_day_success.json",
            "symbols": "exchange_symbol_list_success.json", "quote": "real_time_success.json"}[parser]
    data = (FIXTURES / name).read_bytes()[:cut]
    assert PARSERS[parser](Response(200, {}, data)).outcome is Outcome.PROTOCOL_ERROR


@pytest.mark.parametrize("data", [b'{"errors": {"from": "bad date"}}', b"[1, 2, 3]", b'"text"'])
def test_wrong_json_shapes_are_protocol_errors(data):
    assert eodhd.parse_daily(ok(data), *MAY).outcome is Outcome.PROTOCOL_ERROR


def test_a_key_echoed_by_the_vendor_is_masked():
    echo = f"Error for https://eodhd.com/api/eod/AAPL.US?api_token={SECRET}&fmt=json".encode()
    parsed = eodhd.parse_daily(Response(500, {}, echo), *MAY)
    assert SECRET not in parsed.message and "api_token=***" in parsed.message


# --- symbols and requests -------------------------------------------------------------


@pytest.mark.parametrize("canonical, vendor", [
    ("BRK.B", "BRK-B.US"), ("AAPL", "AAPL.US"), ("VOD.L", "VOD.LSE"), ("SAP.DE", "SAP.XETRA"),
    ("SHOP.TO", "SHOP.TO"), ("7203.T", "7203.TSE"), ("BHP.AX", "BHP.AU"), ("RCI.B.TO", "RCI-B.TO"),
    ("^GSPC", "GSPC.INDX"), ("EURUSD=X", "EURUSD.FOREX"),
])
def test_vendor_symbol_and_back(canonical, vendor):
    assert eodhd.vendor_symbol(canonical) == vendor
    code, _, exchange = vendor.rpartition(".")
    assert eodhd_lists.canonical_symbol(code, exchange) == canonical


def test_unknown_suffix_or_exchange_is_refused_not_guessed():
    with pytest.raises(ValueError, match="EXCHANGES"):
        eodhd.vendor_symbol("ABC.XX")
    with pytest.raises(ValueError):
        eodhd_lists.canonical_symbol("ABC", "MARS")
    with pytest.raises(ValueError):
        eodhd_lists.bulk_last_day_request("MARS")


def test_requests():
    daily = eodhd.daily_request(eodhd.vendor_symbol("BRK.B"), dt.date(2024, 5, 6), dt.date(2024, 5, 10))
    assert daily.path == "/api/eod/BRK-B.US" and daily.endpoint == "daily" and daily.cost == 1
    assert daily.params == {"fmt": "json", "period": "d", "from": "2024-05-06", "to": "2024-05-10"}
    assert eodhd.daily_request(eodhd.vendor_symbol("VOD.L"), *MAY, fmt="csv").params["fmt"] == "csv"
    bulk = eodhd_lists.bulk_last_day_request("us", dt.date(2024, 5, 10))
    assert (bulk.path, bulk.params, bulk.cost) == ("/api/eod-bulk-last-day/US",
                                                   {"fmt": "json", "date": "2024-05-10"}, 100)
    assert eodhd_lists.symbol_list_request("LSE").path == "/api/exchange-symbol-list/LSE"
    assert eodhd.quote_request("7203.T").path == "/api/real-time/7203.TSE"
    with pytest.raises(ValueError):
        eodhd.daily_request(eodhd.vendor_symbol("AAPL"), dt.date(2024, 5, 10), dt.date(2024, 5, 6))
    with pytest.raises(ValueError):
        eodhd.daily_request(eodhd.vendor_symbol("AAPL"), *MAY, fmt="xml")


def test_no_request_carries_a_key():
    requests = [eodhd.daily_request(eodhd.vendor_symbol("AAPL"), *MAY), eodhd_lists.bulk_last_day_request("US"),
                eodhd_lists.symbol_list_request("US"), eodhd.quote_request("AAPL")]
    for request in requests:
        assert eodhd.KEY_PARAM not in request.params and "token" not in json.dumps(request.__dict__)


def test_published_constants():
    assert (eodhd.NAME, eodhd.BASE_URL, eodhd.KEY_PARAM) == ("eodhd", "https://eodhd.com", "api_token")
    assert eodhd.DEFAULT_LIMITS == {"calls_per_second": None, "calls_per_minute": 1000,
                                    "calls_per_hour": None, "calls_per_day": 100_000}
    assert "midnight GMT" in eodhd.QUOTA_RESETS and eodhd.QUOTA_RESET_ZONE == "UTC"
