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

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .. import calendars

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class FetchTask:
    symbol: str
    start: dt.date
    end: dt.date  # a session of `exchange`, at or before its latest closed session
    backfill: bool
    exchange: str = calendars.DEFAULT_EXCHANGE
    reset: bool = False  # the stored last_date is in the future: rebuild the state from this fetch


@dataclass(frozen=True)
class FetchPlan:
    tasks: tuple[FetchTask, ...]
    current: tuple[str, ...]  # already hold everything up to their `end`: nothing to ask for
    ahead: tuple[tuple[str, dt.date, dt.date], ...] = ()  # (symbol, its last_date, the latest closed session)


def plan_fetch(
    symbols: Sequence[str],
    states: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
    history_days: int,
    exchange_of: Callable[[str], str] = calendars.exchange_for,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> FetchPlan:
    """Plan one request per symbol for the range it lacks.

    Args:
        symbols: the universe, in the user's order.
        states: symbol -> its symbol_state row (only `last_date` and `refetch_from` are
            read; None or absent = never fetched / no gap).
        now: the run's clock, an aware datetime in any zone.
        history_days: calendar days of history for a first backfill.
        exchange_of: symbol -> MIC of the exchange whose calendar it trades on.
        start: an explicit start (`--start`): refetch from there whatever the state says.
        end: an explicit end (`--end`), capped at each exchange's latest closed session.

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
    for symbol in symbols:
        exchange = exchange_of(symbol)
        if exchange not in ends:
            ends[exchange] = _end(exchange, now, end)
        task_end = ends[exchange]
        row = states.get(symbol) or {}
        last, refetch = row.get("last_date"), row.get("refetch_from")
        if last is not None and last > latest.setdefault(exchange, calendars.latest_closed_session(now, exchange)):
            if start is None:
                ahead.append((symbol, last, latest[exchange]))
                current.append(symbol)
                continue
        if task_end is None:
            current.append(symbol)
            continue
        if start is not None:
            task_start = start
        elif last is not None:
            task_start = last + _DAY
            if refetch is not None:
                task_start = min(task_start, refetch)
        else:
            task_start = task_end - dt.timedelta(days=history_days)
        # `task_end` is a session, so (task_start, ...] holds one exactly when it is not after it.
        if task_start > task_end:
            current.append(symbol)
            continue
        stalest = last + _DAY if last is not None else task_start
        reset = last is not None and last > latest[exchange]
        stalest = task_start if reset else stalest
        tasks.append(((last is None, stalest), FetchTask(symbol, task_start, task_end, last is None, exchange, reset)))
    tasks.sort(key=lambda item: item[0])  # stable: ties keep the user's order
    return FetchPlan(tuple(t for _, t in tasks), tuple(current), tuple(ahead))


def _end(exchange: str, now: dt.datetime, end: dt.date | None) -> dt.date | None:
    """The last session of `exchange` to fetch up to: closed at `now`, not after `end`."""
    latest = calendars.latest_closed_session(now, exchange)
    if end is None or end >= latest:
        return latest
    return calendars.previous_session(end, exchange)
