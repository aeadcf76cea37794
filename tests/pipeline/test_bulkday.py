"""EODHD's bulk day through the real CLI against the fake vendor, on SQLite and PostgreSQL:
the planner's choice, the requests sent, the quota ledger at 100 per bulk request, the
fallback of symbols the bulk answer lacks, and the splits and dividends of the same day."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pytest

from fakevendor import EodhdExchange, Reply, eodhd_bar
from stockpipe import calendars
from stockpipe.errors import ExitCode

from helpers import query, vendor_base_urls

KEY = "BULKKEY-77aa"
N = 130  # more than a bulk request costs (100)
CODES = [f"T{i:03d}" for i in range(N - 2)] + ["BRK-B", "LATE"]
SYMBOLS = [c.replace("-", ".") for c in CODES]  # BRK-B is BRK.B


def sessions(lo: dt.date, hi: dt.date) -> list[dt.date]:
    return calendars.sessions_between(lo, hi, "XNYS")


@pytest.fixture
def days() -> tuple[dt.date, dt.date]:
    """(the session before the latest closed one, the latest closed one), as the CLI's clock sees it."""
    latest = calendars.latest_closed_session(calendars.utcnow(), "XNYS")
    return calendars.previous_session(latest - dt.timedelta(days=1), "XNYS"), latest


@pytest.fixture
def run(make_cli, fake_vendor, database_url, tmp_path):
    (tmp_path / "symbols.txt").write_text("\n".join(SYMBOLS) + "\n")
    cli = make_cli(**vendor_base_urls(fake_vendor.url), STOCKPIPE_EODHD_API_KEY=KEY, STOCKPIPE_HISTORY_DAYS="8",
                   STOCKPIPE_DATABASE_URL=database_url)
    def call(*args: str):
        if args[:1] == ("load",):
            return cli(*args)
        return cli("fetch", "--symbols-file", "symbols.txt", "--provider", "eodhd", "--json", *args)

    return call


def test_a_night_of_one_new_session_is_one_bulk_day_plus_the_symbols_it_lacks(run, fake_vendor, database_url,
                                                                               days, tmp_path):
    before, latest = days
    EodhdExchange(fake_vendor, {"US": CODES}, missing={"LATE"}, stale={"T007"}, splits={"T001": "2.000000/1.000000"},
                  dividends={"T002": 0.24}, sessions=sessions).install()
    code, out, err = run("--end", before.isoformat())  # the backfill: one call per symbol, no bulk
    assert code == ExitCode.OK, err
    assert not fake_vendor.calls("/api/eod-bulk-last-day/*") and len(fake_vendor.calls("/api/eod/*")) == N
    fake_vendor.clear()

    code, out, err = run()
    assert code == ExitCode.OK, err
    bulk = fake_vendor.calls("/api/eod-bulk-last-day/US")
    assert sorted((c.param("type") or "eod", c.param("date"), c.param("api_token")) for c in bulk) == [
        ("dividends", latest.isoformat(), KEY), ("eod", latest.isoformat(), KEY), ("splits", latest.isoformat(), KEY)]
    # the symbol the answer lacks and the one it dated a session early are asked on their own
    assert sorted(c.path for c in fake_vendor.calls("/api/eod/*")) == ["/api/eod/LATE.US", "/api/eod/T007.US"]
    doc = json.loads(out)
    assert doc["counts"]["api_calls"] == 3 * 100 + 2 and doc["counts"]["bulk_requests"] == 3
    # the two asked on their own also re-read their last 5 held sessions (restate_sessions)
    assert doc["counts"]["ok"] == N and doc["counts"]["rows_fetched"] == N + 2 * 5
    assert query(database_url, "SELECT calls FROM quota_ledger") == [(N + 302,)]  # 100 per bulk request
    runs = query(database_url, "SELECT api_calls FROM pipeline_runs WHERE command = 'fetch' ORDER BY id")
    assert runs == [(N,), (302,)]

    assert run("load")[0] == ExitCode.OK
    prices = dict(query(database_url, f"SELECT symbol, close FROM prices_daily WHERE date = '{latest}'"))
    assert len(prices) == N and prices["BRK.B"] == eodhd_bar("BRK-B", latest)["close"]
    assert prices["T007"] == eodhd_bar("T007", latest)["close"]  # the per-symbol answer's, not the stale one
    assert sorted(query(database_url, "SELECT symbol, kind, value FROM corporate_actions")) == [
        ("T001", "split", 2.0), ("T002", "dividend", 0.24)]
    events = dict(query(database_url, "SELECT symbol, message FROM run_events WHERE run_id = "
                        "(SELECT run_id FROM pipeline_runs WHERE command = 'fetch' ORDER BY id DESC LIMIT 1)"))
    assert f"eod-bulk-last-day/US {latest}" in events["T000"] and "bulk" not in (events["LATE"] or "")
    archived = list((tmp_path / "stockpipe-data" / "raw" / "eodhd").rglob("US.bulk-eod-*.json.gz"))
    assert len(archived) == 1 and b'"BRK-B"' in gzip.decompress(archived[0].read_bytes())


