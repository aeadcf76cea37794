"""Bulk or per symbol: which planned fetches one exchange-wide answer serves. Pure.

A vendor with an exchange-wide day (EODHD's `/api/eod-bulk-last-day/{EX}`, `date=` for a
past session) answers every ticker of an exchange for one session at a fixed cost (100
calls), where a per-symbol request costs 1 whatever its range. So, per exchange:

* a task can be served by bulk days when every session it lacks is one of them: an
  incremental task (not a first backfill) lacking only the latest session, or that and
  one missed session before it (the held sessions an incremental task re-reads for
  restatements, `restate_sessions`, are not re-read on a bulk night: a bulk day answers
  one session);
* the candidates are no bulk day, the exchange's newest planned session, and that plus
  the session before it (`max_days`); each costs `cost` per bulk day plus one call per
  task left to ask on its own; the cheapest wins, a tie goes to fewer bulk days (per
  symbol asks less of a vendor that may lack some tickers).

So bulk is chosen exactly when more tasks of an exchange need only its latest session than
a bulk call costs. Symbols a bulk answer turns out to lack are asked on their own later
(pipeline/bulkday.py); this stage only plans.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Sequence

from .. import calendars
from .plan import FetchTask

BULK_COST = 100  # EODHD: one exchange-wide day costs 100 calls of the daily quota


@dataclass(frozen=True)
class BulkDay:
    """One exchange-wide answer to ask for: `venue` (the vendor's exchange code) on `day`,
    serving `symbols`."""

    venue: str
    day: dt.date
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class BulkChoice:
    """Per venue, what was weighed: the tasks that could go either way, the calls each way."""

    venue: str
    tasks: int  # tasks of the venue
    per_symbol_calls: int  # asking every one on its own
    chosen_calls: int  # the chosen way (bulk days x cost + the rest on their own)
    days: tuple[dt.date, ...]  # the bulk days chosen (none: per symbol)


@dataclass(frozen=True)
class BulkPlan:
    days: tuple[BulkDay, ...]
    single: tuple[FetchTask, ...]  # asked on their own, in the plan's order
    choices: tuple[BulkChoice, ...]

    @property
    def calls(self) -> int:
        """The calls the plan costs if every bulk answer holds every symbol it serves."""
        return sum(c.chosen_calls for c in self.choices)


def plan_bulk(tasks: Sequence[FetchTask], venue_of: Callable[[str], str | None], cost: int = BULK_COST,
              max_days: int = 2,
              sessions: Callable[[dt.date, dt.date, str], list[dt.date]] | None = None) -> BulkPlan:
    """Split `tasks` into bulk days and per-symbol tasks, per venue, by cost.

    Args:
        tasks: the plan (stages/plan.py), in its order.
        venue_of: symbol -> the vendor's exchange code (None: no bulk answer covers it).
        cost: calls one bulk day costs.
        max_days: bulk days per venue at most (the latest session and one missed one).
        sessions: (start, end, exchange MIC) -> the sessions in between (default: the
            exchange calendars).
    """
    sessions = sessions or (lambda lo, hi, mic: calendars.sessions_between(lo, hi, mic))
    needs: dict[str, list[tuple[FetchTask, frozenset[dt.date] | None]]] = {}
    single: list[FetchTask] = []
    for task in tasks:
        venue = venue_of(task.symbol)
        if venue is None:
            single.append(task)
            continue
        # the sessions it lacks (a bulk day does not re-read the restate window's held ones)
        needed = None if task.backfill else frozenset(sessions(task.new_from or task.start, task.end, task.exchange))
        needs.setdefault(venue, []).append((task, needed if needed and len(needed) <= max_days else None))
    days: list[BulkDay] = []
    choices: list[BulkChoice] = []
    bulked: set[str] = set()
    for venue, items in needs.items():
        chosen = _cheapest(items, cost, max_days)
        served = [t.symbol for t, need in items if need is not None and chosen and need <= set(chosen)]
        calls = len(chosen) * cost + len(items) - len(served)
        choices.append(BulkChoice(venue, len(items), len(items), calls, tuple(sorted(chosen))))
        for day in sorted(chosen):
            days.append(BulkDay(venue, day, tuple(t.symbol for t, need in items
                                                  if need is not None and need <= set(chosen) and day in need)))
        bulked |= set(served)
    single += [t for items in needs.values() for t, _ in items if t.symbol not in bulked]
    order = {t.symbol: i for i, t in enumerate(tasks)}
    single.sort(key=lambda t: order[t.symbol])
    return BulkPlan(tuple(days), tuple(single), tuple(choices))


def _cheapest(items: list[tuple[FetchTask, frozenset[dt.date] | None]], cost: int, max_days: int) -> list[dt.date]:
    """The bulk days (newest first) that make a venue's calls fewest; [] when none helps."""
    wanted = sorted({d for _, need in items if need for d in need}, reverse=True)[:max_days]
    best, best_calls = [], len(items)
    for k in range(1, len(wanted) + 1):
        chosen = set(wanted[:k])
        served = sum(1 for _, need in items if need is not None and need <= chosen)
        calls = k * cost + len(items) - served
        if calls < best_calls:
            best, best_calls = wanted[:k], calls
    return best
