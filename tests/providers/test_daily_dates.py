"""Issue 15, item 3: every vendor's daily date rule, one test each, and Finnhub's intraday
session dates. The rule is always "the date that is a session of the symbol's exchange":

* Finnhub daily `t`: midnight UTC (since mid-2021, Finnhub-API#449/#473) -> that UTC date;
  any other time (00:00 New York before; a non-US open, #387) -> the exchange's local date.
* Polygon daily `t` (ms): 00:00 New York -> the New York date (and midnight UTC like Finnhub's).
* Yahoo: the timestamp in meta.exchangeTimezoneName.
* Alpha Vantage, EODHD, Stooq: dates as written (exchange-local days).
* Tiingo: `YYYY-MM-DDT00:00:00.000Z` -> the date part, never converted to New York.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from zoneinfo import ZoneInfo

from stockpipe.providers import alphavantage, eodhd, finnhub, polygon, stooq, tiingo, yahoo
from stockpipe.providers.http.client import VendorClient
from stockpipe.providers.http_provider import HttpProvider

from helpers import dates, fixture_bytes, fixture_response, response

D = dt.date
JUNE = (D(2024, 6, 3), D(2024, 6, 7))
WEEK = ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]
NEW_YORK, KOLKATA, SYDNEY = ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Sydney")


def test_finnhub_daily_at_midnight_utc_is_that_utc_date_not_the_day_before():
    parsed = finnhub.parse_daily(fixture_response("finnhub", "candle_midnight_utc.json"), *JUNE)
    assert dates(parsed.bars) == WEEK  # in New York time each would be the evening before


def test_finnhub_daily_at_00_00_new_york_is_the_new_york_date():
    parsed = finnhub.parse_daily(fixture_response("finnhub", "candle_success.json"), *JUNE)
    assert dates(parsed.bars) == WEEK


def test_finnhub_daily_at_a_non_us_open_is_the_exchanges_date():
    body = fixture_response("finnhub", "candle_non_us_open.json")  # 03:45 UTC = 09:15 Kolkata
    assert dates(finnhub.parse_daily(body, *JUNE, zone=KOLKATA).bars) == WEEK
    assert dates(finnhub.parse_daily(body, *JUNE, zone=NEW_YORK).bars) == WEEK[:-1]  # in New York: a day early


def test_the_provider_dates_finnhub_bars_in_the_symbols_exchange_zone():
    provider = HttpProvider(finnhub.VENDOR, VendorClient("finnhub", "http://127.0.0.1:9"),
                            exchanges={".NS": "XBOM"})  # NSE's sessions: Mumbai's calendar
    assert provider.zone("RELIANCE.NS") == KOLKATA and provider.zone("BHP.AX") == SYDNEY
    assert provider.zone("AAPL") == NEW_YORK
    assert HttpProvider(eodhd.VENDOR, VendorClient("eodhd", "http://127.0.0.1:9")).zone("BHP.AX") is None


def test_finnhub_intraday_of_a_sydney_session_is_one_session_date():
    body = fixture_response("finnhub", "candle_intraday_sydney.json")
    sydney = finnhub.parse_intraday(body, zone=SYDNEY).intraday
    assert len(sydney) == 72 and set(dates(sydney, "session_date")) == {"2024-06-04"}
    by_new_york = finnhub.parse_intraday(body).intraday  # the old reading: split over two dates
    assert sorted(dates(by_new_york, "session_date")) == ["2024-06-03"] * 48 + ["2024-06-04"] * 24


def test_finnhub_intraday_windows_are_whole_days_of_the_exchange():
    start = dt.datetime(2024, 6, 3, 0, 0, tzinfo=dt.timezone.utc)
    makers = finnhub.VENDOR.intraday_requests("5m", start, start + dt.timedelta(days=3), start, SYDNEY)
    request = makers[0]("BHP.AX")
    lo = dt.datetime.fromtimestamp(int(request.params["from"]), SYDNEY)
    assert (lo.hour, lo.minute) == (0, 0) and lo.date() == D(2024, 6, 3)  # midnight in Sydney, not New York


def test_polygon_daily_at_00_00_new_york_is_the_new_york_date():
    parsed = polygon.parse_daily(fixture_response("polygon", "aggs_success.json"), *JUNE)
    assert dates(parsed.bars) == WEEK


def test_polygon_daily_at_midnight_utc_is_that_utc_date():
    body = json.loads(fixture_bytes("polygon", "aggs_success.json"))
    for row, day in zip(body["results"], WEEK):
        row["t"] = calendar.timegm(D.fromisoformat(day).timetuple()) * 1000
    assert dates(polygon.parse_daily(response(body), *JUNE).bars) == WEEK


def test_yahoo_daily_is_dated_in_the_exchanges_zone():
    stamp = int(dt.datetime(2024, 6, 9, 15, 0, tzinfo=dt.timezone.utc).timestamp())  # 2024-06-10 00:00 Tokyo
    body = {"chart": {"result": [{"meta": {"currency": "JPY", "exchangeTimezoneName": "Asia/Tokyo", "priceHint": 2},
                                  "timestamp": [stamp], "indicators": {"quote": [
                                      {"open": [2900.0], "high": [2950.0], "low": [2890.0], "close": [2930.0],
                                       "volume": [100]}], "adjclose": [{"adjclose": [2930.0]}]}}], "error": None}}
    assert dates(yahoo.parse_daily(response(body), D(2024, 6, 10), D(2024, 6, 10)).bars) == ["2024-06-10"]


def test_alphavantage_daily_keys_are_the_session_dates():
    parsed = alphavantage.parse_daily(fixture_response("alphavantage", "time_series_daily_success.json"), *JUNE)
    assert dates(parsed.bars) == WEEK


def test_eodhd_daily_dates_are_as_written():
    parsed = eodhd.parse_daily(fixture_response("eodhd", "eod_success.json"), D(2024, 5, 6), D(2024, 5, 10))
    assert dates(parsed.bars) == ["2024-05-06", "2024-05-07", "2024-05-08", "2024-05-09", "2024-05-10"]


def test_stooq_daily_dates_are_as_written():
    parsed = stooq.parse_daily(fixture_response("stooq", "success.csv", content_type="text/csv"), *JUNE)
    assert dates(parsed.bars) == WEEK


def test_tiingo_daily_takes_the_date_part_of_its_utc_midnight():
    parsed = tiingo.parse_daily(fixture_response("tiingo", "daily_prices_success.json"), D(2024, 5, 6), D(2024, 5, 10))
    assert dates(parsed.bars) == ["2024-05-06", "2024-05-07", "2024-05-08", "2024-05-09", "2024-05-10"]
