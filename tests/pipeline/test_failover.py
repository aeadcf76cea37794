"""Issue 15, "Also": a failover chain (`--provider eodhd,yahoo`) whose first provider has no
key at all, or refuses its key, is served by the second: exit 0 (not 4), the problem in the
result (`warnings`, `failed_over`, the stage's message) so a scheduler sees it, and
pipeline_runs naming the provider that served."""

from __future__ import annotations

import json

import pytest

from fakevendor import fixture
from stockpipe.errors import ExitCode

from helpers import db, vendor_base_urls

WINDOW = ("--start", "2024-05-06", "--end", "2024-05-10")
SYMBOLS = ("-s", "AAPL", "-s", "MSFT")


@pytest.fixture
def served(fake_vendor):
    fake_vendor.route("/v8/finance/chart/*", fixture("yahoo", "success.json"))
    return fake_vendor


def fetch_stage(out: str) -> dict:
    return next(s for s in json.loads(out)["stages"] if s["stage"] == "fetch")


def test_no_key_for_the_first_provider_fails_over_instead_of_exiting_4(make_cli, served, tmp_path):
    cli = make_cli(**vendor_base_urls(served.url))  # no STOCKPIPE_EODHD_API_KEY
    code, out, err = cli("run", *SYMBOLS, *WINDOW, "--provider", "eodhd,yahoo", "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    eodhd = next(c for c in doc["checks"] if c["name"] == "provider eodhd")
    assert eodhd["severity"] == "warn" and "fails over to yahoo" in eodhd["detail"]
    fetch = fetch_stage(out)
    assert fetch["counts"]["warnings"] == 1 and fetch["counts"]["failed_over"] == 2
    assert "STOCKPIPE_EODHD_API_KEY" in fetch["message"] and "2 symbol(s) failed over to yahoo" in fetch["message"]
    assert db(tmp_path, "SELECT DISTINCT provider FROM prices_daily") == [("yahoo",)]
    assert db(tmp_path, "SELECT provider FROM pipeline_runs WHERE command = 'run'") == [("yahoo",)]
    assert served.calls("/api/eod/*") == []


def test_a_refused_key_covered_by_failover_is_in_the_result(make_cli, served, tmp_path):
    served.route("/api/eod/*", fixture("eodhd", "bad_key.txt", 401))
    cli = make_cli(**vendor_base_urls(served.url), STOCKPIPE_EODHD_API_KEY="KEY-refused-1",
                   STOCKPIPE_EODHD_CALLS_PER_SECOND="1")  # one call at a time: the second is deferred
    code, out, err = cli("run", *SYMBOLS, *WINDOW, "--provider", "eodhd,yahoo", "--json")
    assert code == ExitCode.OK, err  # every symbol was served...
    fetch = fetch_stage(out)
    assert fetch["counts"]["warnings"] == 1 and fetch["counts"]["failed_over"] == 2  # ...but not silently
    assert "eodhd refused the API key" in fetch["message"] and "failed over to yahoo" in fetch["message"]
    attempts = db(tmp_path, "SELECT provider, status FROM run_events WHERE stage = 'fetch' ORDER BY id")
    assert attempts == [("eodhd", "failed"), ("eodhd", "skipped"), ("yahoo", "ok"), ("yahoo", "ok")]
    assert db(tmp_path, "SELECT provider, api_calls FROM pipeline_runs WHERE command = 'run'") == [("yahoo", 3)]


def test_a_lone_provider_without_a_key_still_exits_4(make_cli, served):
    code, _, err = make_cli(**vendor_base_urls(served.url))("run", *SYMBOLS, *WINDOW, "--provider", "eodhd")
    assert code == ExitCode.CONFIG and "STOCKPIPE_EODHD_API_KEY" in err


def test_the_first_provider_serving_everything_leaves_no_warning(make_cli, served, tmp_path):
    served.route("/api/eod/*", fixture("eodhd", "eod_success.json"))
    cli = make_cli(**vendor_base_urls(served.url), STOCKPIPE_EODHD_API_KEY="KEY-served-1")
    code, out, err = cli("run", *SYMBOLS, *WINDOW, "--provider", "eodhd,yahoo", "--json")
    assert code == ExitCode.OK, err
    assert "warnings" not in fetch_stage(out)["counts"]
    assert db(tmp_path, "SELECT provider FROM pipeline_runs WHERE command = 'run'") == [("eodhd",)]
