"""Run metadata (pipeline_runs, symbol_state, run_events, quality_results), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re

import sqlalchemy as sa

from helpers import as_utc
from stockpipe.models import Check, SymbolOutcome
from stockpipe.storage import schema, state

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
DS = "prices_daily"


def test_new_run_id_is_sortable_and_unique():
    a, b = state.new_run_id(NOW), state.new_run_id(NOW)
    assert re.fullmatch(r"20261123T230000Z-[0-9a-f]{6}", a)
    assert a != b


# ------------------------------------------------------------------- symbol_state


def test_save_states_and_read_states_round_trip(engine):
    with engine.begin() as conn:
        state.save_states(conn, [
            {"symbol": "AAA", "dataset": DS, "first_date": dt.date(2025, 11, 24), "last_date": dt.date(2026, 11, 20),
             "last_attempt_at": NOW, "last_success_at": NOW, "provider": "demo"},
            {"symbol": "BBB", "dataset": DS, "consecutive_failures": 2, "last_error": "HTTP 503"},
            {"symbol": "AAA", "dataset": "corporate_actions", "last_date": dt.date(2026, 1, 2)},
        ])

    with engine.connect() as conn:
        states = state.read_states(conn, DS, ["AAA", "BBB", "CCC"])

    assert set(states) == {"AAA", "BBB"}  # CCC has no row: it is new
    aaa = states["AAA"]
    assert aaa["first_date"] == dt.date(2025, 11, 24)
    assert aaa["last_date"] == dt.date(2026, 11, 20)
    assert as_utc(aaa["last_attempt_at"]) == NOW
    assert as_utc(aaa["last_success_at"]) == NOW
    assert aaa["provider"] == "demo"
    # Server defaults fill what a row does not name.
    assert (aaa["consecutive_failures"], aaa["needs_reprocess"], aaa["lake_version"], aaa["loaded_version"]) == (0, False, 0, 0)
    assert aaa["last_error"] is None
    bbb = states["BBB"]
    assert (bbb["consecutive_failures"], bbb["last_error"], bbb["last_date"]) == (2, "HTTP 503", None)


def test_save_states_updates_only_the_columns_a_row_names(engine):
    with engine.begin() as conn:
        state.save_states(conn, [{"symbol": "AAA", "dataset": DS, "last_date": dt.date(2026, 11, 20),
                                  "consecutive_failures": 3, "last_error": "boom", "provider": "demo"}])
        state.save_states(conn, [{"symbol": "AAA", "dataset": DS, "last_date": dt.date(2026, 11, 23),
                                  "consecutive_failures": 0, "last_error": None}])
    with engine.connect() as conn:
        aaa = state.read_states(conn, DS, ["AAA"])["AAA"]
    assert (aaa["last_date"], aaa["consecutive_failures"], aaa["last_error"], aaa["provider"]) == (
        dt.date(2026, 11, 23), 0, None, "demo")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.symbol_state)).scalar() == 1


def test_read_states_over_more_symbols_than_one_in_list(engine):
    symbols = [f"S{i:04d}" for i in range(1203)]
    with engine.begin() as conn:
        state.save_states(conn, [{"symbol": s, "dataset": DS, "lake_version": i} for i, s in enumerate(symbols)])
    with engine.connect() as conn:
        states = state.read_states(conn, DS, symbols + ["NEW"])
    assert len(states) == 1203
    assert states["S1202"]["lake_version"] == 1202
    assert states["S0500"]["lake_version"] == 500


def test_held_symbols_are_those_with_a_last_date(engine):
    with engine.begin() as conn:
        state.save_states(conn, [
            {"symbol": "DDD", "dataset": DS, "last_date": dt.date(2026, 11, 20)},
            {"symbol": "AAA", "dataset": DS, "last_date": dt.date(2026, 11, 23)},
            {"symbol": "BBB", "dataset": DS, "last_date": None},
            {"symbol": "EEE", "dataset": "corporate_actions", "last_date": dt.date(2026, 11, 23)},
        ])
    with engine.connect() as conn:
        assert state.held_symbols(conn, DS) == ["AAA", "DDD"]
        assert state.held_symbols(conn, "corporate_actions") == ["EEE"]

def test_start_and_finish_run(engine):
    with engine.begin() as conn:
        key = state.start_run(conn, "r1", "run", {"symbols": ["AAA", "BBB"], "start": dt.date(2026, 1, 2)}, "demo", NOW,
                              shard="2/4")
    runs = schema.pipeline_runs
    with engine.connect() as conn:
        started = conn.execute(sa.select(runs)).mappings().one()
    assert (started["status"], started["finished_at"], started["exit_code"], started["planned"]) == ("running", None, None, 0)
    assert json.loads(started["arguments"]) == {"start": "2026-01-02", "symbols": ["AAA", "BBB"]}
    assert as_utc(started["started_at"]) == NOW

    with engine.begin() as conn:
        state.finish_run(conn, key, "partial", 3, {"planned": 2, "ok": 1, "failed": 1, "rows_loaded": 250,
                                                    "api_calls": 2, "not_a_column": 7}, "BBB: HTTP 503", NOW + dt.timedelta(minutes=2))
    with engine.connect() as conn:
        done = conn.execute(sa.select(runs)).mappings().one()
    assert (done["status"], done["exit_code"], done["error"]) == ("partial", 3, "BBB: HTTP 503")
    assert (done["planned"], done["ok"], done["failed"], done["skipped"], done["rows_loaded"], done["api_calls"]) == (2, 1, 1, 0, 250, 2)
    assert as_utc(done["finished_at"]) == NOW + dt.timedelta(minutes=2)
    assert done["provider"] == "demo"
    assert (done["run_id"], done["shard"]) == ("r1", "2/4")


def test_one_run_id_names_many_invocations(engine):
    """An Airflow DAG run calls stockpipe many times under one run_id (tasks, shards, retries)."""
    with engine.begin() as conn:
        first = state.start_run(conn, "scheduled__2026-11-20T03:30:00+00:00", "fetch", {}, "demo", NOW, shard="1/2")
        second = state.start_run(conn, "scheduled__2026-11-20T03:30:00+00:00", "fetch", {}, "demo", NOW, shard="2/2")
        state.finish_run(conn, second, "ok", 0, {"planned": 3}, None, NOW + dt.timedelta(minutes=1))
    runs = schema.pipeline_runs
    with engine.connect() as conn:
        got = conn.execute(sa.select(runs.c.id, runs.c.shard, runs.c.status, runs.c.planned).order_by(runs.c.id)).all()
    assert first != second
    assert [tuple(r) for r in got] == [(first, "1/2", "running", 0), (second, "2/2", "ok", 3)]


def test_last_successful_run_counts_only_ok_fetches_and_runs(engine):
    with engine.connect() as conn:
        assert state.last_successful_run(conn) is None
    with engine.begin() as conn:
        r1 = state.start_run(conn, "r1", "fetch", {}, "demo", NOW)
        assert state.last_successful_run(conn) is None  # still running
        state.finish_run(conn, r1, "ok", 0, {}, None, NOW + dt.timedelta(minutes=1))
        r2 = state.start_run(conn, "r2", "run", {}, "demo", NOW + dt.timedelta(hours=1))
        state.finish_run(conn, r2, "ok", 0, {}, None, NOW + dt.timedelta(hours=1, minutes=3))
        r3 = state.start_run(conn, "r3", "load", {}, None, NOW + dt.timedelta(hours=2))
        state.finish_run(conn, r3, "ok", 0, {}, None, NOW + dt.timedelta(hours=2, minutes=1))
        r4 = state.start_run(conn, "r4", "run", {}, "demo", NOW + dt.timedelta(hours=3))
        state.finish_run(conn, r4, "failed", 5, {}, "db down", NOW + dt.timedelta(hours=3, minutes=1))
    with engine.connect() as conn:
        last = state.last_successful_run(conn)
    assert last == NOW + dt.timedelta(hours=1, minutes=3)
    assert last.tzinfo is not None


# ------------------------------------------------------------ events and quality


def test_record_events(engine):
    outcomes = [
        SymbolOutcome("AAA", "fetch", "ok", rows=21, api_calls=1, provider="demo"),
        SymbolOutcome("BBB", "fetch", "failed", message="HTTP 503", provider="demo"),
        SymbolOutcome("CCC", "load", "skipped"),
    ]
    with engine.begin() as conn:
        state.record_events(conn, "r1", outcomes, NOW)
        state.record_events(conn, "r1", [], NOW)  # nothing to record is fine
    e = schema.run_events
    with engine.connect() as conn:
        rows = conn.execute(sa.select(e).order_by(e.c.id)).mappings().all()
    got = [(r["run_id"], r["symbol"], r["stage"], r["status"], r["rows"], r["api_calls"], r["provider"], r["message"])
           for r in rows]
    assert got == [
        ("r1", "AAA", "fetch", "ok", 21, 1, "demo", None),
        ("r1", "BBB", "fetch", "failed", 0, 0, "demo", "HTTP 503"),
        ("r1", "CCC", "load", "skipped", 0, 0, None, None),
    ]
    assert {as_utc(r["created_at"]) for r in rows} == {NOW}


def test_record_quality(engine):
    checks = [Check("price_positive", False, "2 rows with a price <= 0", "error", "AAA", 2.0, 0.0),
              Check("stale", True, "ok", "warn", "", None, 1.0)]
    with engine.begin() as conn:
        state.record_quality(conn, "r1", checks, NOW)
    q = schema.quality_results
    with engine.connect() as conn:
        rows = conn.execute(sa.select(q.c.check_name, q.c.symbol, q.c.severity, q.c.passed, q.c.observed,
                                      q.c.threshold, q.c.detail).order_by(q.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ("price_positive", "AAA", "error", False, 2.0, 0.0, "2 rows with a price <= 0"),
        ("stale", "*", "warn", True, None, 1.0, "ok"),
    ]


def test_failing_symbols_and_reset_symbols(engine):
    with engine.begin() as conn:
        state.save_states(conn, [
            {"symbol": "AAA", "dataset": DS, "consecutive_failures": 0, "last_date": dt.date(2026, 11, 20)},
            {"symbol": "BBB", "dataset": DS, "consecutive_failures": 2, "last_error": "HTTP 503"},
            {"symbol": "CCC", "dataset": DS, "consecutive_failures": 7, "last_error": "HTTP 404"},
            {"symbol": "CCC", "dataset": "quotes", "consecutive_failures": 7, "last_error": "HTTP 404"},
        ])
    with engine.begin() as conn:
        assert state.failing_symbols(conn, DS) == ["BBB", "CCC"]
        assert state.failing_symbols(conn, DS, 5) == ["CCC"]
        assert state.reset_symbols(conn, DS, ["CCC", "ZZZ", "CCC"]) == ["CCC"]
    with engine.connect() as conn:
        rows = {(r.symbol, r.dataset): (r.consecutive_failures, r.last_error, bool(r.needs_reprocess))
                for r in conn.execute(sa.select(schema.symbol_state))}
    assert rows[("CCC", DS)] == (0, None, True)
    assert rows[("CCC", "quotes")] == (7, "HTTP 404", False)  # another dataset's state is its own
    assert rows[("BBB", DS)] == (2, "HTTP 503", False)
    with engine.connect() as conn:
        assert [r[0] for r in state.status_rows(conn, DS)] and state.recent_events(conn, "CCC") == []
