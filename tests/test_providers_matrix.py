"""Every row of every table in PROVIDERS.md, through the real CLI against tests/fakevendor.py.

Daily-bars rows: the vendor's daily endpoint on the fake server answers the row's body,
status and content type, `stockpipe run --provider <vendor> --json` runs with
STOCKPIPE_<VENDOR>_BASE_URL pointed at the fake, and the test checks the exit code, the
calls made and what reached the SQLite warehouse (prices_daily, corporate_actions,
rejects, run_events). Rows described only in PROVIDERS.md are built here from the
description. Quote and intraday rows go through `stockpipe fetch --quotes` / `fetch
--interval 5m` and `stockpipe load` (tables quotes, prices_intraday); the bulk and
symbol-list rows, which no command calls, through the vendor module's own parser.
`test_every_row_of_providers_md_has_a_case` keeps the tables here in step with
PROVIDERS.md, and `test_the_api_key_appears_nowhere` searches everything a run leaves
behind for a distinctive key.

Each test's data directory starts from a copy of one migrated SQLite file (the CLI still
checks its revision), so ~100 runs do not each replay the migrations.

Speed: throttling replies carry `Retry-After: 0` and the vendors' per-second limits are
raised, except where a test needs one call at a time (STOCKPIPE_<VENDOR>_CALLS_PER_SECOND=1
gives a concurrency of 1, so "the provider stopped" means "exactly one call").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import logging
import re
import shutil
import sqlite3
import threading
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence, Union
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from conftest import PROVIDER_FIXTURES
from fakevendor import CONTENT_TYPES, YAHOO_COOKIE, YAHOO_CRUMB, Call, FakeVendor, Reply, fixture, yahoo_refusal
from stockpipe.errors import ExitCode
from stockpipe.providers import eodhd, eodhd_lists, finnhub
from stockpipe.providers.registry import VENDORS
from stockpipe.providers.wire import Outcome, Response

from helpers import PROVIDERS_MD, db, left_in

KEY = "TESTKEY-matrix-0b7c"
NEW_YORK = ZoneInfo("America/New_York")
SYMBOL = {v: "MSFT" if v == "alphavantage" else "AAPL" for v in VENDORS}  # the fixtures' tickers
OTHER = "XOM"  # a second symbol, after the first on the command line
WINDOW = {  # the fixtures' trading days
    "yahoo": ("2024-05-06", "2024-05-10"), "eodhd": ("2024-05-06", "2024-05-10"),
    "tiingo": ("2024-05-06", "2024-05-10"), "alphavantage": ("2024-06-03", "2024-06-07"),
    "finnhub": ("2024-06-03", "2024-06-07"), "polygon": ("2024-06-03", "2024-06-07"),
    "stooq": ("2024-06-03", "2024-06-07"),
}
_MAY = (("2024-05-06", 181.71), ("2024-05-07", 182.4), ("2024-05-08", 182.74), ("2024-05-09", 184.57),
        ("2024-05-10", 183.05))
_JUNE = (("2024-06-03", 194.03), ("2024-06-04", 194.35), ("2024-06-05", 195.87), ("2024-06-06", 194.48),
         ("2024-06-07", 196.89))
# Stooq's and Finnhub's daily prices are adjusted by actions their answers do not report
# (providers/basis.py): only the answer's newest bar is known as traded; the others are
# rejected `adjusted_only`.
_ANCHOR = _JUNE[-1:]
ADJUSTED_ONLY = tuple((day, "adjusted_only") for day, _ in _JUNE[:-1])
CLOSES = {  # (date, close) each fixture's success body must store
    "yahoo": _MAY, "eodhd": _MAY, "tiingo": _MAY, "finnhub": _ANCHOR, "polygon": _JUNE, "stooq": _ANCHOR,
    "alphavantage": (("2024-06-03", 413.52), ("2024-06-04", 416.07), ("2024-06-05", 424.01),
                     ("2024-06-06", 424.52), ("2024-06-07", 423.85)),
}
ACTIONS = {"yahoo": (("2024-05-10", "dividend", 0.25),), "tiingo": (("2024-05-10", "dividend", 0.25),)}
REJECTS = {"finnhub": ADJUSTED_ONLY, "stooq": ADJUSTED_ONLY}  # what each success body must reject
NVDA_2021 = (("2021-07-13", 816.4), ("2021-07-14", 792.32), ("2021-07-15", 760.12), ("2021-07-16", 723.44),
             ("2021-07-19", 751.2))  # as traded, before the 4:1 split of 2021-07-20
SUCCESS = {"yahoo": "success.json", "alphavantage": "time_series_daily_success.json",
           "eodhd": "eod_success.json", "finnhub": "candle_success.json", "polygon": "aggs_success.json",
           "tiingo": "daily_prices_success.json", "stooq": "success.csv"}
BAD_KEY = {"alphavantage": ("bad_key.json", 200), "eodhd": ("bad_key.txt", 401), "finnhub": ("bad_key.json", 401),
           "polygon": ("bad_key.json", 401), "tiingo": ("bad_key.json", 401)}  # stooq: described only


def module_for(vendor: str):
    """The vendor's own module (stockpipe.providers.<vendor>)."""
    return importlib.import_module(f"stockpipe.providers.{vendor}")


KEYED = tuple(v for v in VENDORS if module_for(v).KEY_PARAM)

Answer = Union[Reply, Callable[[Call], Reply]]

# ------------------------------------------------------------------- described bodies


def _f32(value: float | None) -> float | None:
    return None if value is None else float(np.float32(value))  # Yahoo's float32-widened doubles


def _yahoo_split_and_nulls() -> bytes:
    """4 bars; 2024-06-07 all null; split 10:1 on 2024-06-10 (bars already split-adjusted);
    dividend 0.01 on 2024-06-11."""
    days = ["2024-06-06", "2024-06-07", "2024-06-10", "2024-06-11", "2024-06-12"]
    stamps = [int(dt.datetime.fromisoformat(f"{d}T09:30").replace(tzinfo=NEW_YORK).timestamp()) for d in days]
    rows = {"open": [124.05, None, 120.37, 121.77, 123.06], "high": [125.59, None, 123.10, 122.87, 126.88],
            "low": [118.32, None, 117.01, 118.74, 122.57], "close": [120.99, None, 121.79, 120.91, 125.20]}
    quote = {k: [_f32(v) for v in values] for k, values in rows.items()}
    quote["volume"] = [465200000, None, 314162700, 222551200, 299595000]
    doc = {"chart": {"result": [{
        "meta": {"currency": "USD", "symbol": "NVDA", "exchangeName": "NMS", "instrumentType": "EQUITY",
                 "gmtoffset": -14400, "timezone": "EDT", "exchangeTimezoneName": "America/New_York",
                 "priceHint": 2, "dataGranularity": "1d", "range": ""},
        "timestamp": stamps,
        "events": {"dividends": {str(stamps[3]): {"amount": 0.01, "date": stamps[3]}},
                   "splits": {str(stamps[2]): {"date": stamps[2], "numerator": 10, "denominator": 1,
                                               "splitRatio": "10:1"}}},
        "indicators": {"quote": [quote],
                       "adjclose": [{"adjclose": [_f32(120.98), None, _f32(121.78), _f32(120.91), _f32(125.2)]}]},
    }], "error": None}}
    return json.dumps(doc).encode()


YAHOO_RANGE = json.dumps({"chart": {"result": None, "error": {
    "code": "Unprocessable Entity",
    "description": "1m data not available for startTime=1714953600 and endTime=1715385600. Only 7 days worth "
                   "of 1m granularity data are allowed to be fetched per request."}}})
AV_LEGACY_NOTE = json.dumps({"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls "
                             "per minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ "
                             "if you would like to target a higher API call frequency."})
