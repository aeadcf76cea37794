"""Issue 15, item 4: a vendor that is down (connection refused) or hangs (accepts, never
answers) costs seconds, not hours. The client stops calling a provider after
`unreachable_after` attempts in a row without an answer, across symbols: "<provider>
unreachable at <host>: ...", exit 5 (unavailable), the rest deferred or failed over; `run`
probes the servers first and stops early; `validate --probe` makes one cheap call per
provider (latency, key accepted, quota left). Small timeouts come from the settings."""

from __future__ import annotations

import json
import socket
import time

import pytest

from fakevendor import Reply, fixture
from stockpipe.errors import ExitCode, NotAsked, ProviderUnreachableError
from stockpipe.providers.http.breaker import Breaker, UnreachableNotAskedError
from stockpipe.providers.http.client import VendorClient
from stockpipe.providers.wire import Request

from helpers import db, vendor_base_urls

WINDOW = ("--start", "2024-05-06", "--end", "2024-05-10")
SYMBOLS = [arg for i in range(8) for arg in ("-s", f"S{i}")]
FAST = {"STOCKPIPE_HTTP_TIMEOUT_CONNECT": "0.5", "STOCKPIPE_HTTP_TIMEOUT_READ": "0.3",
        "STOCKPIPE_UNREACHABLE_AFTER": "3"}


@pytest.fixture
def closed_port() -> int:
    """A port nobody listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def hanging_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def events(tmp_path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for status, symbol in db(tmp_path, "SELECT status, symbol FROM run_events WHERE stage = 'fetch'"):
        found.setdefault(status, []).append(symbol)
    return found


def test_run_stops_before_fetching_when_the_provider_refuses_connections(make_cli, closed_port, tmp_path):
    cli = make_cli(STOCKPIPE_YAHOO_BASE_URL=f"http://127.0.0.1:{closed_port}", **FAST)
    started = time.monotonic()
    code, out, err = cli("run", *SYMBOLS, *WINDOW, "--json")
    assert code == ExitCode.UNAVAILABLE, err
    assert time.monotonic() - started < 5
    assert f"yahoo unreachable at 127.0.0.1:{closed_port}" in err
    assert json.loads(out)["checks"][1]["name"] == "reachable yahoo"
    assert db(tmp_path, "SELECT COUNT(*) FROM run_events") == [(0,)]  # no fetch at all


def test_fetch_stops_calling_a_provider_that_refuses_connections(make_cli, closed_port, tmp_path):
    """The issue's replay: 4 symbols took 38.5 s (five attempts each) and exited 3 'partial'."""
    cli = make_cli(STOCKPIPE_YAHOO_BASE_URL=f"http://127.0.0.1:{closed_port}", **FAST)
    started = time.monotonic()
    code, out, err = cli("fetch", *SYMBOLS, *WINDOW, "--json")
    assert code == ExitCode.UNAVAILABLE, err
    assert time.monotonic() - started < 10
    assert f"yahoo unreachable at 127.0.0.1:{closed_port}: ConnectError" in err
    seen = events(tmp_path)
    assert len(seen.get("failed", [])) <= 2 and len(seen["skipped"]) >= 6  # the rest deferred to the next run
    assert json.loads(out)["counts"]["deferred"] == len(seen["skipped"])


def test_run_against_a_vendor_that_accepts_and_never_answers_ends_in_seconds(make_cli, hanging_port, tmp_path):
    """The issue's replay: 8 symbols took 337 s (5 attempts x ~30 s read timeout)."""
    cli = make_cli(STOCKPIPE_YAHOO_BASE_URL=f"http://127.0.0.1:{hanging_port}", **FAST)
    started = time.monotonic()
    code, out, err = cli("run", *SYMBOLS, *WINDOW, "--json")
    elapsed = time.monotonic() - started
    assert code == ExitCode.UNAVAILABLE, err
    assert elapsed < 10, elapsed
    assert f"yahoo unreachable at 127.0.0.1:{hanging_port}: ReadTimeout" in err
    assert len(events(tmp_path)["skipped"]) >= 6


