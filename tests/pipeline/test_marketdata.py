"""`stockpipe fetch --quotes` and `fetch --interval`: the real CLI against a fake vendor.

STOCKPIPE_<PROVIDER>_BASE_URL points the real HTTP providers at tests/fakevendor.py,
which replays the vendors' own bodies (tests/fixtures/providers) or chart answers built
here. The CLI runs on the real clock, so intraday bars are built a few days back from
today (Yahoo keeps 5-minute bars for 60 days).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from fakevendor import Reply, fixture
from stockpipe import models
from stockpipe.errors import ExitCode
from stockpipe.pipeline.marketdata import plan_window
from stockpipe.models import DATASETS
from stockpipe.storage.lake import Lake

from helpers import query as rows, vendor_base_urls

KEY = "SECRETKEY-7a2c4e"
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
ZERO_QUOTE = '{"c":0,"d":null,"dp":null,"h":0,"l":0,"o":0,"pc":0,"t":0}'  # finnhub's unknown symbol


@pytest.fixture
def vendor(fake_vendor):
    return fake_vendor


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "stockpipe-data"


@pytest.fixture
def cli(make_cli, vendor):
    return make_cli(**vendor_base_urls(vendor.url), STOCKPIPE_FINNHUB_API_KEY=KEY, STOCKPIPE_EODHD_API_KEY=KEY)


def lake(data_dir: Path, name: str) -> pd.DataFrame:
    return Lake(data_dir / "lake").read_frame(DATASETS[name])


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'stockpipe.db'}"


# -------------------------------------------------------------------------- quotes


def test_finnhub_quote_is_fetched_archived_loaded_and_a_second_fetch_writes_nothing(cli, vendor, data_dir,
                                                                                    database_url):
    vendor.require_key(KEY, param="token")
    vendor.route("/api/v1/quote", fixture("finnhub", "quote_success.json"))
    url = ("--database-url", database_url)

    code, out, err = cli("fetch", "--quotes", "-s", "AAPL", "--provider", "finnhub", *url, "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    assert doc["counts"]["rows_fetched"] == doc["counts"]["rows_written"] == 1
    assert vendor.calls("/api/v1/quote")[0].param("symbol") == "AAPL"
    quote = lake(data_dir, "quotes").iloc[0]
    assert quote["ts"] == pd.Timestamp("2024-06-07 20:00", tz="UTC")  # t = 16:00 New York, stored in UTC
    assert (quote["price"], quote["open"], quote["high"], quote["low"], quote["prev_close"]) == (
        196.89, 194.65, 196.94, 194.14, 194.48)
    assert (quote["change"], quote["change_pct"], quote["provider"]) == (2.41, 1.2392, "finnhub")
    assert pd.isna(quote["volume"])  # finnhub's quote has no volume: null, never 0
    archived = list((data_dir / "raw" / "finnhub").rglob("AAPL.quotes.*.json.gz"))
    assert len(archived) == 1 and json.loads(gzip.decompress(archived[0].read_bytes()))["c"] == 196.89

    code, out, err = cli("load", *url, "--json")
    assert code == ExitCode.OK, err
    assert rows(database_url, "SELECT symbol, price, prev_close, provider FROM quotes") == [
        ("AAPL", 196.89, 194.48, "finnhub")]

    code, out, err = cli("fetch", "--quotes", "-s", "AAPL", "--provider", "finnhub", *url, "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out)["counts"]["rows_written"] == 0
    code, out, _ = cli("load", *url, "--json")
    assert json.loads(out)["counts"]["quotes_written"] == 0
    assert rows(database_url, "SELECT COUNT(*) FROM quotes") == [(1,)]


def test_eodhd_real_time_quote(cli, vendor, data_dir):
    vendor.route("/api/real-time/AAPL.US", fixture("eodhd", "real_time_success.json"))
    code, _, err = cli("fetch", "--quotes", "-s", "AAPL", "--provider", "eodhd")
    assert code == ExitCode.OK, err
    assert vendor.calls("/api/real-time/AAPL.US")[0].param("api_token") == KEY
    quote = lake(data_dir, "quotes").iloc[0]
    assert quote["ts"] == pd.Timestamp(1715371200, unit="s", tz="UTC")
    assert (quote["price"], quote["open"], quote["prev_close"], quote["change_pct"], quote["volume"]) == (
        183.05, 184.9, 184.57, -0.8235, 50759500)


def test_yahoo_quote_is_read_from_the_chart_meta(cli, vendor, data_dir):
    vendor.route("/v8/finance/chart/AAPL", fixture("yahoo", "success.json"))
    code, _, err = cli("fetch", "--quotes", "-s", "AAPL")  # yahoo is the default provider
    assert code == ExitCode.OK, err
    sent = vendor.calls("/v8/finance/chart/AAPL")[0]
    assert (sent.param("range"), sent.param("interval")) == ("1d", "1d")
    quote = lake(data_dir, "quotes").iloc[0]
    assert quote["ts"] == pd.Timestamp(1715371201, unit="s", tz="UTC")
    assert (quote["price"], quote["high"], quote["low"], quote["prev_close"], quote["volume"]) == (
        183.05, 185.09, 182.13, 183.38, 50759500)
    assert quote["change"] == pytest.approx(183.05 - 183.38)


def test_finnhub_all_zero_quote_fails_the_symbol_and_stores_no_zero_price(cli, vendor, data_dir):
    vendor.route("/api/v1/quote", lambda call: fixture("finnhub", "quote_success.json")
                 if call.param("symbol") == "AAPL" else Reply(200, ZERO_QUOTE))
    code, out, err = cli("fetch", "--quotes", "-s", "AAPL", "-s", "NOPE", "--provider", "finnhub", "--json")
    assert code == ExitCode.PARTIAL
    doc = json.loads(out)
    assert {s["symbol"]: s["status"] for s in doc["symbols"]} == {"AAPL": "ok", "NOPE": "failed"}
    assert "NOPE" in err and "all zeros" in err
    stored = lake(data_dir, "quotes")
    assert list(stored["symbol"]) == ["AAPL"] and (stored["price"] > 0).all()

    code, out, err = cli("fetch", "--quotes", "-s", "NOPE", "--provider", "finnhub")
    assert code == ExitCode.BAD_INPUT  # the only symbol failed, for one cause
    assert rows(sqlite_url(data_dir), "SELECT consecutive_failures FROM symbol_state "
                                      "WHERE symbol = 'NOPE' AND dataset = 'quotes'") == [(2,)]


def test_bad_key_stops_the_provider_and_exits_4(cli, vendor):
    vendor.route("/api/v1/quote", fixture("finnhub", "bad_key.json", status=401, latency=0.05))
    symbols = [arg for i in range(30) for arg in ("-s", f"S{i:02d}")]
    code, out, err = cli("fetch", "--quotes", *symbols, "--provider", "finnhub", "--json")
    assert code == ExitCode.CONFIG and "STOCKPIPE_FINNHUB_API_KEY" in err
    assert 1 <= len(vendor.calls()) <= 8
    statuses = [s["status"] for s in json.loads(out)["symbols"]]
    assert statuses.count("skipped") == 30 - len(vendor.calls())
    assert KEY not in out + err


def test_quotes_then_transform_builds_quotes_daily(cli, vendor, data_dir):
    vendor.route("/api/v1/quote", fixture("finnhub", "quote_success.json"))
    assert cli("fetch", "--quotes", "-s", "AAPL", "--provider", "finnhub")[0] == ExitCode.OK
    code, _, err = cli("transform")
    assert code == ExitCode.OK, err
    daily = lake(data_dir, "quotes_daily")
    assert list(daily["date"]) == [pd.Timestamp("2024-06-07")]  # the New York session of 20:00 UTC
    assert (daily["close"].iloc[0], daily["prev_close"].iloc[0], daily["quotes"].iloc[0]) == (196.89, 194.48, 1)
    assert cli("load")[0] == ExitCode.OK
    assert rows(sqlite_url(data_dir), "SELECT symbol, close FROM quotes_daily") == [("AAPL", 196.89)]


@pytest.mark.parametrize("provider", ["demo", "csv", "polygon"])
@pytest.mark.parametrize("mode", [("--quotes",), ("--interval", "5m")])
def test_a_provider_without_the_endpoint_is_a_config_error(cli, vendor, provider, mode):
    if provider == "polygon" and mode[0] == "--interval":
        provider = "eodhd"  # polygon has intraday bars; eodhd has none in stockpipe
    code, _, err = cli("fetch", *mode, "-s", "AAPL", "--provider", provider)
    assert code == ExitCode.CONFIG
    kind = "quotes" if mode[0] == "--quotes" else "intraday"
    assert f"provider {provider} has no {kind} endpoint: use yahoo, " in err
    assert err.count("\n") == 1 and vendor.calls() == []


@pytest.mark.parametrize("args", [("--quotes", "--interval", "5m"), ("--interval", "2m"),
                                  ("--quotes", "--start", "2024-05-06")])
def test_usage_errors_are_one_line_and_exit_2(cli, vendor, args):
    code, _, err = cli("fetch", *args, "-s", "AAPL")
    assert code == ExitCode.USAGE and err.count("\n") == 1, err
    assert vendor.calls() == []


# ------------------------------------------------------------------------ intraday


def recent_weekdays(count: int, back: int = 4) -> list[dt.date]:
    """`count` consecutive weekdays ending at least `back` days before today (UTC)."""
    day = dt.datetime.now(UTC).date() - dt.timedelta(days=back)
    days: list[dt.date] = []
    while len(days) < count:
        if day.weekday() < 5:
            days.insert(0, day)
        day -= dt.timedelta(days=1)
    return days


def chart(bars: list[tuple[dt.datetime, float]], symbol: str = "AAPL", events: dict | None = None,
          volumes: list[int] | None = None) -> str:
    """A Yahoo chart answer of 5-minute bars (local New York times -> epoch seconds)."""
    stamps = [int(local.timestamp()) for local, _ in bars]
    closes = [price for _, price in bars]
    meta = {"currency": "USD", "symbol": symbol, "exchangeTimezoneName": "America/New_York",
            "gmtoffset": -14400, "priceHint": 2, "dataGranularity": "5m"}
    quote = {"open": [p - 0.1 for p in closes], "high": [p + 0.2 for p in closes],
             "low": [p - 0.3 for p in closes], "close": closes, "volume": volumes or [1000 + 2 * i for i in range(len(bars))]}
    result = {"meta": meta, "timestamp": stamps, "indicators": {"quote": [quote]}}
    if events:
        result["events"] = events
    return json.dumps({"chart": {"result": [result], "error": None}})


def five_minute_bars(first: dt.date, second: dt.date) -> list[tuple[dt.datetime, float]]:
    """The last bars of one session (and its after-hours), then the first of the next."""
    times = [(first, 15, 50), (first, 15, 55),
             (first, 19, 55),  # after hours: 23:55 UTC (EDT) or 00:55 UTC the next day (EST), still `first`'s session
             (second, 9, 30), (second, 9, 35)]
    local = [dt.datetime.combine(day, dt.time(hour, minute), NEW_YORK) for day, hour, minute in times]
    return list(zip(local, [190.0, 190.5, 190.25, 191.0, 191.5]))


def test_yahoo_5m_bars_across_a_session_boundary(cli, vendor, data_dir, database_url):
    first, second = recent_weekdays(2)
    bars = five_minute_bars(first, second)
    vendor.route("/v8/finance/chart/AAPL", Reply(200, chart(bars)))
    window = ("--start", first.isoformat(), "--end", second.isoformat(), "--database-url", database_url)

    code, out, err = cli("fetch", "--interval", "5m", "-s", "AAPL", *window, "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out)["counts"]["rows_written"] == 5
    sent = vendor.calls("/v8/finance/chart/AAPL")
    assert len(sent) == 1 and sent[0].param("interval") == "5m"
    assert int(sent[0].param("period1")) == int(dt.datetime.combine(first - dt.timedelta(days=1), dt.time(),
                                                                    UTC).timestamp())
    stored = lake(data_dir, "prices_intraday")
    assert list(stored["ts"]) == [pd.Timestamp(local.astimezone(UTC)) for local, _ in bars]
    assert list(stored["session_date"]) == [pd.Timestamp(first)] * 3 + [pd.Timestamp(second)] * 2
    assert set(stored["interval"]) == {"5m"} and list(stored["close"]) == [p for _, p in bars]
    assert list(stored["volume"]) == [1000, 1002, 1004, 1006, 1008]
    assert len(list((data_dir / "raw" / "yahoo").rglob("AAPL.intraday.*.json.gz"))) == 1

    code, out, err = cli("fetch", "--interval", "5m", "-s", "AAPL", *window, "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out)["counts"]["rows_written"] == 0

    code, out, err = cli("load", "--database-url", database_url, "--json")
    assert code == ExitCode.OK, err
    if "prices_intraday" in {d.name for d in models.LOAD_ORDER}:  # load takes the dataset once it is listed
        assert rows(database_url, "SELECT COUNT(*), MIN(interval) FROM prices_intraday") == [(5, "5m")]
        assert rows(database_url, "SELECT COUNT(DISTINCT session_date) FROM prices_intraday") == [(2,)]


def test_yahoo_intraday_is_stored_as_traded_across_a_split(cli, vendor, data_dir):
    """Yahoo split-adjusts intraday bars as it does daily ones, and each answer reports only
    the splits inside its own window. 1-minute bars of 8 sessions come in two windows with a
    2:1 split in the newer one: every session before the split, in both windows, is stored
    as traded (prices x 2, volume / 2), like prices_daily; the split's session and later
    ones as sent."""
    days = recent_weekdays(8, back=2)
    split = days[-2]
    bars = [(dt.datetime.combine(day, dt.time(10, 0), NEW_YORK), 100.0 + i) for i, day in enumerate(days)]
    split_at = int(dt.datetime.combine(split, dt.time(9, 30), NEW_YORK).timestamp())

    def window(call) -> Reply:  # the bars and the split inside [period1, period2), as Yahoo answers
        lo, hi = int(call.param("period1")), int(call.param("period2"))
        inside = [(local, price) for local, price in bars if lo <= local.timestamp() < hi]
        events = {"splits": {str(split_at): {"date": split_at, "numerator": 2, "denominator": 1,
                                             "splitRatio": "2:1"}}} if lo <= split_at < hi else None
        return Reply(200, chart(inside, events=events, volumes=[int(10 * p) for _, p in inside]))

    vendor.route("/v8/finance/chart/AAPL", window)
    code, _, err = cli("fetch", "--interval", "1m", "-s", "AAPL", "--start", days[0].isoformat(),
                       "--end", days[-1].isoformat())
    assert code == ExitCode.OK, err
    sent = vendor.calls("/v8/finance/chart/AAPL")
    assert len(sent) == 2 and {c.param("events") for c in sent} == {"div,splits"}
    assert int(sent[0].param("period2")) <= split_at < int(sent[1].param("period2"))  # the split: newer window
    stored = lake(data_dir, "prices_intraday").sort_values("ts")
    before = [day < split for day in days]
    assert list(stored["close"]) == [(100.0 + i) * (2 if b else 1) for i, b in enumerate(before)]
    assert list(stored["open"]) == [pytest.approx((99.9 + i) * (2 if b else 1)) for i, b in enumerate(before)]
    assert list(stored["volume"]) == [int(10 * (100 + i)) // (2 if b else 1) for i, b in enumerate(before)]
    assert list(stored["session_date"]) == [pd.Timestamp(day) for day in days]


def test_session_dates_outside_start_end_are_not_kept(cli, vendor, data_dir):
    first, second = recent_weekdays(2)
    vendor.route("/v8/finance/chart/AAPL", Reply(200, chart(five_minute_bars(first, second))))
    code, _, err = cli("fetch", "--interval", "5m", "-s", "AAPL", "--start", second.isoformat(),
                       "--end", second.isoformat())
    assert code == ExitCode.OK, err
    assert list(lake(data_dir, "prices_intraday")["session_date"]) == [pd.Timestamp(second)] * 2


def test_a_start_older_than_yahoo_keeps_is_clipped_and_said(cli, vendor, data_dir):
    first, second = recent_weekdays(2)
    vendor.route("/v8/finance/chart/AAPL", Reply(200, chart(five_minute_bars(first, second))))
    start = dt.datetime.now(UTC).date() - dt.timedelta(days=45)
    code, out, err = cli("fetch", "--interval", "1m", "-s", "AAPL", "--start", start.isoformat(), "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    assert "yahoo keeps 1m bars for 30 days: clipped" in doc["stages"][0]["message"]
    assert "clipped" in doc["symbols"][0]["message"] and "clipped" in err
    sent = vendor.calls("/v8/finance/chart/AAPL")
    assert len(sent) == 5  # 29 days of 1-minute bars, at most 7 days a request
    oldest = dt.datetime.fromtimestamp(int(sent[0].param("period1")), UTC)
    assert dt.datetime.now(UTC) - oldest < dt.timedelta(days=30)


def test_a_window_entirely_older_than_retention_is_a_usage_error(cli, vendor):
    code, _, err = cli("fetch", "--interval", "5m", "-s", "AAPL", "--start", "2020-01-06", "--end", "2020-01-10")
    assert code == ExitCode.USAGE and "yahoo keeps 5m bars for 60 days" in err
    assert vendor.calls() == []


def test_finnhub_intraday_asks_whole_new_york_days(cli, vendor, data_dir):
    first, second = recent_weekdays(2)
    stamps = [int(local.timestamp()) for local, _ in five_minute_bars(first, second)]
    body = {"s": "ok", "t": stamps, "o": [1.0] * 5, "h": [2.0] * 5, "l": [0.5] * 5, "c": [1.5] * 5, "v": [10] * 5}
    vendor.route("/api/v1/stock/candle", Reply(200, json.dumps(body)))
    code, _, err = cli("fetch", "--interval", "5m", "-s", "AAPL", "--provider", "finnhub",
                       "--start", first.isoformat(), "--end", second.isoformat())
    assert code == ExitCode.OK, err
    sent = vendor.calls("/api/v1/stock/candle")[0]
    assert sent.param("resolution") == "5"
    assert dt.datetime.fromtimestamp(int(sent.param("from")), NEW_YORK).time() == dt.time()
    stored = lake(data_dir, "prices_intraday")
    assert list(stored["session_date"]) == [pd.Timestamp(first)] * 3 + [pd.Timestamp(second)] * 2


def test_alphavantage_intraday_is_one_call_for_its_latest_bars(cli, vendor, data_dir, monkeypatch):
    monkeypatch.setenv("STOCKPIPE_ALPHAVANTAGE_API_KEY", KEY)
    vendor.route("/query", fixture("alphavantage", "time_series_intraday_success.json"))
    code, _, err = cli("fetch", "--interval", "5m", "-s", "MSFT", "--provider", "alphavantage")
    assert code == ExitCode.OK, err
    sent = vendor.calls("/query")
    assert len(sent) == 1
    assert (sent[0].param("function"), sent[0].param("interval"), sent[0].param("outputsize"),
            sent[0].param("adjusted")) == ("TIME_SERIES_INTRADAY", "5min", "full", "false")
    stored = lake(data_dir, "prices_intraday")
    assert len(stored) == 4 and set(stored["session_date"]) == {pd.Timestamp("2024-06-07")}
    assert stored["ts"].iloc[-1] == pd.Timestamp("2024-06-07 23:55", tz="UTC")  # 19:55 US/Eastern (EDT)


# ---------------------------------------------------------------------- planning


def test_plan_window_pads_days_and_clips_to_retention():
    now = dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    default = plan_window(now, dt.timedelta(days=60), None, None)
    assert (default.lo, default.hi, default.clipped) == (now - dt.timedelta(days=59), now, False)
    narrow = plan_window(now, dt.timedelta(days=60), dt.date(2026, 11, 16), dt.date(2026, 11, 18))
    assert (narrow.lo, narrow.hi, narrow.clipped) == (
        dt.datetime(2026, 11, 15, tzinfo=UTC), dt.datetime(2026, 11, 20, tzinfo=UTC), False)
    old = plan_window(now, dt.timedelta(days=30), dt.date(2026, 9, 1), None)
    assert old.clipped and old.lo == now - dt.timedelta(days=29)