AV_QUOTA_VARIANT = json.dumps({"Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 "
                               "requests per day. Please subscribe to any of the premium plans at "
                               "https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."})
AV_PREMIUM_FULL = json.dumps({"Information": "Thank you for using Alpha Vantage! The outputsize=full parameter value "
                              "is a premium feature for the TIME_SERIES_DAILY endpoint. You may subscribe to any of "
                              "the premium plans at https://www.alphavantage.co/premium/ to instantly unlock all "
                              "premium features"})
AV_DEMO = json.dumps({"Information": "The **demo** API key is for demo purposes only. Please claim your free API "
                      "key at (https://www.alphavantage.co/support/#api-key) to explore our full API offerings. "
                      "It takes fewer than 20 seconds."})
EODHD_CSV = ("Date,Open,High,Low,Close,Adjusted_close,Volume\r\n"
             "2024-05-06,182.35,184.2,180.42,181.71,178.9213,78569700\r\n"
             "2024-05-07,183.45,184.9,181.32,182.4,179.6007,77305800\r\n"
             "2024-05-08,182.85,183.07,181.45,182.74,179.9355,45057100\r\n"
             "2024-05-09,182.56,184.66,182.11,184.57,181.7374,48983000\r\n"
             "2024-05-10,184.9,185.09,182.13,183.05,180.4865,50759500\r\n")
EODHD_QUOTA_OLD = "You exceeded your daily API requests limit.  Please contact support@eodhistoricaldata.com"
STOOQ_APIKEY = ("Get your apikey:\r\n\r\n1. Open https://stooq.com/q/d/?s=aapl.us&get_apikey\r\n"
                "2. Enter the code shown in the picture\r\n3. Copy the download link with the apikey parameter\r\n")
STOOQ_JS = ("<!DOCTYPE html><html><head><title>stooq</title></head><body><noscript>This site requires JavaScript "
            "to verify your browser.</noscript><script src=\"/cdn-cgi/challenge.js\"></script></body></html>")
STOOQ_SHUFFLED_LF = "".join(f"{line}\n" for line in (  # LF line ends, rows out of date order
    "Date,Open,High,Low,Close,Volume", "2024-06-05,195.4,196.9,194.87,195.87,54156785",
    "2024-06-03,192.9,194.99,192.52,194.03,50080539", "2024-06-07,194.65,196.94,194.14,196.89,53103912",
    "2024-06-04,194.64,195.32,193.0342,194.35,47471445", "2024-06-06,195.685,196.5,194.17,194.48,41181753"))
POLYGON_UNKNOWN = json.dumps({"ticker": "AAPL", "queryCount": 0, "resultsCount": 0, "adjusted": True,
                              "status": "OK", "request_id": "5e4d3c2b1a0f9e8d7c6b5a4938271605", "count": 0})
TIINGO_QUOTA = json.dumps({"detail": "Error: You have run over your monthly unique symbol request allocation. "
                           "Please upgrade at https://api.tiingo.com/pricing to have your limits increased."})