def test_an_unreachable_first_provider_fails_over(make_cli, fake_vendor, closed_port, tmp_path):
    fake_vendor.route("/v8/finance/chart/*", fixture("yahoo", "success.json"))
    cli = make_cli(**{**vendor_base_urls(fake_vendor.url), "STOCKPIPE_EODHD_BASE_URL": f"http://127.0.0.1:{closed_port}"},
                   STOCKPIPE_EODHD_API_KEY="KEY-unreachable-1", **FAST)
    code, out, err = cli("run", "-s", "AAPL", "-s", "MSFT", *WINDOW, "--provider", "eodhd,yahoo", "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    validate = doc["stages"][0]
    assert validate["exit_code"] == ExitCode.OK
    assert any(c["name"] == "reachable eodhd" and c["severity"] == "warn" for c in doc["checks"])
    fetch = next(s for s in doc["stages"] if s["stage"] == "fetch")
    assert fetch["counts"]["warnings"] == 1 and fetch["counts"]["failed_over"] == 2
    assert "eodhd unreachable at" in fetch["message"] and "failed over to yahoo" in fetch["message"]
    assert db(tmp_path, "SELECT provider FROM pipeline_runs WHERE command = 'run'") == [("yahoo",)]


# --- the breaker and the calls it counts ---------------------------------------------------------


def test_the_breaker_opens_after_the_limit_and_any_answer_resets_it():
    breaker = Breaker("yahoo", "127.0.0.1:9", limit=3)
    assert breaker.failed("refused") is None and breaker.failed("refused") is None
    breaker.answered()  # a 5xx is an answer too: the server is up
    assert breaker.failed("refused") is None and breaker.failed("refused") is None
    error = breaker.failed("refused")
    assert isinstance(error, ProviderUnreachableError) and error.exit_code == ExitCode.UNAVAILABLE
    assert str(error).startswith("yahoo unreachable at 127.0.0.1:9: refused (3 attempts in a row")
    with pytest.raises(UnreachableNotAskedError) as refused:
        breaker.check()
    assert isinstance(refused.value, NotAsked)  # later symbols are deferred, not failed


def test_an_open_breaker_sends_nothing(closed_port, fake_vendor):
    quote = Request("/api/v1/quote", {"symbol": "AAPL"}, endpoint="quote")
    with VendorClient("finnhub", f"http://127.0.0.1:{closed_port}", unreachable_after=2,
                      sleep=lambda s: None) as down:
        with pytest.raises(ProviderUnreachableError) as caught:
            down.call(quote)
        assert caught.value.api_calls == 2  # the attempts that were made count as calls
        with pytest.raises(UnreachableNotAskedError):
            down.call(quote)
    fake_vendor.route("/api/v1/quote", Reply(503, "down for maintenance"), fixture("finnhub", "quote_success.json"))
    with VendorClient("finnhub", fake_vendor.url, unreachable_after=1, sleep=lambda s: None) as up:
        assert up.call(quote).calls == 2  # a 503 is an answer: retried, never unreachable


def test_failed_calls_count_in_api_calls(make_cli, fake_vendor, tmp_path):
    """The quota ledger counts every attempt; run_events and pipeline_runs now do too."""
    fake_vendor.route("/api/eod/AAPL.US", Reply(500, "Internal Server Error", headers={"Retry-After": "0"},
                                                content_type="text/plain"))
    cli = make_cli(**vendor_base_urls(fake_vendor.url), STOCKPIPE_EODHD_API_KEY="KEY-calls-1")
    code, out, err = cli("fetch", "-s", "AAPL", *WINDOW, "--provider", "eodhd", "--json")
    assert code == ExitCode.PARTIAL, err
    assert len(fake_vendor.calls("/api/eod/AAPL.US")) == 5
    assert json.loads(out)["counts"]["api_calls"] == 5
    assert db(tmp_path, "SELECT api_calls FROM run_events WHERE symbol = 'AAPL'") == [(5,)]
    assert db(tmp_path, "SELECT api_calls FROM pipeline_runs") == [(5,)]


# --- validate --probe ----------------------------------------------------------------------------


@pytest.fixture
def probe_cli(make_cli, fake_vendor):
    cli = make_cli(**vendor_base_urls(fake_vendor.url), STOCKPIPE_EODHD_API_KEY="KEY-probe-1",
                   STOCKPIPE_FINNHUB_API_KEY="KEY-probe-2", **FAST)
    assert cli("db", "upgrade")[0] == ExitCode.OK
    return cli


def probe_of(out: str, provider: str) -> dict:
    return next(c for c in json.loads(out)["checks"] if c["name"] == f"probe {provider}")


def test_probe_reports_latency_key_and_quota(probe_cli, fake_vendor):
    fake_vendor.route("/api/user", fixture("eodhd", "user_success.json"))
    code, out, err = probe_cli("validate", "--probe", "--provider", "eodhd", "-s", "AAPL", "--json")
    assert code == ExitCode.OK, err
    check = probe_of(out, "eodhd")
    assert check["ok"] and "key accepted" in check["detail"] and check["observed"] is not None
    assert "98,843 of 100,000 calls left today" in check["detail"]
    assert fake_vendor.calls("/api/user")[0].param("api_token") == "KEY-probe-1"
    assert fake_vendor.calls("/api/eod/*") == []  # the account spends no call of the quota


def test_probe_of_a_keyless_vendor_and_of_one_that_publishes_its_window(probe_cli, fake_vendor):
    fake_vendor.route("/v8/finance/chart/AAPL", fixture("yahoo", "success.json"))
    code, out, err = probe_cli("validate", "--probe", "--provider", "yahoo", "-s", "AAPL", "--json")
    assert code == ExitCode.OK, err
    assert "key not needed" in probe_of(out, "yahoo")["detail"]
    fake_vendor.route("/api/v1/quote", fixture("finnhub", "quote_success.json",
                                               headers={"X-Ratelimit-Remaining": "59", "X-Ratelimit-Limit": "60"}))
    code, out, err = probe_cli("validate", "--probe", "--provider", "finnhub", "-s", "AAPL", "--json")
    assert code == ExitCode.OK, err
    assert "quota: 59 of 60 calls left in the vendor's window" in probe_of(out, "finnhub")["detail"]


def test_probe_of_a_refused_key_exits_4(probe_cli, fake_vendor):
    fake_vendor.route("/api/v1/quote", fixture("finnhub", "bad_key.json", 401))
    code, out, err = probe_cli("validate", "--probe", "--provider", "finnhub", "-s", "AAPL", "--json")
    assert code == ExitCode.CONFIG, err
    check = probe_of(out, "finnhub")
    assert not check["ok"] and "refused the API key (Invalid API key.): check STOCKPIPE_FINNHUB_API_KEY" in check["detail"]


def test_probe_of_a_provider_that_is_down_exits_5(make_cli, closed_port):
    cli = make_cli(STOCKPIPE_YAHOO_BASE_URL=f"http://127.0.0.1:{closed_port}", **FAST)
    assert cli("db", "upgrade")[0] == ExitCode.OK
    started = time.monotonic()
    code, out, err = cli("validate", "--probe", "-s", "AAPL", "--json")
    assert code == ExitCode.UNAVAILABLE and time.monotonic() - started < 5
    assert f"yahoo unreachable at 127.0.0.1:{closed_port}" in probe_of(out, "yahoo")["detail"]
