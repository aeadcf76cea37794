"""Fetch planning: which date range each symbol is missing. Pure.

The plan comes from `symbol_state.last_date` (the last session a successful fetch
covered), never from scanning the price table. A symbol with no state gets a first
backfill of `history_days`; one already holding the latest closed session gets no
request at all, so a second run the same evening makes zero API calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class FetchTask:
    symbol: str
    start: dt.date
    end: dt.date
    backfill: bool


@dataclass(frozen=True)
class FetchPlan:
    tasks: tuple[FetchTask, ...]
    current: tuple[str, ...]  # already hold everything up to `end`: nothing to ask for


def plan_fetch(
    symbols: Sequence[str],
    last_dates: Mapping[str, dt.date | None],
    latest_session: dt.date,
    history_days: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> FetchPlan:
    """Plan one request per symbol for the range it lacks.

    Args:
        symbols: the universe, in the user's order.
        last_dates: symbol -> last session already fetched (None or absent = never).
        latest_session: the exchange's latest closed session (the default end).
        history_days: calendar days of history for a first backfill.
        start: an explicit start (`--start`): refetch from there whatever the state says.
        end: an explicit end (`--end`), capped at `latest_session`.

    Incremental updates come before backfills, the stalest first, so a run cut short
    (quota, interruption) has kept the most-used symbols current.
    """
    end = min(end or latest_session, latest_session)
    tasks, current = [], []
    for symbol in symbols:
        last = last_dates.get(symbol)
        if start is not None:
            task_start = start
        elif last is not None:
            task_start = last + dt.timedelta(days=1)
        else:
            task_start = end - dt.timedelta(days=history_days)
        if task_start > end:
            current.append(symbol)
        else:
            tasks.append(FetchTask(symbol, task_start, end, backfill=last is None))
    tasks.sort(key=lambda t: (t.backfill, t.start))
    return FetchPlan(tuple(tasks), tuple(current))