FINNHUB_QUOTE_UNKNOWN = json.dumps({"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0})
EODHD_REAL_TIME_NA = json.dumps({"code": "NOSUCH.US", "timestamp": "NA", "gmtoffset": 0, "open": "NA", "high": "NA",
                                 "low": "NA", "close": "NA", "volume": "NA", "previousClose": "NA", "change": "NA",
                                 "change_p": "NA"})
GARBLED = b"\x1f\x8b\x08\x00\xde\xad\xbe\xef garbled \xff\xfe\x00 body"
RETRY_NOW = {"Retry-After": "0"}


def body(text: str | bytes, status: int = 200, content_type: str | None = "application/json", **knobs) -> Reply:
    return Reply(status=status, body=text, content_type=content_type, **knobs)


def truncated_success(vendor: str) -> Reply:
    """The success body cut off part-way (a complete HTTP answer holding half a document)."""
    whole = fixture(vendor, SUCCESS[vendor])
    cut = 20 if vendor == "stooq" else len(whole.data) // 2  # stooq: inside the header line
    return dataclasses.replace(whole, body=whole.data[:cut])


# ------------------------------------------------------------------------- the table


@dataclasses.dataclass(frozen=True)
class Case:
    """One PROVIDERS.md row (or a variant its text describes) served to the CLI's daily fetch.

    expect: OK | EMPTY | EMPTY_OR_NOT_FOUND | SYMBOL_NOT_FOUND | AUTH_FAILED | QUOTA_EXHAUSTED |
        NOT_ENTITLED | NOT_ENTITLED_STOPS | RETRIED | THROTTLED | THROTTLED_STOPS | PROTOCOL_ERROR.
    answers: what the daily endpoint answers, in turn (the last repeats); built lazily.
    many: AUTH_FAILED/QUOTA_EXHAUSTED/..._STOPS with this many symbols at the vendor's full concurrency
        (at most 8 calls in flight) instead of two symbols one at a time: the provider stops, so the
        symbols not yet started are deferred without a call. Used where a wrong (retrying) client
        would otherwise sleep through a 1-call-per-second limit.
    """

    vendor: str
    row: str  # the file column of PROVIDERS.md
    expect: str
    answers: Callable[[], Sequence[Answer]]
    variant: str = ""
    symbol: str = ""
    window: tuple[str, str] | None = None
    closes: tuple[tuple[str, float], ...] | None = None
    actions: tuple[tuple[str, str, float], ...] | None = None
    adj: tuple[tuple[str, float], ...] = ()
    rejects: tuple[tuple[str, str], ...] = ()
    many: int = 0
    max_calls: int = 1  # AUTH_FAILED: calls allowed before the provider stops (yahoo: refresh + retry once)
    check_calls: Callable[[list[Call]], None] | None = None
    bug: str = ""

    @property
    def id(self) -> str:
        return f"{self.vendor}-{self.row}" + (f"-{self.variant}" if self.variant else "")

    @property
    def sym(self) -> str:
        return self.symbol or SYMBOL[self.vendor]

    @property
    def dates(self) -> tuple[str, str]:
        return self.window or WINDOW[self.vendor]


def F(vendor: str, name: str, status: int = 200, **knobs) -> Callable[[], Sequence[Answer]]:
    return lambda: [fixture(vendor, name, status, **knobs)]


def then_success(vendor: str, first: Callable[[], Sequence[Answer]]) -> Callable[[], Sequence[Answer]]:
    return lambda: [*first(), fixture(vendor, SUCCESS[vendor])]


def _av_by_outputsize(call: Call) -> Reply:
    if call.param("outputsize") == "full":
        return body(AV_PREMIUM_FULL)
    return fixture("alphavantage", "time_series_daily_success.json")


def _av_full_then_compact(calls: list[Call]) -> None:
    assert [c.param("outputsize") for c in calls] == ["full", "compact"]


def _yahoo_session_required(call: Call) -> Reply:
    """The chart answer once the client holds the session the fake handed out, else Yahoo's 401."""
    return fixture("yahoo", "success.json") if call.has_yahoo_session else yahoo_refusal()


def _yahoo_unsigned_then_signed(calls: list[Call]) -> None:
    assert [c.has_yahoo_session for c in calls] == [False, True]
    assert calls[1].param("crumb") == YAHOO_CRUMB and f"A3={calls[1].cookie('A3')}" == YAHOO_COOKIE


def _protocol_cases(vendor: str) -> list[Case]:
    """PROVIDERS.md: anything that is not data nor a known refusal is PROTOCOL_ERROR: store nothing."""
    content_type = CONTENT_TYPES[Path(SUCCESS[vendor]).suffix]  # what the success body is served as
    return [Case(vendor, "PROTOCOL_ERROR", "PROTOCOL_ERROR", lambda: [body(GARBLED, content_type=content_type)],
                 variant="garbled body"),
            Case(vendor, "PROTOCOL_ERROR", "PROTOCOL_ERROR", lambda: [truncated_success(vendor)],
                 variant="truncated body")]


AV = "alphavantage"
CLI_CASES: list[Case] = [
    # ---------------------------------------------------------------- alphavantage (all HTTP 200)
    Case(AV, "time_series_daily_success.json", "OK", F(AV, "time_series_daily_success.json")),
    Case(AV, "time_series_daily_success.csv", "OK", F(AV, "time_series_daily_success.csv")),
    Case(AV, "time_series_daily_adjusted_success.json", "OK", F(AV, "time_series_daily_adjusted_success.json"),
         window=("2024-05-13", "2024-05-17"),
         closes=(("2024-05-13", 413.72), ("2024-05-14", 416.56), ("2024-05-15", 423.08), ("2024-05-16", 420.99),
                 ("2024-05-17", 420.21)),
         adj=(("2024-05-13", 412.9751), ("2024-05-14", 415.81), ("2024-05-17", 420.21)),
         actions=(("2024-05-15", "dividend", 0.75),)),
    Case(AV, "unknown_symbol.json", "SYMBOL_NOT_FOUND", F(AV, "unknown_symbol.json")),
    Case(AV, "bad_key.json", "AUTH_FAILED", F(AV, "bad_key.json")),
    Case(AV, "bad_key.json", "AUTH_FAILED", F(AV, "bad_key.json", content_type="text/csv"),
         variant="JSON error with text-csv content type"),
    Case(AV, "bad_key.json", "AUTH_FAILED", lambda: [body(AV_DEMO)], variant="demo key Information"),
    Case(AV, "rate_limited.json", "RETRIED", then_success(AV, F(AV, "rate_limited.json", headers=RETRY_NOW))),
    Case(AV, "rate_limited.json", "THROTTLED", F(AV, "rate_limited.json", headers=RETRY_NOW), variant="persistent"),
    Case(AV, "rate_limited_legacy_note.json", "RETRIED", then_success(AV, lambda: [body(AV_LEGACY_NOTE,
                                                                                        headers=RETRY_NOW)])),
    Case(AV, "rate_limited_legacy_note.json", "THROTTLED", lambda: [body(AV_LEGACY_NOTE, headers=RETRY_NOW)],
         variant="persistent"),
    Case(AV, "quota_exhausted.json", "QUOTA_EXHAUSTED", F(AV, "quota_exhausted.json")),
    Case(AV, "quota_exhausted.json", "QUOTA_EXHAUSTED", lambda: [body(AV_QUOTA_VARIANT)],
         variant="Thank you variant"),
    Case(AV, "premium_endpoint.json", "NOT_ENTITLED", F(AV, "premium_endpoint.json")),
    Case(AV, "premium_outputsize_full.json", "RETRIED", lambda: [_av_by_outputsize],
         check_calls=_av_full_then_compact),
    *_protocol_cases(AV),
    # ---------------------------------------------------------------------------------- yahoo
    Case("yahoo", "success.json", "OK", F("yahoo", "success.json")),
    Case("yahoo", "split_and_nulls.json", "OK", lambda: [body(_yahoo_split_and_nulls())], symbol="NVDA",
         window=("2024-06-06", "2024-06-12"),
         # stored as traded (README "Data"): the pre-split bar is multiplied back by 10
         closes=(("2024-06-06", 1209.9), ("2024-06-10", 121.79), ("2024-06-11", 120.91), ("2024-06-12", 125.2)),
         actions=(("2024-06-10", "split", 10.0), ("2024-06-11", "dividend", 0.01)),
         rejects=(("2024-06-07", "all_null"),)),
    # a split after the window (and, answered years later, every split since) is undone (issue 15)
    Case("yahoo", "split_after_window.json", "OK", F("yahoo", "split_after_window.json"), symbol="NVDA",
         window=("2021-07-13", "2021-07-19"), closes=NVDA_2021, actions=(("2021-07-20", "split", 4.0),)),
    Case("yahoo", "split_before_later_split.json", "OK", F("yahoo", "split_before_later_split.json"), symbol="NVDA",
         window=("2021-07-13", "2021-07-19"), closes=NVDA_2021,
         actions=(("2021-07-20", "split", 4.0), ("2021-08-31", "dividend", 0.04), ("2024-06-10", "split", 10.0),
                  ("2024-06-11", "dividend", 0.01))),
    Case("yahoo", "no_data_in_range.json", "EMPTY", F("yahoo", "no_data_in_range.json")),
    Case("yahoo", "unknown_symbol.json", "SYMBOL_NOT_FOUND", F("yahoo", "unknown_symbol.json", 404)),
    Case("yahoo", "range_not_available.json", "NOT_ENTITLED", lambda: [body(YAHOO_RANGE, 422)]),
    Case("yahoo", "range_not_available.json", "NOT_ENTITLED", lambda: [body(YAHOO_RANGE, 200)],
         variant="with HTTP 200"),
    Case("yahoo", "unauthorized_crumb.json", "AUTH_FAILED", F("yahoo", "unauthorized_crumb.json", 401),
         variant="persistent", max_calls=2),
    Case("yahoo", "unauthorized_crumb.json", "AUTH_FAILED", lambda: [yahoo_refusal("Invalid Cookie")],
         variant="Invalid Cookie, persistent", max_calls=2),
    Case("yahoo", "unauthorized_crumb.json", "RETRIED", lambda: [_yahoo_session_required],
         variant="refresh and retry once", check_calls=_yahoo_unsigned_then_signed),
    Case("yahoo", "rate_limited.txt", "RETRIED",
         then_success("yahoo", F("yahoo", "rate_limited.txt", 429, headers=RETRY_NOW))),
    Case("yahoo", "rate_limited.txt", "RETRIED",
         then_success("yahoo", lambda: [body("Edge: Too Many Requests", 429, "text/html", headers=RETRY_NOW)]),
         variant="Edge text as HTML"),
    Case("yahoo", "rate_limited.txt", "THROTTLED", F("yahoo", "rate_limited.txt", 429, headers=RETRY_NOW),
         variant="persistent"),
    Case("yahoo", "rate_limited.txt", "THROTTLED_STOPS", F("yahoo", "rate_limited.txt", 429, headers=RETRY_NOW),
         variant="persistent stops the provider", many=12),
    *_protocol_cases("yahoo"),
    # -------------------------------------------------------------------------------- finnhub
    Case("finnhub", "candle_success.json", "OK", F("finnhub", "candle_success.json")),
    Case("finnhub", "candle_midnight_utc.json", "OK", F("finnhub", "candle_midnight_utc.json")),  # not a day early
    Case("finnhub", "candle_no_data.json", "EMPTY", F("finnhub", "candle_no_data.json")),
    Case("finnhub", "bad_key.json", "AUTH_FAILED", F("finnhub", "bad_key.json", 401)),
    Case("finnhub", "missing_key.json", "AUTH_FAILED", F("finnhub", "missing_key.json", 401)),
    Case("finnhub", "rate_limited.json", "RETRIED",
         then_success("finnhub", F("finnhub", "rate_limited.json", 429, headers=RETRY_NOW))),
    Case("finnhub", "rate_limited.json", "THROTTLED", F("finnhub", "rate_limited.json", 429, headers=RETRY_NOW),
         variant="persistent"),
    Case("finnhub", "no_access.json", "NOT_ENTITLED", F("finnhub", "no_access.json", 403)),
    Case("finnhub", "no_access.json", "NOT_ENTITLED", F("finnhub", "no_access.json", 401),
         variant="older 401 form"),
    Case("finnhub", "no_access.json", "NOT_ENTITLED_STOPS", F("finnhub", "no_access.json", 403),
         variant="stops calling the endpoint", many=12),
    *_protocol_cases("finnhub"),
    # ---------------------------------------------------------------------------------- eodhd
    Case("eodhd", "eod_success.json", "OK", F("eodhd", "eod_success.json"),
         adj=(("2024-05-06", 178.9213), ("2024-05-10", 180.4865))),
    Case("eodhd", "eod_success.csv", "OK", lambda: [body(EODHD_CSV, content_type="text/csv")],
         adj=(("2024-05-06", 178.9213), ("2024-05-10", 180.4865))),
    Case("eodhd", "eod_success_count_line.csv", "OK", F("eodhd", "eod_success_count_line.csv"),
         adj=(("2024-05-06", 178.9213), ("2024-05-10", 180.4865))),  # the count line is no reject
    Case("eodhd", "unknown_symbol.txt", "SYMBOL_NOT_FOUND", F("eodhd", "unknown_symbol.txt", 404)),
    Case("eodhd", "bad_key.txt", "AUTH_FAILED", F("eodhd", "bad_key.txt", 401)),
    Case("eodhd", "rate_limited.txt", "RETRIED",
         then_success("eodhd", F("eodhd", "rate_limited.txt", 429, content_type="text/html", headers=RETRY_NOW))),
    Case("eodhd", "rate_limited.txt", "THROTTLED",
         F("eodhd", "rate_limited.txt", 429, content_type="text/html", headers=RETRY_NOW), variant="persistent"),
    Case("eodhd", "quota_exhausted.txt", "QUOTA_EXHAUSTED", F("eodhd", "quota_exhausted.txt", 402)),
    Case("eodhd", "quota_exhausted.txt", "QUOTA_EXHAUSTED", lambda: [body(EODHD_QUOTA_OLD, 402, "text/plain")],
         variant="older support text"),
    *_protocol_cases("eodhd"),
    # ---------------------------------------------------------------------------------- stooq (all HTTP 200)
    Case("stooq", "success.csv", "OK", F("stooq", "success.csv"), adj=_ANCHOR),
    Case("stooq", "success.csv", "OK", lambda: [body(STOOQ_SHUFFLED_LF, content_type="text/csv")],
         variant="LF and unsorted", adj=_ANCHOR),
    Case("stooq", "adjusted_history.csv", "OK", F("stooq", "adjusted_history.csv"), window=("2018-01-02", "2024-06-07"),
         adj=_ANCHOR, rejects=tuple((d, "adjusted_only") for d in ("2018-01-02", "2018-01-03", "2018-01-04",
                                                                    "2018-01-05", "2024-06-06"))),
    Case("stooq", "unknown_symbol.txt", "SYMBOL_NOT_FOUND", F("stooq", "unknown_symbol.txt")),
    Case("stooq", "unknown_symbol.txt", "SYMBOL_NOT_FOUND", lambda: [body("Brak danych", content_type="text/plain")],
         variant="stooq.pl text"),
    Case("stooq", "unknown_symbol.txt", "EMPTY",
         lambda: [body("Date,Open,High,Low,Close,Volume\r\n", content_type="text/csv")], variant="header only"),
    Case("stooq", "apikey_required.txt", "AUTH_FAILED", lambda: [body(STOOQ_APIKEY, content_type="text/plain")]),
    Case("stooq", "quota_exhausted.txt", "QUOTA_EXHAUSTED", F("stooq", "quota_exhausted.txt")),
    Case("stooq", "quota_exhausted.txt", "QUOTA_EXHAUSTED", lambda: [body(STOOQ_JS, content_type="text/html")],
         variant="JavaScript anti-bot page stops the provider"),
    *_protocol_cases("stooq"),
    # -------------------------------------------------------------------------------- polygon
    Case("polygon", "aggs_success.json", "OK", F("polygon", "aggs_success.json")),
    Case("polygon", "aggs_unknown_symbol.json", "EMPTY_OR_NOT_FOUND", lambda: [body(POLYGON_UNKNOWN)]),
    Case("polygon", "bad_key.json", "AUTH_FAILED", F("polygon", "bad_key.json", 401)),
    Case("polygon", "rate_limited.json", "RETRIED",
         then_success("polygon", F("polygon", "rate_limited.json", 429, headers=RETRY_NOW))),
    Case("polygon", "rate_limited.json", "THROTTLED", F("polygon", "rate_limited.json", 429, headers=RETRY_NOW),
         variant="persistent"),
    Case("polygon", "not_authorized.json", "NOT_ENTITLED", F("polygon", "not_authorized.json", 403)),
    *_protocol_cases("polygon"),
    # --------------------------------------------------------------------------------- tiingo
    Case("tiingo", "daily_prices_success.json", "OK", F("tiingo", "daily_prices_success.json")),
    Case("tiingo", "unknown_symbol.json", "SYMBOL_NOT_FOUND", F("tiingo", "unknown_symbol.json", 404)),
    Case("tiingo", "unknown_symbol.json", "SYMBOL_NOT_FOUND", F("tiingo", "unknown_symbol.json", 200),
         variant="detail with HTTP 200"),
    Case("tiingo", "bad_key.json", "AUTH_FAILED", F("tiingo", "bad_key.json", 401)),
    Case("tiingo", "bad_key.json", "AUTH_FAILED", F("tiingo", "bad_key.json", 200), variant="detail with HTTP 200"),
    Case("tiingo", "rate_limited.json", "RETRIED",
         then_success("tiingo", F("tiingo", "rate_limited.json", 429, headers=RETRY_NOW))),
    Case("tiingo", "rate_limited.json", "THROTTLED", F("tiingo", "rate_limited.json", 429, headers=RETRY_NOW),
         variant="persistent"),
    # Retry-After: 0 only keeps a wrong (retrying) client fast; a quota answer is never retried.
    Case("tiingo", "quota_exhausted.json", "QUOTA_EXHAUSTED", lambda: [body(TIINGO_QUOTA, 429, headers=RETRY_NOW)],
         many=12),
    *_protocol_cases("tiingo"),
]


# ----------------------------------------------------------------------------- harness


class Daily:
    """One vendor's daily endpoint on the fake server, answered per symbol: each symbol's
    answers in turn (the last repeats), with the calls each symbol received."""

    def __init__(self, server: FakeVendor, vendor: str, start: str, end: str) -> None:
        self.server, self.module = server, module_for(vendor)
        self.start, self.end = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
        self._answers: dict[str, list[Answer]] = {}
        self._symbol_of: dict[tuple[str, str | None], str] = {}
        self._calls: dict[str, list[Call]] = defaultdict(list)
        self._lock = threading.Lock()

    def answer(self, symbol: str, *answers: Answer) -> "Daily":
        request = self.module.daily_request(self.module.vendor_symbol(symbol), self.start, self.end)
        # AV (/query), stooq (/q/d/l/) and finnhub name the symbol in the query, the others in the path.
        self._symbol_of[(request.path, request.params.get("symbol") or request.params.get("s"))] = symbol
        self._answers[symbol] = list(answers)
        self.server.route(request.path, self._handle)
        return self

    def _handle(self, call: Call) -> Reply:
        symbol = self._symbol_of.get((call.path, call.param("symbol") or call.param("s")))
        if symbol is None:
            return Reply(404, f"no answer for {call.path}?{call.raw_query} in this test", content_type="text/plain")
        with self._lock:
            self._calls[symbol].append(call)
            answers = self._answers[symbol]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(call) if callable(answer) else answer

    def calls(self, symbol: str | None = None) -> list[Call]:
        with self._lock:
            return list(self._calls[symbol]) if symbol else [c for calls in self._calls.values() for c in calls]


@pytest.fixture
def server(fake_vendor):
    return fake_vendor


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory) -> Path:
    """A warehouse at the newest migration, copied into each test's data directory so that
    ~100 CLI runs do not each replay the migrations (the CLI still checks the revision)."""
    from stockpipe.storage import warehouse

    path = tmp_path_factory.mktemp("template") / "stockpipe.db"
    engine = warehouse.create(f"sqlite:///{path}")
    try:
        warehouse.upgrade(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return path


@pytest.fixture
def cli(make_cli, tmp_path, server, migrated_db):
    """The real CLI in tmp_path with a clean STOCKPIPE_* environment, every vendor at the fake."""
    (tmp_path / "stockpipe-data").mkdir()
    shutil.copyfile(migrated_db, tmp_path / "stockpipe-data" / "stockpipe.db")
    environment = {}
    for vendor in VENDORS:
        environment[f"STOCKPIPE_{vendor.upper()}_BASE_URL"] = server.url
        # Published minute/hour limits would make retries wait; they are not under test here.
        environment[f"STOCKPIPE_{vendor.upper()}_CALLS_PER_MINUTE"] = "100000"
        environment[f"STOCKPIPE_{vendor.upper()}_CALLS_PER_HOUR"] = "100000"
    return make_cli(**environment)


def stored(tmp_path: Path, symbol: str) -> list[tuple]:
    return db(tmp_path, "SELECT date, close FROM prices_daily WHERE symbol = ? ORDER BY date", symbol)


def fetch_events(tmp_path: Path) -> dict[str, str]:
    return dict(db(tmp_path, "SELECT symbol, status FROM run_events WHERE stage = 'fetch' ORDER BY id"))


def assert_nothing_stored(tmp_path: Path, *symbols: str) -> None:
    for symbol in symbols:
        assert stored(tmp_path, symbol) == []
        assert db(tmp_path, "SELECT * FROM corporate_actions WHERE symbol = ?", symbol) == []


def _params(cases: list[Case]) -> list:
    marks = lambda c: [pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []  # noqa: E731
    return [pytest.param(c, id=c.id, marks=marks(c)) for c in cases]


# ------------------------------------------------------------------------- CLI matrix


@pytest.mark.parametrize("case", _params(CLI_CASES))
def test_daily_row_through_the_cli(case: Case, cli, server, monkeypatch, tmp_path):
    vendor, sym = case.vendor, case.sym
    env = f"STOCKPIPE_{vendor.upper()}"
    if vendor in KEYED:
        monkeypatch.setenv(f"{env}_API_KEY", KEY)
    stops = case.expect in ("AUTH_FAILED", "QUOTA_EXHAUSTED", "NOT_ENTITLED_STOPS", "THROTTLED_STOPS")
    two = stops and not case.many
    # One call at a time where "the provider stopped" must mean "no further call".
    monkeypatch.setenv(f"{env}_CALLS_PER_SECOND", "1" if two else "1000")
    daily = Daily(server, vendor, *case.dates).answer(sym, *case.answers())
    if vendor == "yahoo":
        server.yahoo_session()  # fc.yahoo.com's cookie and /v1/test/getcrumb, for a session refresh
    symbols = [sym, *(f"S{i:02d}" for i in range(1, case.many))] if case.many else [sym, OTHER] if two else [sym]
    for other in symbols[1:]:
        daily.answer(other, *case.answers())  # the same answer whatever the symbol
    code, out, err = cli("run", *(arg for s in symbols for arg in ("-s", s)), "--provider", vendor,
                         "--start", case.dates[0], "--end", case.dates[1], "--json")
    doc = json.loads(out)
    assert doc["exit_code"] == code
    events, calls = fetch_events(tmp_path), daily.calls()

    if case.many:
        assert code == (ExitCode.CONFIG if case.expect == "AUTH_FAILED" else ExitCode.PARTIAL), err
        asked = [s for s in symbols if daily.calls(s)]
        assert all(events[s] == "failed" for s in asked), events
        assert len(asked) <= 8  # only the calls already in flight when the provider stopped
        per_symbol = {len(daily.calls(s)) for s in asked}
        assert per_symbol <= ({2, 3, 4, 5, 6, 7, 8, 9, 10} if case.expect == "THROTTLED_STOPS" else {1}), per_symbol
        skipped = [s for s in symbols if events[s] == "skipped"]
        assert len(skipped) >= len(symbols) - 8  # the provider stopped: no call for what had not started
        # skipped exactly when never asked: also a worker that started but was refused
        # without a call (e.g. by the quota ledger the vendor's own refusal marked spent)
        assert skipped == [s for s in symbols if not daily.calls(s)]
        assert {events[s] for s in symbols} <= {"failed", "skipped"}
        assert_nothing_stored(tmp_path, *symbols)
    elif case.expect in ("OK", "RETRIED"):
        assert code == ExitCode.OK, err
        assert events == {sym: "ok"}
        assert stored(tmp_path, sym) == list(case.closes or CLOSES[vendor])
        assert db(tmp_path, "SELECT DISTINCT provider FROM prices_daily") == [(vendor,)]
        assert len(calls) == (2 if case.expect == "RETRIED" else 1)
        for day, value in case.adj:
            assert db(tmp_path, "SELECT adj_close FROM prices_daily WHERE symbol = ? AND date = ?", sym, day) == [
                (pytest.approx(value),)]
        actions = case.actions if case.actions is not None else ACTIONS.get(vendor, ())
        assert db(tmp_path, "SELECT date, kind, value FROM corporate_actions WHERE symbol = ? ORDER BY date",
                  sym) == [(d, k, pytest.approx(v)) for d, k, v in actions]
        assert db(tmp_path, "SELECT COUNT(*) FROM prices_daily WHERE close <= 0 OR open <= 0") == [(0,)]
        assert sorted(db(tmp_path, "SELECT date, reason FROM rejects WHERE symbol = ?", sym)) == list(
            case.rejects or REJECTS.get(vendor, ()))
    elif case.expect == "EMPTY":
        assert code == ExitCode.OK, err
        assert events == {sym: "no_data"}
        assert len(calls) == 1  # not an error: not retried
        assert_nothing_stored(tmp_path, sym)
    elif case.expect == "EMPTY_OR_NOT_FOUND":  # Polygon cannot tell the two apart
        assert (code, events) in ((ExitCode.OK, {sym: "no_data"}), (ExitCode.BAD_INPUT, {sym: "failed"})), err
        assert len(calls) == 1
        assert_nothing_stored(tmp_path, sym)
    elif case.expect == "SYMBOL_NOT_FOUND":
        assert code == ExitCode.BAD_INPUT, err  # one symbol failing alone: its cause's code (65)
        assert events == {sym: "failed"}
        assert len(calls) == 1  # permanent: not retried
        assert_nothing_stored(tmp_path, sym)
    elif case.expect == "AUTH_FAILED":
        assert code == ExitCode.CONFIG, err
        if vendor in KEYED:
            assert f"{env}_API_KEY" in err
        else:  # yahoo has no key: the session was refused, and the message says what to do
            assert "API_KEY" not in err and "session (cookie and crumb)" in err and "--provider" in err, err
            assert "again with a new cookie and crumb" in err and len(server.calls("/v1/test/getcrumb")) == 1
        assert 1 <= len(calls) <= case.max_calls  # not retried (yahoo: one session refresh at most)
        assert [c for c in (sym, OTHER) if daily.calls(c)] == [sym]  # the provider stopped
        assert events == {sym: "failed", OTHER: "skipped"}
        assert_nothing_stored(tmp_path, sym, OTHER)
    elif case.expect == "QUOTA_EXHAUSTED":
        assert code == ExitCode.PARTIAL, err
        assert len(calls) == 1  # not retried, and the provider stopped
        assert events == {sym: "failed", OTHER: "skipped"}  # the rest deferred to the next run
        assert_nothing_stored(tmp_path, sym, OTHER)
    elif case.expect == "NOT_ENTITLED":
        assert code == ExitCode.PARTIAL, err
        assert len(calls) == 1  # permanent for this endpoint: not retried
        assert events == {sym: "failed"}
        assert_nothing_stored(tmp_path, sym)
    elif case.expect == "THROTTLED":
        assert code == ExitCode.PARTIAL, err
        assert 2 <= len(calls) <= 10  # retried, but not forever
        assert events == {sym: "failed"}
        assert_nothing_stored(tmp_path, sym)
    elif case.expect == "PROTOCOL_ERROR":
        assert code == ExitCode.PARTIAL, err
        assert len(calls) == 1  # a body that failed to parse is not retried
        assert events == {sym: "failed"}
        assert_nothing_stored(tmp_path, sym)
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(f"unknown expectation {case.expect}")
    if case.check_calls:
        case.check_calls(calls)


@pytest.mark.parametrize("vendor", KEYED)
def test_no_key_configured_is_a_config_error_before_any_call(vendor, cli, server):
    """finnhub missing_key.json / polygon 'API Key was not provided': never send a request without the key."""
    daily = Daily(server, vendor, *WINDOW[vendor]).answer(SYMBOL[vendor], fixture(vendor, SUCCESS[vendor]))
    code, _, err = cli("run", "-s", SYMBOL[vendor], "--provider", vendor, "--start", WINDOW[vendor][0],
                       "--end", WINDOW[vendor][1])
    assert code == ExitCode.CONFIG and f"STOCKPIPE_{vendor.upper()}_API_KEY" in err
    assert daily.calls() == [] and server.requests == []


# ------------------------------------------------------------- yahoo's cookie + crumb session


def test_concurrent_yahoo_refusals_share_one_new_session(cli, server, tmp_path, caplog):
    """12 symbols, 8 in flight, and a chart that wants a session the client does not hold
    yet: every first call is refused, one handshake (cookie, then crumb) serves them all,
    and each symbol's retry carries the crumb and the cookie: at most 2 calls a symbol.
    The crumb is a credential: httpx's DEBUG lines (full URLs) show it redacted."""
    for name in ("httpx", "stockpipe"):
        caplog.set_level(logging.DEBUG, logger=name)
    symbols = [f"S{i:02d}" for i in range(1, 13)]
    daily = Daily(server, "yahoo", *WINDOW["yahoo"])
    for symbol in symbols:
        daily.answer(symbol, _yahoo_session_required)
    server.yahoo_session()
    code, out, err = cli("run", *(a for s in symbols for a in ("-s", s)), "--provider", "yahoo",
                         "--start", WINDOW["yahoo"][0], "--end", WINDOW["yahoo"][1], "--json")
    assert code == ExitCode.OK, err
    assert fetch_events(tmp_path) == dict.fromkeys(symbols, "ok")
    assert len(server.calls("/")) == len(server.calls("/v1/test/getcrumb")) == 1
    for symbol in symbols:
        calls = daily.calls(symbol)
        assert 1 <= len(calls) <= 2 and calls[-1].has_yahoo_session
        assert [c.has_yahoo_session for c in calls[:-1]] == [False] * (len(calls) - 1)
    assert "crumb=***" in caplog.text and YAHOO_CRUMB not in out + err + caplog.text


@pytest.mark.parametrize("crumb", [Reply(200, "<!DOCTYPE html><html>consent.yahoo.com</html>",
                                         content_type="text/html"),
                                   Reply(200, "", content_type="text/plain"),
                                   yahoo_refusal("Invalid Cookie")],
                         ids=["consent page", "empty", "refused"])
def test_no_crumb_from_yahoo_stops_it_with_a_session_message(crumb, cli, server, monkeypatch, tmp_path):
    """/v1/test/getcrumb hands out no crumb: AUTH_FAILED at once (exit 4), without a retry
    of the chart call and without another handshake; the message names the session."""
    monkeypatch.setenv("STOCKPIPE_YAHOO_CALLS_PER_SECOND", "1")  # the second symbol is never asked
    daily = Daily(server, "yahoo", *WINDOW["yahoo"])
    daily.answer(SYMBOL["yahoo"], _yahoo_session_required).answer(OTHER, _yahoo_session_required)
    server.yahoo_session(crumb=crumb)
    code, _, err = cli("run", "-s", SYMBOL["yahoo"], "-s", OTHER, "--provider", "yahoo",
                       "--start", WINDOW["yahoo"][0], "--end", WINDOW["yahoo"][1])
    assert code == ExitCode.CONFIG, err
    assert "/v1/test/getcrumb answered HTTP" in err and "without a crumb" in err and "--provider" in err
    assert "API_KEY" not in err
    assert len(daily.calls(SYMBOL["yahoo"])) == 1 and daily.calls(OTHER) == []
    assert len(server.calls("/v1/test/getcrumb")) == 1
    assert fetch_events(tmp_path) == {SYMBOL["yahoo"]: "failed", OTHER: "skipped"}


# ------------------------------------------------------ the quota ledger refuses before a call


@pytest.mark.parametrize("kind", ["daily", "quotes"])
@pytest.mark.parametrize("per_second", ["1", "1000"], ids=["one at a time", "8 in flight"])
def test_symbols_the_spent_ledger_refuses_are_deferred_not_failed(kind, per_second, cli, server, monkeypatch,
                                                                  tmp_path):
    """STOCKPIPE_EODHD_CALLS_PER_DAY=3 and 12 symbols: the ledger grants 3 calls and refuses
    the rest before they are sent, one at a time or with 8 workers in flight. A refused
    symbol was never asked: `skipped` with the ledger's quota message (no failure counted in
    symbol_state, so it is stalest and comes first next run), never `failed`; exit 3."""
    monkeypatch.setenv("STOCKPIPE_EODHD_API_KEY", KEY)
    monkeypatch.setenv("STOCKPIPE_EODHD_CALLS_PER_DAY", "3")
    monkeypatch.setenv("STOCKPIPE_EODHD_CALLS_PER_SECOND", per_second)
    daily = kind == "daily"
    path, stage, dataset = (("/api/eod/*", "fetch", "prices_daily") if daily
                            else ("/api/real-time/*", "fetch-quotes", "quotes"))
    # latency keeps the 8 workers' calls overlapping, so several meet the spent ledger at once
    server.route(path, fixture("eodhd", "eod_success.json" if daily else "real_time_success.json", latency=0.05))
    symbols = [f"S{i:02d}" for i in range(1, 13)]
    selection = [arg for s in symbols for arg in ("-s", s)]
    kind_args = ["--end", "2024-05-10"] if daily else ["--quotes"]

    code, out, err = cli("fetch", *kind_args, *selection, "--provider", "eodhd", "--json")
    doc = json.loads(out)
    assert code == ExitCode.PARTIAL == doc["exit_code"], err
    asked = {c.path.rsplit("/", 1)[1].removesuffix(".US") for c in server.calls(path)}
    assert len(server.calls(path)) == 3 and len(asked) == 3
    events = dict(db(tmp_path, "SELECT symbol, status FROM run_events WHERE stage = ?", stage))
    assert events == {s: "ok" if s in asked else "skipped" for s in symbols}
    assert (doc["counts"]["failed"], doc["counts"]["deferred"]) == (0, 9)
    for message, in db(tmp_path, "SELECT message FROM run_events WHERE status = 'skipped'"):
        assert "quota spent (3 of 3 calls)" in message and "STOCKPIPE_EODHD_CALLS_PER_DAY" in message
    state = db(tmp_path, "SELECT symbol, consecutive_failures, last_error FROM symbol_state WHERE dataset = ?",
               dataset)
    assert {s for s, failures, error in state if failures == 0 and error and "quota spent" in error} == (
        set(symbols) - asked)
    if not daily:
        return
    assert stored(tmp_path, "S12" if "S12" not in asked else "S01") == []
    # A raised plan the same day: 3 calls more, only for the deferred symbols (the others are current).
    monkeypatch.setenv("STOCKPIPE_EODHD_CALLS_PER_DAY", "6")
    server.clear()
    code, out, err = cli("fetch", *kind_args, *selection, "--provider", "eodhd", "--json")
    assert code == ExitCode.PARTIAL, err
    again = {c.path.rsplit("/", 1)[1].removesuffix(".US") for c in server.calls(path)}
    assert len(again) == 3 and not again & asked
    assert {s["symbol"]: s["status"] for s in json.loads(out)["symbols"]} == {
        s: "ok" if s in again else "skipped" for s in symbols if s not in asked}


# --------------------------------------------- quote and intraday rows: fetch --quotes / --interval


@dataclasses.dataclass(frozen=True)
class EndpointCase:
    """A quote or intraday row: `stockpipe fetch --quotes` (or `--interval 5m`), then `load`."""

    vendor: str
    row: str
    expect: str  # OK | EMPTY | SYMBOL_NOT_FOUND
    answers: Callable[[], Sequence[Answer]]
    interval: str = ""  # "" = --quotes
    stored: tuple = ()  # quotes: (ts, price, open, high, low, prev_close, change, change_pct, volume, provider);
    #                     intraday: (ts, close, session_date)

    @property
    def id(self) -> str:
        return f"{self.vendor}-{self.row}"


# Where each vendor's quote / intraday call goes, and the query it must carry.
ENDPOINT = {
    (AV, ""): ("/query", {"function": "GLOBAL_QUOTE", "symbol": "MSFT"}),
    (AV, "5m"): ("/query", {"function": "TIME_SERIES_INTRADAY", "symbol": "MSFT", "interval": "5min"}),
    ("finnhub", ""): ("/api/v1/quote", {"symbol": "AAPL"}),
    ("eodhd", ""): ("/api/real-time/AAPL.US", {}),
}
ENDPOINT_CASES = [
    EndpointCase(AV, "global_quote_success.json", "OK", F(AV, "global_quote_success.json"),
                 # ts = 16:00 New York on "07. latest trading day", in UTC
                 stored=("2024-06-07 20:00", 423.85, 426.2, 426.28, 423.0, 424.52, -0.67, -0.1578, 13621700, AV)),
    EndpointCase(AV, "global_quote_unknown_symbol.json", "SYMBOL_NOT_FOUND", F(AV, "global_quote_unknown_symbol.json")),
    EndpointCase(AV, "time_series_intraday_success.json", "OK", F(AV, "time_series_intraday_success.json"),
                 interval="5m",  # naive US/Eastern keys (EDT): 19:55 is 23:55 UTC, session 2024-06-07
                 stored=(("2024-06-07 23:40", 423.45, "2024-06-07"), ("2024-06-07 23:45", 423.51, "2024-06-07"),
                         ("2024-06-07 23:50", 423.60, "2024-06-07"), ("2024-06-07 23:55", 423.70, "2024-06-07"))),
    EndpointCase("finnhub", "quote_success.json", "OK", F("finnhub", "quote_success.json"),
                 stored=("2024-06-07 20:00", 196.89, 194.65, 196.94, 194.14, 194.48, 2.41, 1.2392, None, "finnhub")),
    EndpointCase("finnhub", "quote_unknown_symbol.json", "SYMBOL_NOT_FOUND",
                 lambda: [body(FINNHUB_QUOTE_UNKNOWN)]),  # all zeros: never store c=0 as a price
    EndpointCase("eodhd", "real_time_success.json", "OK", F("eodhd", "real_time_success.json"),
                 stored=("2024-05-10 20:00", 183.05, 184.9, 185.09, 182.13, 184.57, -1.52, -0.8235, 50759500, "eodhd")),
    EndpointCase("eodhd", "real_time_na_values.json", "EMPTY", lambda: [body(EODHD_REAL_TIME_NA)]),  # never 0
]


def _utc_text(text: str) -> str:
    """A stored timestamp as 'YYYY-MM-DD HH:MM' UTC, whatever the driver's spelling."""
    value = dt.datetime.fromisoformat(str(text))
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return f"{value:%Y-%m-%d %H:%M}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in ENDPOINT_CASES])
def test_quote_and_intraday_row_through_the_cli(case: EndpointCase, cli, server, monkeypatch, tmp_path):
    vendor, sym = case.vendor, SYMBOL[case.vendor]
    monkeypatch.setenv(f"STOCKPIPE_{vendor.upper()}_API_KEY", KEY)
    monkeypatch.setenv(f"STOCKPIPE_{vendor.upper()}_CALLS_PER_SECOND", "1000")
    path, query = ENDPOINT[(vendor, case.interval)]
    answers, calls = list(case.answers()), []

    def handle(call: Call) -> Reply:
        if any(call.param(k) != v for k, v in query.items()):
            return Reply(404, f"not the {case.interval or 'quote'} call: {call.raw_query}", content_type="text/plain")
        calls.append(call)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(call) if callable(answer) else answer

    server.route(path, handle)
    kind = ["--interval", case.interval] if case.interval else ["--quotes"]
    code, out, err = cli("fetch", *kind, "-s", sym, "--provider", vendor, "--json")
    assert json.loads(out)["exit_code"] == code
    assert len(calls) == 1, [f"{c.path}?{c.raw_query}" for c in server.requests]
    stage = "fetch-intraday" if case.interval else "fetch-quotes"
    events = dict(db(tmp_path, "SELECT symbol, status FROM run_events WHERE stage = ?", stage))
    loaded, _, load_err = cli("load", "--json")
    assert loaded == ExitCode.OK, load_err
    if case.interval:
        rows = [(_utc_text(ts), close, day) for ts, close, day in db(
            tmp_path, "SELECT ts, close, session_date FROM prices_intraday WHERE symbol = ? ORDER BY ts", sym)]
    else:
        rows = [(_utc_text(r[0]), *r[1:]) for r in db(
            tmp_path, "SELECT ts, price, open, high, low, prev_close, change, change_pct, volume, provider "
                      "FROM quotes WHERE symbol = ?", sym)]
    if case.expect == "OK":
        assert code == ExitCode.OK, err
        assert events == {sym: "ok"}
        assert rows == (list(case.stored) if case.interval else [case.stored])
    elif case.expect == "EMPTY":
        assert code == ExitCode.OK, err
        assert events == {sym: "no_data"} and rows == []
    elif case.expect == "SYMBOL_NOT_FOUND":
        assert code == ExitCode.BAD_INPUT, err
        assert events == {sym: "failed"} and rows == []
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(case.expect)


# ----------------------------------------- rows for endpoints the CLI does not call: the parser


def _response(vendor: str, name: str | None = None, text: str | None = None, status: int = 200) -> Response:
    data = fixture(vendor, name).data if name else text.encode()
    return Response(status, {"content-type": "application/json"}, data)


def _eodhd_bulk(parsed) -> None:
    frame = parsed.bars
    assert list(frame["symbol"]) == ["AAPL", "MSFT", "SPY"]
    assert {str(d.date()) for d in frame["date"]} == {"2024-05-10"}
    assert list(frame["close"]) == [183.05, 414.74, 520.84]


def _eodhd_symbols(parsed) -> None:
    assert [(s["symbol"], s["exchange"], s["type"]) for s in parsed.symbols] == [
        ("AAPL", "NASDAQ", "Common Stock"), ("MSFT", "NASDAQ", "Common Stock"), ("SPY", "NYSE ARCA", "ETF")]
    assert parsed.symbols[0]["isin"] == "US0378331005"


def _finnhub_kolkata(parsed) -> None:  # 03:45 UTC is 09:15 in Kolkata: the same date
    assert [str(d.date()) for d in parsed.bars["date"]] == ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06",
                                                           "2024-06-07"]
    assert parsed.basis == dt.date(2024, 6, 7)


def _finnhub_sydney(parsed) -> None:  # one Sydney session, one date, 72 bars
    assert len(parsed.intraday) == 72 and {str(d.date()) for d in parsed.intraday["session_date"]} == {"2024-06-04"}


def _eodhd_user(response) -> Callable[[object], None]:
    def check(parsed) -> None:
        assert eodhd.user_quota(response) == "98,843 of 100,000 calls left today (resets 00:00 GMT)"
    return check


MODULE_CASES = [  # (vendor, row, parse, response, outcome, check): no CLI command calls these endpoints
    ("eodhd", "eod_bulk_last_day_success.json", lambda r: eodhd_lists.parse_bulk_last_day(r, "US"),
     lambda: _response("eodhd", "eod_bulk_last_day_success.json"), Outcome.OK, _eodhd_bulk),
    ("eodhd", "exchange_symbol_list_success.json", lambda r: eodhd_lists.parse_symbol_list(r, "US"),
     lambda: _response("eodhd", "exchange_symbol_list_success.json"), Outcome.OK, _eodhd_symbols),
    ("eodhd", "user_success.json", eodhd.parse_user, lambda: _response("eodhd", "user_success.json"), Outcome.OK,
     _eodhd_user(_response("eodhd", "user_success.json"))),  # validate --probe's call (test_probe.py)
    ("finnhub", "candle_non_us_open.json",
     lambda r: finnhub.parse_daily(r, dt.date(2024, 6, 3), dt.date(2024, 6, 7), ZoneInfo("Asia/Kolkata")),
     lambda: _response("finnhub", "candle_non_us_open.json"), Outcome.OK, _finnhub_kolkata),
    ("finnhub", "candle_intraday_sydney.json", lambda r: finnhub.parse_intraday(r, zone=ZoneInfo("Australia/Sydney")),
     lambda: _response("finnhub", "candle_intraday_sydney.json"), Outcome.OK, _finnhub_sydney),
]


@pytest.mark.parametrize("vendor, row, parse, response, outcome, check",
                         [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in MODULE_CASES])
def test_non_daily_row_through_the_vendor_parser(vendor, row, parse, response, outcome, check):
    parsed = parse(response())
    assert parsed.outcome is outcome, parsed.message
    check(parsed)


# ------------------------------------------------------------------- PROVIDERS.md coverage


def providers_md_rows() -> set[tuple[str, str]]:
    """(vendor, file) of every table row under a `## <vendor>/` heading."""
    rows, vendor = set(), None
    for line in PROVIDERS_MD.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"##\s+(\w+)/", line)
        if heading:
            vendor = heading.group(1)
        elif line.startswith("## "):
            vendor = None
        cell = re.match(r"\|\s*`([^`]+)`", line)
        if vendor and cell:
            rows.add((vendor, cell.group(1)))
    return rows


def test_every_row_of_providers_md_has_a_case():
    if not PROVIDERS_MD.is_file():
        pytest.skip(f"{PROVIDERS_MD} not found beside the fixtures")
    rows = providers_md_rows()
    assert len(rows) >= 50 and {v for v, _ in rows} == set(VENDORS)
    covered = ({(c.vendor, c.row) for c in CLI_CASES} | {(c.vendor, c.row) for c in ENDPOINT_CASES}
               | {(c[0], c[1]) for c in MODULE_CASES})
    assert rows - covered == set()
    assert {(v, r) for v, r in covered if r != "PROTOCOL_ERROR"} - rows == set()  # no case names a missing row
    for vendor, name in rows:  # a row not described only has its file
        described = re.search(rf"`{re.escape(name)}` \*\(described only\)\*",
                              PROVIDERS_MD.read_text(encoding="utf-8"))
        assert described or (PROVIDER_FIXTURES / vendor / name).is_file(), (vendor, name)


# ------------------------------------------------------------------------ secret leaks


def _everything_left(data_dir: Path, texts: list[str]) -> tuple[str, bytes]:
    """All a run left behind: texts, every table's rows, file names and bytes (gunzipped, parquet read)."""
    texts = list(texts)
    blobs: list[bytes] = []
    with sqlite3.connect(data_dir / "stockpipe.db") as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"):
            texts += [repr(row) for row in conn.execute(f'SELECT * FROM "{table}"')]
    names, files = left_in(data_dir)
    return "\n".join(texts + names), b"\n".join(blobs + files)


def test_the_api_key_appears_nowhere(cli, server, monkeypatch, tmp_path, caplog):
    """For every vendor with a key: a successful run, a refused key, and an error page that
    echoes the key in its body (archived raw before it fails to parse); for Alpha Vantage also
    the quota text that names the key. Every answer echoes the query, key included, in a
    header. stdout, stderr, DEBUG logs (httpx and httpcore too), every table, every file name
    and every file's bytes under the data directory (gunzipped, parquet read) must not hold it."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "stockpipe", "stockpipe.providers.http"):
        caplog.set_level(logging.DEBUG, logger=name)
    said: list[str] = []
    keys = {vendor: f"K3Y-{vendor}-77f1" for vendor in KEYED}

    def echoing(reply: Reply) -> Callable[[Call], Reply]:
        return lambda call: dataclasses.replace(reply, headers={**reply.headers, "X-Echo-Query": call.raw_query})

    # OTHER is refused by every vendor in turn, in one warehouse: skipping it after 5 failures
    # in a row (max_consecutive_failures) would keep the last vendors from being asked
    monkeypatch.setenv("STOCKPIPE_MAX_CONSECUTIVE_FAILURES", "100")
    for vendor in KEYED:
        key, param = keys[vendor], module_for(vendor).KEY_PARAM
        monkeypatch.setenv(f"STOCKPIPE_{vendor.upper()}_API_KEY", key)
        monkeypatch.setenv(f"STOCKPIPE_{vendor.upper()}_CALLS_PER_SECOND", "1000")
        refusal = (body(STOOQ_APIKEY, content_type="text/plain") if vendor == "stooq"
                   else fixture(vendor, BAD_KEY[vendor][0], BAD_KEY[vendor][1]))
        daily = Daily(server, vendor, *WINDOW[vendor])
        daily.answer(SYMBOL[vendor], echoing(fixture(vendor, SUCCESS[vendor])))
        daily.answer(OTHER, echoing(refusal))
        page = f"<html><body><h1>Bad request</h1><p>token {key} rejected by the cache</p></body></html>"
        daily.answer("IBM", echoing(body(page, content_type="text/html")))
        runs = [(SYMBOL[vendor], ExitCode.OK), (OTHER, ExitCode.CONFIG), ("IBM", ExitCode.PARTIAL)]
        if vendor == AV:
            quota = fixture(AV, "quota_exhausted.json").data.replace(b"EXAMPLEKEY123456", key.encode())
            assert key.encode() in quota
            daily.answer("CVX", echoing(body(quota)))
            runs.append(("CVX", ExitCode.PARTIAL))
        for symbol, expected in runs:
            code, out, err = cli("run", "-s", symbol, "--provider", vendor, "--start", WINDOW[vendor][0],
                                 "--end", WINDOW[vendor][1], "--json", "--debug")
            said += [out, err]
            assert code == expected, err
            sent = daily.calls(symbol)
            assert sent and all(c.param(param) == key for c in sent)  # the key really went out

    records = [f"{r.name} {r.levelname} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records]
    assert any(r.name.startswith("httpx") for r in caplog.records)  # the URL-logging loggers were captured
    text, blob = _everything_left(tmp_path / "stockpipe-data", [*said, caplog.text, *records])
    assert b"Time Series (Daily)" in blob and "'AAPL'" in text  # the raw archive was gunzipped, the tables read
    for vendor, key in keys.items():
        assert key not in text, f"{vendor}'s key leaked into output, logs, the database or file names"
        assert key.encode() not in blob, f"{vendor}'s key leaked into a file under the data directory"
