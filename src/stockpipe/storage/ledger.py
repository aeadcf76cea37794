"""The quota ledger: calls spent per provider per quota day, kept in the warehouse.

A second run on the same day (or another shard, or another machine on the same
PostgreSQL) sees what the first one spent. One row per (provider, window_start), where
the window is the vendor's quota day: from midnight to midnight in the zone the vendor
resets in (EODHD: GMT), stored as UTC instants.

Every change is one atomic statement (INSERT .. ON CONFLICT DO UPDATE, on SQLite and
PostgreSQL alike), written through before the call is sent, so neither a crash nor
concurrent writers lose a call. `try_spend` increments only while the limit allows, so
concurrent workers never spend past it.

The engine is the caller's (the pipeline's one engine per process): a provider gets
`opener(engine)` and opens its own `Ledger` with the daily limit and reset zone it knows.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from functools import partial
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from .schema import quota_ledger

UTC = dt.timezone.utc


def _utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass(frozen=True)
class QuotaStatus:
    """Where one provider stands in its current quota window."""

    provider: str
    window_start: dt.datetime
    resets_at: dt.datetime
    calls: int
    limit: int | None  # None: no daily limit known

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.calls)


class Ledger:
    """Daily call counts of one provider (thread-safe; one object per provider per run)."""

    def __init__(self, engine: Engine, provider: str, calls_per_day: int | None, reset_zone: str = "UTC",
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        try:
            self._zone = ZoneInfo(reset_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown quota reset zone {reset_zone!r} for {provider}: "
                              "use an IANA name such as UTC or Europe/Warsaw") from None
        if calls_per_day is not None and calls_per_day < 0:
            raise ConfigError(f"STOCKPIPE_{provider.upper()}_CALLS_PER_DAY must be 0 or more")
        self.engine, self.provider, self.calls_per_day = engine, provider, calls_per_day
        self._clock = clock
        self._lock = threading.Lock()

    # -- reading

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """(start, reset) of the current quota day, as UTC instants (DST-aware)."""
        local = self._clock().astimezone(self._zone)
        start = dt.datetime.combine(local.date(), dt.time(), tzinfo=self._zone)
        end = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=self._zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def status(self) -> QuotaStatus:
        start, resets = self.window()
        t = quota_ledger
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.calls, t.c.call_limit).where(
                t.c.provider == self.provider, t.c.window_start == start)).first()
        if row is None:
            return QuotaStatus(self.provider, start, resets, 0, self.calls_per_day)
        limit = self.calls_per_day if self.calls_per_day is not None else row.call_limit
        return QuotaStatus(self.provider, start, resets, int(row.calls), limit)

    def remaining(self) -> int | None:
        """Calls left in the current window (None: no daily limit known)."""
        return self.status().remaining

    def resets_at(self) -> dt.datetime:
        return self.window()[1]

    def describe(self) -> str:
        """One line for messages: what is spent and when it resets."""
        status = self.status()
        local = status.resets_at.astimezone(self._zone)
        when = f"resets at {local:%H:%M} {local.tzname()} (in {_duration(status.resets_at - self._clock())})"
        if status.limit is None:
            return f"{self.provider} made {status.calls} calls in this quota day (no daily limit set); {when}"
        if status.remaining == 0:
            return (f"{self.provider} quota spent ({status.calls} of {status.limit} calls); {when}; "
                    f"a paid plan's limit goes in STOCKPIPE_{self.provider.upper()}_CALLS_PER_DAY")
        return f"{self.provider} has {status.remaining} of {status.limit} calls left; {when}"

    # -- writing

    def record(self, cost: int = 1) -> None:
        """Count `cost` calls in the current window, whatever the limit says."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(self._spend(conn, cost, within_limit=False))

    def try_spend(self, cost: int = 1) -> bool:
        """Count `cost` calls if the window's limit allows them; False (nothing counted) if not."""
        if self.calls_per_day is not None and cost > self.calls_per_day:
            return False
        with self._lock, self.engine.begin() as conn:
            return conn.execute(self._spend(conn, cost, within_limit=True)).rowcount == 1

    def mark_exhausted(self) -> None:
        """The vendor said the quota is spent: that wins over our count until the window resets."""
        t = quota_ledger
        start, resets = self.window()
        with self._lock, self.engine.begin() as conn:
            stmt = _insert(conn)(t).values(
                provider=self.provider, window_start=start, calls=self.calls_per_day or 0,
                call_limit=self.calls_per_day or 0, resets_at=resets, updated_at=self._clock())
            # Without a configured limit, the count the vendor stopped us at becomes the limit.
            if self.calls_per_day is not None:
                limit = stmt.excluded.call_limit
            else:
                limit = sa.func.coalesce(t.c.call_limit, t.c.calls)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[t.c.provider, t.c.window_start],
                set_={"calls": sa.case((t.c.calls > limit, t.c.calls), else_=limit), "call_limit": limit,
                      "updated_at": stmt.excluded.updated_at}))

    def _spend(self, conn: Connection, cost: int, within_limit: bool):
        """INSERT .. ON CONFLICT DO UPDATE SET calls = calls + cost [WHERE it stays within the limit]."""
        t = quota_ledger
        start, resets = self.window()
        stmt = _insert(conn)(t).values(provider=self.provider, window_start=start, calls=cost,
                                       call_limit=self.calls_per_day, resets_at=resets, updated_at=self._clock())
        # A configured limit wins (a plan upgraded mid-day); else keep what mark_exhausted learnt.
        limit = sa.func.coalesce(stmt.excluded.call_limit, t.c.call_limit)
        spent = t.c.calls + stmt.excluded.calls
        return stmt.on_conflict_do_update(
            index_elements=[t.c.provider, t.c.window_start],
            set_={"calls": spent, "call_limit": limit, "updated_at": stmt.excluded.updated_at},
            where=sa.or_(limit.is_(None), spent <= limit) if within_limit else None,
        )


def opener(engine: Engine) -> Callable[[str, int | None, str], Ledger]:
    """What `providers.create(..., ledger=)` takes: (provider, calls_per_day, reset_zone) -> a
    Ledger on `engine`."""
    return partial(Ledger, engine)


def _insert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ConfigError(f"the quota ledger needs SQLite or PostgreSQL, not {conn.dialect.name}")
    return insert


def _duration(delta: dt.timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" if not minutes else f"{hours} h {minutes} min"
