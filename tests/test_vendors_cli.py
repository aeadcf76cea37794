"""The real CLI against a fake vendor server speaking each vendor's wire format.

STOCKPIPE_<PROVIDER>_BASE_URL points the real HTTP providers at tests/fakevendor.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fakevendor import Reply, fixture
from stockpipe.errors import ExitCode

from helpers import db, vendor_base_urls

KEY = "SECRETKEY-5d1e9f"
WINDOW = ("--start", "2024-05-06", "--end", "2024-05-10")


@pytest.fixture
def vendor(fake_vendor):
    return fake_vendor


@pytest.fixture
def cli(make_cli, vendor):
    return make_cli(**vendor_base_urls(vendor.url), STOCKPIPE_EODHD_API_KEY=KEY)


def everything_written(tmp_path: Path, out: str, err: str, caplog) -> str:
    """All a run left behind as text: output, logs, the database, file names and payloads."""
    texts = [out, err, caplog.text]
    with sqlite3.connect(tmp_path / "stockpipe-data" / "stockpipe.db") as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            texts += [repr(row) for row in conn.execute(f'SELECT * FROM "{table}"')]
    for path in (tmp_path / "stockpipe-data").rglob("*"):
        texts.append(str(path))
    return "\n".join(texts)


def test_yahoo_is_the_default_and_needs_no_key(cli, vendor, tmp_path):
    vendor.route("/v8/finance/chart/AAPL", fixture("yahoo", "success.json"))
    code, out, err = cli("run", "--symbol", "AAPL", *WINDOW, "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    assert doc["counts"]["rows_fetched"] == 5
    assert db(tmp_path, "SELECT COUNT(*), MIN(date), MAX(date), MIN(provider) FROM prices_daily") == [
        (5, "2024-05-06", "2024-05-10", "yahoo")]
    assert db(tmp_path, "SELECT date, kind, value FROM corporate_actions") == [("2024-05-10", "dividend", 0.25)]
    sent = vendor.calls("/v8/finance/chart/AAPL")[0]
    assert "Mozilla" in sent.headers.get("user-agent", "")  # a browser-like User-Agent, or Yahoo answers 429


def test_eodhd_daily_bars_with_the_key_sent_and_never_stored(cli, vendor, tmp_path, caplog):
    vendor.route("/api/eod/AAPL.US", fixture("eodhd", "eod_success.json"))
    code, out, err = cli("run", "--symbol", "AAPL", "--provider", "eodhd", *WINDOW, "--json")
    assert code == ExitCode.OK, err
    assert vendor.calls("/api/eod/AAPL.US")[0].param("api_token") == KEY
    assert db(tmp_path, "SELECT COUNT(*), MIN(provider) FROM prices_daily") == [(5, "eodhd")]
    assert db(tmp_path, "SELECT adj_close FROM prices_daily WHERE date = '2024-05-06'") == [(178.9213,)]
    assert KEY not in everything_written(tmp_path, out, err, caplog)


def test_bad_key_exits_4_and_stops_the_provider(cli, vendor, tmp_path, caplog):
    vendor.route("/api/eod/*", fixture("eodhd", "bad_key.txt", status=401, latency=0.05))
    symbols = [arg for i in range(40) for arg in ("-s", f"S{i:02d}")]
    code, out, err = cli("fetch", *symbols, "--provider", "eodhd", *WINDOW, "--json")
    assert code == ExitCode.CONFIG
    assert "STOCKPIPE_EODHD_API_KEY" in err
    # The first refusal stops every call not yet started; at most the concurrent ones were in flight.
    assert 1 <= len(vendor.calls()) <= 8
    statuses = [s["status"] for s in json.loads(out)["symbols"]]
    assert statuses.count("skipped") == 40 - len(vendor.calls()) and statuses.count("failed") == len(vendor.calls())
    assert KEY not in everything_written(tmp_path, out, err, caplog)


def test_quota_exhausted_defers_the_rest_with_exit_3(cli, vendor, tmp_path, monkeypatch):
    monkeypatch.setenv("STOCKPIPE_EODHD_CALLS_PER_SECOND", "1")  # one call at a time: a deterministic order
    vendor.route("/api/eod/AAPL.US", fixture("eodhd", "eod_success.json"))
    vendor.route("/api/eod/MSFT.US", fixture("eodhd", "quota_exhausted.txt", status=402))
    code, out, err = cli("fetch", "-s", "AAPL", "-s", "MSFT", "-s", "IBM", "--provider", "eodhd", *WINDOW, "--json")
    doc = json.loads(out)
    assert code == ExitCode.PARTIAL == doc["exit_code"]
    assert {s["symbol"]: s["status"] for s in doc["symbols"]} == {"AAPL": "ok", "MSFT": "failed", "IBM": "skipped"}
    assert vendor.calls("/api/eod/IBM.US") == []
    assert "quota" in err
    events = db(tmp_path, "SELECT symbol, status FROM run_events ORDER BY symbol")
    assert events == [("AAPL", "ok"), ("IBM", "skipped"), ("MSFT", "failed")]


def test_unknown_symbol_fails_that_symbol_only(cli, vendor):
    vendor.route("/api/eod/AAPL.US", fixture("eodhd", "eod_success.json"))
    vendor.route("/api/eod/NOPE.US", fixture("eodhd", "unknown_symbol.txt", status=404))
    code, out, _ = cli("fetch", "-s", "AAPL", "-s", "NOPE", "--provider", "eodhd", *WINDOW, "--json")
    assert code == ExitCode.PARTIAL
    assert {s["symbol"]: s["status"] for s in json.loads(out)["symbols"]} == {"AAPL": "ok", "NOPE": "failed"}


def test_rate_limited_then_ok_is_retried(cli, vendor, tmp_path):
    vendor.route("/api/eod/AAPL.US", Reply(429, "Too Many Requests", headers={"Retry-After": "0"}),
                 fixture("eodhd", "eod_success.json"))
    code, _, err = cli("fetch", "-s", "AAPL", "--provider", "eodhd", *WINDOW)
    assert code == ExitCode.OK, err
    assert len(vendor.calls("/api/eod/AAPL.US")) == 2


def test_missing_key_is_a_config_error_before_any_call(cli, vendor, monkeypatch):
    monkeypatch.delenv("STOCKPIPE_EODHD_API_KEY")
    code, _, err = cli("fetch", "-s", "AAPL", "--provider", "eodhd", *WINDOW)
    assert code == ExitCode.CONFIG and "STOCKPIPE_EODHD_API_KEY" in err
    assert vendor.calls() == []


def test_failover_to_the_next_provider_when_the_first_refuses(cli, vendor, tmp_path):
    vendor.route("/api/eod/*", fixture("eodhd", "bad_key.txt", status=401))
    vendor.route("/v8/finance/chart/AAPL", fixture("yahoo", "success.json"))
    code, out, err = cli("fetch", "-s", "AAPL", "--provider", "eodhd,yahoo", *WINDOW, "--json")
    assert code == ExitCode.OK, err
    assert [(s["symbol"], s["status"], s["provider"]) for s in json.loads(out)["symbols"]] == [("AAPL", "ok", "yahoo")]
    assert db(tmp_path, "SELECT provider, status FROM run_events ORDER BY id") == [("eodhd", "failed"), ("yahoo", "ok")]
    assert db(tmp_path, "SELECT provider, currency FROM symbol_state WHERE dataset = 'prices_daily'") == [("yahoo", "USD")]


def test_failover_order_from_the_universe(cli, vendor, tmp_path):
    (tmp_path / "stockpipe.toml").write_text('[universe]\nsymbols = ["AAPL"]\nproviders = ["eodhd", "yahoo"]\n')
    vendor.route("/api/eod/*", fixture("eodhd", "quota_exhausted.txt", status=402))
    vendor.route("/v8/finance/chart/AAPL", fixture("yahoo", "success.json"))
    code, out, err = cli("run", "--all", *WINDOW, "--json")
    assert code == ExitCode.OK, err
    assert db(tmp_path, "SELECT MIN(provider), COUNT(*) FROM prices_daily") == [("yahoo", 5)]