def test_a_missed_session_adds_the_date_parameter_day(make_cli, fake_vendor, database_url, days, tmp_path):
    before, latest = days
    earlier = calendars.previous_session(before - dt.timedelta(days=1), "XNYS")
    codes = [f"M{i:03d}" for i in range(210)]  # two sessions each: 210 calls one by one, 200 in two bulk days
    EodhdExchange(fake_vendor, {"US": codes}, sessions=sessions).install()
    (tmp_path / "symbols.txt").write_text("\n".join(codes) + "\n")
    cli = make_cli(**vendor_base_urls(fake_vendor.url), STOCKPIPE_EODHD_API_KEY=KEY, STOCKPIPE_HISTORY_DAYS="8",
                   STOCKPIPE_DATABASE_URL=database_url, STOCKPIPE_BULK_ACTIONS="false")
    args = ("fetch", "--symbols-file", "symbols.txt", "--provider", "eodhd")
    assert cli(*args, "--end", earlier.isoformat())[0] == ExitCode.OK
    fake_vendor.clear()
    code, out, err = cli(*args, "--json")
    assert code == ExitCode.OK, err
    asked = sorted((c.param("date"), c.param("type") or "eod") for c in fake_vendor.calls("/api/eod-bulk-last-day/*"))
    assert asked == [(before.isoformat(), "eod"), (latest.isoformat(), "eod")]  # bulk_actions off: bars only
    assert not fake_vendor.calls("/api/eod/*") and json.loads(out)["counts"]["api_calls"] == 200
    assert cli("load")[0] == ExitCode.OK
    assert query(database_url, f"SELECT COUNT(*) FROM prices_daily WHERE date IN ('{before}', '{latest}')") == [(420,)]


def test_fewer_symbols_than_a_bulk_request_costs_are_asked_one_by_one(make_cli, fake_vendor, database_url, days):
    before, latest = days
    EodhdExchange(fake_vendor, {"US": CODES}, sessions=sessions).install()
    cli = make_cli(**vendor_base_urls(fake_vendor.url), STOCKPIPE_EODHD_API_KEY=KEY, STOCKPIPE_HISTORY_DAYS="8",
                   STOCKPIPE_DATABASE_URL=database_url)
    few = [a for c in CODES[:40] for a in ("-s", c)]
    assert cli("fetch", *few, "--provider", "eodhd", "--end", before.isoformat())[0] == ExitCode.OK
    fake_vendor.clear()
    assert cli("fetch", *few, "--provider", "eodhd")[0] == ExitCode.OK
    assert not fake_vendor.calls("/api/eod-bulk-last-day/*") and len(fake_vendor.calls("/api/eod/*")) == 40


def test_a_refused_bulk_request_falls_back_and_bulk_daily_off_never_asks(make_cli, fake_vendor, database_url, days,
                                                                        tmp_path):
    before, latest = days
    EodhdExchange(fake_vendor, {"US": CODES}, sessions=sessions).install()
    (tmp_path / "symbols.txt").write_text("\n".join(SYMBOLS) + "\n")
    env = dict(vendor_base_urls(fake_vendor.url), STOCKPIPE_EODHD_API_KEY=KEY, STOCKPIPE_HISTORY_DAYS="8",
               STOCKPIPE_DATABASE_URL=database_url)
    cli = make_cli(**env)
    args = ("fetch", "--symbols-file", "symbols.txt", "--provider", "eodhd")
    assert cli(*args, "--end", before.isoformat())[0] == ExitCode.OK
    fake_vendor.route("/api/eod-bulk-last-day/*", Reply(
        403, "Only for paid plans", content_type="text/plain"))
    fake_vendor.clear()
    code, out, err = cli(*args, "--json")
    assert code == ExitCode.OK, err  # not entitled to the bulk day: every symbol on its own
    assert 1 <= len(fake_vendor.calls("/api/eod-bulk-last-day/*")) <= 3 and len(fake_vendor.calls("/api/eod/*")) == N

    cli = make_cli(**env, STOCKPIPE_BULK_DAILY="false")
    fake_vendor.clear()
    assert cli(*args, "--start", latest.isoformat())[0] == ExitCode.OK
    assert not fake_vendor.calls("/api/eod-bulk-last-day/*")
