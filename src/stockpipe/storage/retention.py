"""Retention in the warehouse: rows older than a cutoff deleted, in the caller's transaction
(pipeline/prune.py). Only what `stockpipe prune` was asked for; never the assets or the
planner's symbol_state rows."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema


def delete_before(conn: Connection, table: str, column: str, cutoff: dt.datetime | dt.date) -> int:
    """Delete `table`'s rows whose `column` is before `cutoff`; returns how many."""
    target = schema.metadata.tables[table]
    return max(conn.execute(target.delete().where(target.c[column] < cutoff)).rowcount, 0)


def delete_runs(conn: Connection, cutoff: dt.datetime) -> dict[str, int]:
    """The run records older than `cutoff`: invocations finished before it (never one still
    running), run_events and quality_results written before it. Returns the rows per table."""
    runs = schema.pipeline_runs
    finished = runs.delete().where(runs.c.finished_at < cutoff, runs.c.status != "running")
    return {"pipeline_runs": max(conn.execute(finished).rowcount, 0),
            "run_events": delete_before(conn, "run_events", "created_at", cutoff),
            "quality_results": delete_before(conn, "quality_results", "checked_at", cutoff)}


def raise_first_dates(conn: Connection, dataset: str, cutoff: dt.date) -> int:
    """symbol_state's first_date moved up to `cutoff` where the rows before it were pruned."""
    state = schema.symbol_state
    return max(conn.execute(state.update().where(state.c.dataset == dataset, state.c.first_date < cutoff)
                            .values(first_date=cutoff)).rowcount, 0)


def count_before(conn: Connection, table: str, column: str, cutoff: dt.datetime | dt.date) -> int:
    target = schema.metadata.tables[table]
    return int(conn.execute(sa.select(sa.func.count()).select_from(target).where(target.c[column] < cutoff)).scalar())
