"""`status`: the universe from the run metadata alone, on SQLite and PostgreSQL; and through
the CLI: --json, --symbol, exit 0, nothing written on a fresh machine."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import knobbed
from helpers import query
from stockpipe import pipeline
from stockpipe.pipeline.status import classify, status

UTC = dt.timezone.utc
FRIDAY = dt.datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
MONDAY = dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)


def test_classify_takes_the_first_state_that_applies():
    latest = dt.date(2026, 11, 23)
    assert classify({}, latest, 5) == "never_loaded"
    assert classify({"last_date": None, "consecutive_failures": 0}, latest, 5) == "never_loaded"
    assert classify({"last_date": latest}, latest, 5) == "current"
    assert classify({"last_date": dt.date(2026, 11, 20)}, latest, 5) == "stale"
    assert classify({"last_date": latest, "consecutive_failures": 1}, latest, 5) == "failing"
    assert classify({"last_date": None, "consecutive_failures": 5}, latest, 5) == "skipped"


@pytest.fixture
def loaded(make_settings, database_url):
    """AAA and VOD.L loaded on Friday, BAD failing twice, NEW in the universe but never fetched."""
    knobbed.reset()
    knobbed.Knobbed.failing = {"BAD"}
    settings = make_settings(database_url=database_url, provider=knobbed.NAME, symbols=("AAA", "VOD.L", "BAD"),
                             history_days=20, max_consecutive_failures=2)
    pipeline.run(settings, clock=lambda: FRIDAY)
    pipeline.run(settings, clock=lambda: FRIDAY)
    yield make_settings(database_url=database_url, provider=knobbed.NAME, max_consecutive_failures=2,
                        symbols=("AAA", "VOD.L", "BAD", "NEW"))
    knobbed.reset()


def test_status_counts_each_state_per_exchange_and_provider(loaded):
    result = status(loaded, clock=lambda: MONDAY)  # Monday evening: Friday's bars are a session behind
    groups = {(g["exchange"], g["provider"]): g for g in result.groups}
    assert set(groups) == {("XNYS", knobbed.NAME), ("XLON", knobbed.NAME), ("XNYS", "")}
    assert {k: groups[("XNYS", knobbed.NAME)][k] for k in ("symbols", "stale", "skipped")} == {
        "symbols": 2, "stale": 1, "skipped": 1}
    assert groups[("XNYS", "")]["never_loaded"] == 1  # NEW: no state at all
    assert groups[("XLON", knobbed.NAME)]["stale"] == 1
    held = dict(query(loaded.database_url, "SELECT symbol, count(*) FROM prices_daily GROUP BY symbol"))
    assert result.totals["rows_held"] == sum(held.values()) > 0
    assert result.totals["symbols"] == 4
    assert result.latest_sessions == {"XNYS": dt.date(2026, 11, 23), "XLON": dt.date(2026, 11, 23)}
    assert result.totals["last_success"] == FRIDAY

    friday = status(loaded, clock=lambda: FRIDAY)
    assert friday.totals["current"] == 2 and friday.totals["stale"] == 0


def test_status_of_one_symbol_tells_its_story(loaded):
    story = status(loaded, "bad", clock=lambda: MONDAY).story
    assert story["symbol"] == "BAD" and story["status"] == "skipped"
    assert story["last_error"] == f"{knobbed.NAME} does not know BAD"
    assert [(e["stage"], e["status"]) for e in story["events"]] == [("fetch", "failed")] * 2
    assert [f["check_name"] for f in story["quality_failures"]] == ["stale"]  # no bar: judged stale


def test_status_reads_no_price_table(loaded, monkeypatch):
    """The metadata alone: a warehouse whose prices_daily is gone still answers (rows_held)."""
    from stockpipe.storage import warehouse

    engine = warehouse.create(loaded.database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE prices_daily RENAME TO prices_daily_away")
    try:
        assert status(loaded, clock=lambda: MONDAY).totals["rows_held"] > 0
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE prices_daily_away RENAME TO prices_daily")


# ------------------------------------------------------------------------ the CLI


def test_cli_status_on_a_fresh_machine_writes_nothing_and_exits_0(cli, tmp_path):
    code, out, err = cli("status", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["command"], doc["exit_code"], doc["totals"]["never_loaded"]) == ("status", 0, 4)
    assert list(tmp_path.iterdir()) == []  # no data directory, no database


def test_cli_status_after_a_run_on_sqlite_and_postgresql(make_cli, database_url):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="30", STOCKPIPE_DATABASE_URL=database_url)
    assert cli("run", "--symbol", "AAA", "--symbol", "BBB")[0] == 0
    code, out, _ = cli("status", "--json", "--symbol", "AAA")
    doc = json.loads(out)
    assert code == 0 and doc["totals"]["current"] >= 2 and doc["symbol"]["status"] == "current"
    assert {"exchange", "provider", "symbols", "current", "stale", "failing", "skipped", "never_loaded",
            "last_success", "rows_held"} <= set(doc["groups"][0])
    assert [e["stage"] for e in doc["symbol"]["events"]][:2] == ["transform", "fetch"]
    code, out, _ = cli("status", "--symbol", "AAA")
    assert code == 0 and "AAA: current on XNYS" in out and "total: symbols=" in out


def test_the_terminal_table_fits_or_gives_way_to_plain_lines(loaded):
    from rich.console import Console

    from stockpipe import layouts

    result = status(loaded, "BAD", clock=lambda: MONDAY)
    wide = Console(width=120, record=True)
    wide.print(layouts.status_table(result, 120))
    text = wide.export_text()
    assert "last success (UTC)" in text and "2026-11-20 23:00" in text and "…" not in text
    assert layouts.status_table(result, 60) is None  # too narrow: the plain lines say it all
    lines = layouts.status_lines(result)
    assert lines[0].startswith("XLON knobbed: symbols=1 current=0 stale=1")
    assert "BAD: skipped on XNYS (latest session 2026-11-23)" in lines
    assert "  last error: knobbed does not know BAD" in lines
