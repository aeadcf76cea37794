"""Run metadata in the warehouse: pipeline_runs, symbol_state, run_events, quality_results.

Planning reads `symbol_state`, never the price tables. Every function takes an open
connection, so the caller decides the transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import Check, SymbolOutcome
from . import schema
from .warehouse import chunks


def new_run_id(now: dt.datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _insert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


# ------------------------------------------------------------------- pipeline_runs


def start_run(conn: Connection, run_id: str, command: str, arguments: Mapping[str, Any],
              provider: str | None, now: dt.datetime, shard: str | None = None) -> int:
    """Record an invocation as running; returns its pipeline_runs.id (one per invocation,
    while run_id may name many: the tasks, shards and retries of one scheduled run)."""
    result = conn.execute(schema.pipeline_runs.insert().values(
        run_id=run_id, command=command, arguments=json.dumps(arguments, sort_keys=True, default=str),
        provider=provider, shard=shard, started_at=now, status="running",
    ))
    return int(result.inserted_primary_key[0])


def abandon_running(conn: Connection, shard: str | None, now: dt.datetime) -> int:
    """Mark `abandoned` the runs still `running` that the caller's lock proves dead: every
    one under a whole-universe lock (shard None); under a shard's lock those of that shard and
    the unsharded ones (they hold the universe lock exclusively, which the shard now shares).
    Returns how many."""
    runs = schema.pipeline_runs
    where = runs.c.status == "running"
    if shard is not None:
        where &= (runs.c.shard == shard) | runs.c.shard.is_(None)
    return conn.execute(runs.update().where(where).values(
        status="abandoned", finished_at=now,
        error="the process ended without recording an end (killed, or out of memory)")).rowcount


def finish_run(conn: Connection, invocation: int, status: str, exit_code: int, counts: Mapping[str, int],
               error: str | None, now: dt.datetime) -> None:
    values = {k: int(v) for k, v in counts.items() if k in schema.RUN_COUNTS}
    conn.execute(schema.pipeline_runs.update().where(schema.pipeline_runs.c.id == invocation).values(
        status=status, exit_code=exit_code, finished_at=now, error=error, **values,
    ))


def set_run_provider(conn: Connection, invocation: int, provider: str) -> None:
    """Name the provider(s) that served an invocation (a failover chain's second may serve all)."""
    conn.execute(schema.pipeline_runs.update().where(schema.pipeline_runs.c.id == invocation).values(
        provider=provider[:32]))


def last_successful_run(conn: Connection) -> dt.datetime | None:
    runs = schema.pipeline_runs
    return schema.read_utc(conn.execute(sa.select(sa.func.max(runs.c.finished_at)).where(
        runs.c.status == "ok", runs.c.command.in_(("run", "fetch")))).scalar())


# ------------------------------------------------------------------- symbol_state


def read_states(conn: Connection, dataset: str, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
    """symbol -> its symbol_state row (as a dict) for `dataset`; absent symbols are new."""
    state = schema.symbol_state
    out: dict[str, dict[str, Any]] = {}
    for chunk in chunks(list(symbols)):
        query = sa.select(state).where(state.c.dataset == dataset, state.c.symbol.in_(chunk))
        out.update({row.symbol: dict(row._mapping) for row in conn.execute(query)})
    return out


def save_states(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Upsert symbol_state rows; each row names symbol, dataset and the columns it sets."""
    by_columns: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    insert = _insert(conn)
    for columns, group in by_columns.items():
        stmt = insert(schema.symbol_state)
        updates = {c: stmt.excluded[c] for c in columns if c not in ("symbol", "dataset")}
        conn.execute(stmt.on_conflict_do_update(index_elements=["symbol", "dataset"], set_=updates), group)


def held_symbols(conn: Connection, dataset: str) -> list[str]:
    """Symbols whose symbol_state says the lake holds some of `dataset`."""
    state = schema.symbol_state
    query = sa.select(state.c.symbol).where(state.c.dataset == dataset, state.c.last_date.is_not(None))
    return list(conn.execute(query.order_by(state.c.symbol)).scalars())


# ------------------------------------------------------------ events and quality


def record_events(conn: Connection, run_id: str, outcomes: Sequence[SymbolOutcome], now: dt.datetime) -> None:
    if not outcomes:
        return
    conn.execute(schema.run_events.insert(), [
        {"run_id": run_id, "symbol": o.symbol, "stage": o.stage, "status": o.status, "rows": o.rows,
         "api_calls": o.api_calls, "provider": o.provider or None, "message": o.message or None, "created_at": now}
        for o in outcomes
    ])


def record_quality(conn: Connection, run_id: str, checks: Sequence[Check], now: dt.datetime) -> None:
    if not checks:
        return
    conn.execute(schema.quality_results.insert(), [
        {"run_id": run_id, "check_name": c.name, "symbol": c.symbol or "*", "severity": c.severity,
         "passed": c.ok, "observed": c.observed, "threshold": c.threshold, "detail": c.detail, "checked_at": now}
        for c in checks
    ])


# ------------------------------------------------------------------- reset and status


def failing_symbols(conn: Connection, dataset: str, min_failures: int = 1) -> list[str]:
    """Symbols with at least `min_failures` consecutive failures, sorted."""
    state = schema.symbol_state
    query = sa.select(state.c.symbol).where(state.c.dataset == dataset, state.c.consecutive_failures >= min_failures)
    return list(conn.execute(query.order_by(state.c.symbol)).scalars())


def reset_symbols(conn: Connection, dataset: str, symbols: Sequence[str]) -> list[str]:
    """Clear the failures of `symbols` and mark them `needs_reprocess` (the next plan reloads
    them in full); returns those that have a symbol_state row (the others are left out), sorted."""
    state = schema.symbol_state
    where = state.c.dataset == dataset
    found = []
    for chunk in chunks(list(dict.fromkeys(symbols))):
        found += conn.execute(state.update().where(where, state.c.symbol.in_(chunk)).values(
            consecutive_failures=0, last_error=None, needs_reprocess=True).returning(state.c.symbol)).scalars().all()
    return sorted(found)


STATUS_COLUMNS = ("symbol", "provider", "first_date", "last_date", "last_success_at", "consecutive_failures",
                  "needs_reprocess", "rows_held")


def status_rows(conn: Connection, dataset: str) -> list[tuple]:
    """Every symbol_state row of `dataset`, as STATUS_COLUMNS tuples (one query, no price table)."""
    state = schema.symbol_state
    query = sa.select(*(state.c[name] for name in STATUS_COLUMNS)).where(state.c.dataset == dataset)
    return [tuple(row) for row in conn.execute(query)]


def recent_events(conn: Connection, symbol: str, limit: int = 20) -> list[dict[str, Any]]:
    """The symbol's newest run_events rows, newest first."""
    events = schema.run_events
    query = (sa.select(events.c.run_id, events.c.stage, events.c.status, events.c.rows, events.c.api_calls,
                       events.c.provider, events.c.message, events.c.created_at)
             .where(events.c.symbol == symbol).order_by(events.c.id.desc()).limit(limit))
    return [dict(row) | {"created_at": schema.read_utc(row["created_at"])} for row in conn.execute(query).mappings()]
