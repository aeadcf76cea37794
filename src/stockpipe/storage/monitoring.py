"""Read-only questions `health-check` and the metrics file ask of the run metadata.

Every query is an aggregate or keyed lookup over pipeline_runs, symbol_state, run_events
and quota_ledger, so health-check stays fast on a 20,000-symbol warehouse; the one look at
a price table (`prices_held`) is an EXISTS, a single probe of its primary key. Every
function takes an open connection; none writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema

FETCHING = ("run", "fetch")  # the commands that bring new bars (quotes and intraday fetches do not count)
SHARD_SPREAD = dt.timedelta(hours=24)  # shards of one scheduled run start within this of each other


@dataclass(frozen=True)
class LastRun:
    """What the latest fetching run(s) left: one per shard, their symbols' final fetch outcomes."""

    run_ids: tuple[str, ...]
    finished_at: dt.datetime | None
    outcomes: dict[str, int]  # status -> symbols (the last event of each symbol wins)

    @property
    def symbols(self) -> int:
        return sum(self.outcomes.values())


def last_fetch_runs(conn: Connection) -> LastRun | None:
    """The latest finished `run`/`fetch` of each shard (unsharded counts as one), among those
    started within SHARD_SPREAD of the newest, so a shard layout given up long ago is not
    judged again; None when no such run finished yet."""
    runs = schema.pipeline_runs
    rows = conn.execute(sa.select(runs.c.run_id, runs.c.shard, runs.c.started_at, runs.c.finished_at)
                        .where(runs.c.command.in_(FETCHING), runs.c.finished_at.is_not(None))
                        .order_by(runs.c.started_at.desc()).limit(5000)).all()
    if not rows:
        return None
    newest = schema.read_utc(rows[0].started_at)
    latest: dict[str | None, sa.Row] = {}
    for row in rows:
        if schema.read_utc(row.started_at) >= newest - SHARD_SPREAD:
            latest.setdefault(row.shard, row)
    run_ids = tuple(dict.fromkeys(r.run_id for r in latest.values()))
    events = schema.run_events
    last_event = (sa.select(sa.func.max(events.c.id))
                  .where(events.c.run_id.in_(run_ids), events.c.stage == "fetch").group_by(events.c.symbol))
    counted = conn.execute(sa.select(events.c.status, sa.func.count())
                           .where(events.c.id.in_(last_event)).group_by(events.c.status)).all()
    finished = max(schema.read_utc(r.finished_at) for r in latest.values())
    return LastRun(run_ids, finished, {status: int(n) for status, n in counted})


@dataclass(frozen=True)
class Failing:
    """symbol_state of the daily bars: symbols attempted lately, those whose last attempt failed."""

    tracked: int
    failing: int
    worst: tuple[tuple[str, int], ...]  # (symbol, consecutive failures), most first


def failing_symbols(conn: Connection, since: dt.datetime, show: int = 3) -> Failing:
    """Symbols of prices_daily attempted at or after `since`, and the failing ones among them
    (a symbol dropped from the universe stops being attempted and ages out)."""
    state = schema.symbol_state
    recent = sa.and_(state.c.dataset == "prices_daily", state.c.last_attempt_at >= since.astimezone(dt.timezone.utc))
    failing = state.c.consecutive_failures > 0
    tracked, bad = conn.execute(sa.select(sa.func.count(), sa.func.count().filter(failing)).where(recent)).one()
    worst = conn.execute(sa.select(state.c.symbol, state.c.consecutive_failures).where(recent, failing)
                         .order_by(state.c.consecutive_failures.desc(), state.c.symbol).limit(show)).all()
    return Failing(int(tracked), int(bad), tuple((s, int(n)) for s, n in worst))


@dataclass(frozen=True)
class Quota:
    """One provider's current quota day, as the ledger counts it."""

    provider: str
    calls: int
    limit: int | None
    resets_at: dt.datetime

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.calls)


def quotas(conn: Connection, now: dt.datetime, providers: Sequence[str] | None = None) -> list[Quota]:
    """The quota windows open at `now` (one per provider that made calls in it)."""
    ledger, now = schema.quota_ledger, now.astimezone(dt.timezone.utc)  # SQLite compares UTC text
    query = sa.select(ledger).where(ledger.c.window_start <= now, ledger.c.resets_at > now)
    if providers is not None:
        query = query.where(ledger.c.provider.in_(list(providers)))
    return [Quota(r.provider, int(r.calls), r.call_limit, schema.read_utc(r.resets_at))
            for r in conn.execute(query.order_by(ledger.c.provider))]


def last_success(conn: Connection, commands: Sequence[str], shard: str | None) -> dt.datetime | None:
    """When an invocation of `commands` for `shard` (None: unsharded) last finished ok."""
    runs = schema.pipeline_runs
    where = runs.c.shard.is_(None) if shard is None else runs.c.shard == shard
    return schema.read_utc(conn.execute(sa.select(sa.func.max(runs.c.finished_at))
                             .where(runs.c.status == "ok", runs.c.command.in_(list(commands)), where)).scalar())


def run_counts(conn: Connection, command: str, shard: str | None) -> dict[str, int]:
    """status -> how many invocations of `command` for `shard` pipeline_runs holds."""
    runs = schema.pipeline_runs
    where = runs.c.shard.is_(None) if shard is None else runs.c.shard == shard
    rows = conn.execute(sa.select(runs.c.status, sa.func.count())
                        .where(runs.c.command == command, where).group_by(runs.c.status))
    return {status: int(n) for status, n in rows}


def row_counts(conn: Connection, names: Sequence[str]) -> dict[str, int]:
    """Rows per data table (one COUNT each)."""
    return {name: int(conn.execute(sa.select(sa.func.count()).select_from(schema.DATA_TABLES[name])).scalar())
            for name in names}


@dataclass(frozen=True)
class Held:
    """A symbol's daily bars as symbol_state knows them: the newest date the lake holds
    (whether the warehouse holds it too is health's "lake loaded" check)."""

    symbol: str
    last_date: dt.date | None


def held_symbols(conn: Connection, since: dt.datetime) -> list[Held]:
    """prices_daily's symbols attempted at or after `since` (as failing_symbols counts them)."""
    state = schema.symbol_state
    rows = conn.execute(sa.select(state.c.symbol, state.c.last_date)
                        .where(state.c.dataset == "prices_daily",
                               state.c.last_attempt_at >= since.astimezone(dt.timezone.utc))
                        .order_by(state.c.symbol)).all()
    return [Held(r.symbol, r.last_date) for r in rows]


def prices_held(conn: Connection) -> bool:
    """Whether the warehouse's prices_daily holds any row."""
    p = schema.prices_daily
    return bool(conn.execute(sa.select(sa.exists().where(p.c.symbol.is_not(None)))).scalar())
