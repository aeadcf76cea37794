"""Fetch planning: which date range each symbol is missing. Pure.

The plan comes from `symbol_state` (`last_date`: the last session a successful fetch
covered; `refetch_from`: the earliest session quality-check found missing inside the held
history), never from scanning the price table, and from the trading calendar of each
symbol's own exchange (calendars are pure computation):

* `end` is the latest session of the symbol's exchange that has closed at `now` (an aware
  instant: never the machine's local date), capped by an explicit `end` and then moved
  back to a session. A London and a New York symbol planned at the same instant can get
  different ends.
* A symbol gets no request when no session of its exchange lies in (last_date, end]: a run
  on a weekend, a holiday or before the close makes zero API calls for it, and a second
  run the same evening makes none at all.
* A symbol with no state gets a first backfill starting `history_days` calendar days
  before `end`.
* A symbol with `refetch_from` gets ONE request from min(refetch_from, last_date + 1) to
  `end`: the gap and the new sessions together, the fewest requests a vendor allows (a
  vendor whose range per request is limited splits it in its provider). It is planned
  even when no new session has closed, since the gap itself is missing.
* An explicit `start` (`--start`) overrides all of that: refetch from there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .. import calendars

_DAY = dt.timedelta(days=1)
EARLIEST = dt.date(1900, 1, 1)  # the start of a file source's import: everything it holds


MODES = ("bulk", "incremental", "refetch", "skipped")


@dataclass(frozen=True)
class FetchTask:
    symbol: str
    start: dt.date
    end: dt.date  # a session of `exchange`, at or before its latest closed session
    backfill: bool  # bulk: a first backfill or a full reload
    exchange: str = calendars.DEFAULT_EXCHANGE
    reset: bool = False  # the stored last_date is in the future: rebuild the state from this fetch
    refetch: bool = False  # a gap or an explicit --start (not a backfill)
    new_from: dt.date | None = None  # the first date it lacks when `start` is earlier only to re-read held sessions

    @property
    def mode(self) -> str:
        return "bulk" if self.backfill else "refetch" if self.refetch else "incremental"


@dataclass(frozen=True)
class FetchPlan:
    tasks: tuple[FetchTask, ...]
    current: tuple[str, ...]  # already hold everything up to their `end`: nothing to ask for
    ahead: tuple[tuple[str, dt.date, dt.date], ...] = ()  # (symbol, its last_date, the latest closed session)
    skipped: tuple[str, ...] = ()  # failed `max_failures` times in a row: not asked until reset

    def modes(self) -> dict[str, int]:
        """Symbols per mode (MODES order), for the fetch result and --dry-run."""
        counts = dict.fromkeys(MODES, 0)
        for task in self.tasks:
            counts[task.mode] += 1
        return counts | {"skipped": len(self.skipped)}


def plan_fetch(
    symbols: Sequence[str],
    states: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
    history_days: int,
    exchange_of: Callable[[str], str] = calendars.exchange_for,
    start: dt.date | None = None,
    end: dt.date | None = None,
    restate_sessions: int = 0,
    max_failures: int | None = None,
) -> FetchPlan:
    """Plan one request per symbol for the range it lacks.

    Args:
        symbols: the universe, in the user's order.
        states: symbol -> its symbol_state row (`first_date`, `last_date`, `refetch_from`,
            `consecutive_failures`, `needs_reprocess` are read; None or absent = never
            fetched / no gap / no failure).
        now: the run's clock, an aware datetime in any zone.
        history_days: calendar days of history for a first backfill.
        exchange_of: symbol -> MIC of the exchange whose calendar it trades on.
        start: an explicit start (`--start`): refetch from there whatever the state says.
        end: an explicit end (`--end`), capped at each exchange's latest closed session.
        restate_sessions: held sessions an incremental request re-reads before the new ones.
        max_failures: consecutive failures after which a symbol is skipped (None: never).

    Incremental updates come before backfills, the stalest (oldest last_date) first, so
    a run cut short (quota, interruption) has kept the most-used symbols current.

    Raises:
        ValueError: `now` is naive.
        ConfigError: a symbol's exchange has no calendar.
    """
    ends: dict[str, dt.date | None] = {}  # exchange -> its end (None: no session up to `end`)
    tasks: list[tuple[tuple[bool, dt.date], FetchTask]] = []
    current: list[str] = []
    ahead: list[tuple[str, dt.date, dt.date]] = []
    latest: dict[str, dt.date] = {}
    skipped: list[str] = []
    for symbol in symbols:
        exchange = exchange_of(symbol)
        if exchange not in ends:
            ends[exchange] = _end(exchange, now, end)
        task_end = ends[exchange]
        row = states.get(symbol) or {}
        if _skipped(row, max_failures):
            skipped.append(symbol)
            continue
        last = row.get("last_date")
        if last is not None and last > latest.setdefault(exchange, calendars.latest_closed_session(now, exchange)):
            if start is None:
                ahead.append((symbol, last, latest[exchange]))
                current.append(symbol)
                continue
        if task_end is None:
            current.append(symbol)
            continue
        task = _task(symbol, exchange, row, task_end, history_days, start, restate_sessions)
        if task is None:
            current.append(symbol)
            continue
        if last is not None and last > latest[exchange]:  # a future last_date, reset by --start
            task = dataclasses.replace(task, reset=True)
        stalest = last + _DAY if last is not None and not (task.backfill or task.reset) else task.start
        tasks.append(((task.backfill, stalest), task))
    tasks.sort(key=lambda item: item[0])  # stable: ties keep the user's order
    return FetchPlan(tuple(t for _, t in tasks), tuple(current), tuple(ahead), tuple(skipped))


def _skipped(row: Mapping[str, Any], max_failures: int | None) -> bool:
    """Failed `max_failures` times in a row (a reset sets the count back to 0)."""
    return max_failures is not None and (row.get("consecutive_failures") or 0) >= max_failures


def _task(symbol: str, exchange: str, row: Mapping[str, Any], task_end: dt.date, history_days: int,
          start: dt.date | None, restate_sessions: int) -> FetchTask | None:
    """The symbol's request up to `task_end`, or None when it lacks nothing."""
    last, refetch = row.get("last_date"), row.get("refetch_from")
    backfill = last is None or bool(row.get("needs_reprocess"))
    if start is not None:
        return FetchTask(symbol, start, task_end, last is None, exchange, refetch=last is not None)
    if backfill:  # new, or a full reload after a reset: from the first bar held at the latest
        first = row.get("first_date") if last is not None else None
        task_start = task_end - dt.timedelta(days=history_days)
        return FetchTask(symbol, min(task_start, first) if first else task_start, task_end, True, exchange)
    new_from = last + _DAY
    if refetch is None and new_from > task_end:  # `task_end` is a session: none lies in (last, end]
        return None
    task_start = min(new_from, _restate_from(last, row.get("first_date"), restate_sessions, exchange))
    gap = refetch is not None and refetch < new_from  # a marker inside the new range widens nothing
    if refetch is not None:
        task_start = min(task_start, refetch)
    return FetchTask(symbol, task_start, task_end, False, exchange, refetch=gap,
                     new_from=new_from if task_start < new_from and not gap else None)


def _restate_from(last: dt.date, first: dt.date | None, sessions: int, exchange: str) -> dt.date:
    """The first of the last `sessions` sessions held up to `last` (last + 1 for none)."""
    if sessions <= 0:
        return last + _DAY
    held = calendars.sessions_between(last - dt.timedelta(days=sessions * 2 + 14), last, exchange)[-sessions:]
    if not held:
        return last + _DAY
    return max(held[0], first) if first is not None else held[0]


def _end(exchange: str, now: dt.datetime, end: dt.date | None) -> dt.date | None:
    """The last session of `exchange` to fetch up to: closed at `now`, not after `end`."""
    latest = calendars.latest_closed_session(now, exchange)
    if end is None or end >= latest:
        return latest
    return calendars.previous_session(end, exchange)
