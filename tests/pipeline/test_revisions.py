"""Restatements kept: an incremental fetch re-reads the last `restate_sessions` sessions; a
bar whose values changed is updated, and load keeps the old values in price_revisions (from
the lake's change feed), counts them, keeps rows_held, and quality-check's `restated` warns."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import knobbed
from helpers import query
from stockpipe import pipeline
from stockpipe.errors import ExitCode

UTC = dt.timezone.utc
FRIDAY = dt.datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
MONDAY = dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)


@pytest.fixture
def settings(make_settings, database_url):
    knobbed.reset()
    yield make_settings(database_url=database_url, provider=knobbed.NAME, symbols=("AAA", "BBB"), history_days=30)
    knobbed.reset()


def counts(result, stage: str) -> dict[str, int]:
    return next(s.counts for s in result.stages if s.stage == stage)


def test_a_restated_bar_is_updated_and_its_old_values_kept(settings):
    assert pipeline.run(settings, clock=lambda: FRIDAY).exit_code == ExitCode.OK
    url = settings.database_url
    before = query(url, "SELECT open, high, low, close FROM prices_daily WHERE symbol = 'AAA' AND date = '2026-11-19'")
    knobbed.Knobbed.restated = {("AAA", "2026-11-19"): 1.5}  # the vendor corrects Thursday's bar on Monday

    monday = pipeline.run(settings, clock=lambda: MONDAY)
    assert monday.exit_code == ExitCode.OK, monday.message
    fetched = counts(monday, "fetch")
    assert fetched["incremental"] == 2 and fetched["rows_fetched"] == 2 * 6  # 5 sessions re-read + Monday
    assert counts(monday, "load")["prices_daily_written"] == 3  # Monday twice, AAA's Thursday once
    assert counts(monday, "load")["price_revisions"] == 4

    kept = query(url, 'SELECT "column", old, new, provider, run_id FROM price_revisions WHERE symbol = \'AAA\' '
                 "AND date = '2026-11-19' ORDER BY \"column\"")
    old = dict(zip(("open", "high", "low", "close"), before[0]))
    assert [(c, o, n) for c, o, n, _, _ in kept] == [
        (c, old[c], round(old[c] * 1.5, 4)) for c in ("close", "high", "low", "open")]
    assert {(p, r) for _, _, _, p, r in kept} == {(knobbed.NAME, monday.run_id)}
    assert query(url, "SELECT count(*) FROM price_revisions WHERE symbol = 'BBB'") == [(0,)]

    restated = [c for c in monday.stages[-1].checks if c.name == "restated" and not c.ok]
    assert [(c.symbol, c.severity, c.observed) for c in restated] == [("AAA", "warn", 1.0)]
    assert "2026-11-19 close" in restated[0].detail

    held = dict(query(url, "SELECT symbol, rows_held FROM symbol_state WHERE dataset = 'prices_daily'"))
    assert held == dict(query(url, "SELECT symbol, count(*) FROM prices_daily GROUP BY symbol"))

    again = pipeline.run(settings, clock=lambda: MONDAY)  # nothing new: no revision twice
    assert again.exit_code == ExitCode.NOTHING_TO_DO
    assert query(url, "SELECT count(*) FROM price_revisions") == [(4,)]


def test_restate_sessions_zero_reads_only_the_new_sessions(make_settings, database_url):
    knobbed.reset()
    settings = make_settings(database_url=database_url, provider=knobbed.NAME, symbols=("AAA",), history_days=30,
                             restate_sessions=0)
    pipeline.run(settings, clock=lambda: FRIDAY)
    knobbed.Knobbed.restated = {("AAA", "2026-11-19"): 1.5}
    monday = pipeline.run(settings, clock=lambda: MONDAY)
    knobbed.reset()
    assert counts(monday, "fetch")["rows_fetched"] == 1
    assert query(settings.database_url, "SELECT count(*) FROM price_revisions") == [(0,)]


def test_a_restatement_through_the_cli(make_cli, database_url):
    """`fetch --start` re-reads a window; the vendor's changed bar reaches price_revisions by `load`."""
    knobbed.reset()
    cli = make_cli(STOCKPIPE_PROVIDER=knobbed.NAME, STOCKPIPE_HISTORY_DAYS="20", STOCKPIPE_DATABASE_URL=database_url)
    assert cli("run", "--symbol", "AAA")[0] == 0
    (first, last), = query(database_url, "SELECT min(date), max(date) FROM prices_daily")
    knobbed.Knobbed.restated = {("AAA", str(last)[:10]): 2.0}
    try:
        assert cli("fetch", "--symbol", "AAA", "--start", str(first)[:10])[0] == 0
        code, out, _ = cli("load", "--json")
    finally:
        knobbed.reset()
    assert code == 0 and json.loads(out)["counts"]["price_revisions"] == 4
    rows = query(database_url, 'SELECT "column", new / old FROM price_revisions ORDER BY "column"')
    assert [(c, round(r, 3)) for c, r in rows] == [("close", 2.0), ("high", 2.0), ("low", 2.0), ("open", 2.0)]
