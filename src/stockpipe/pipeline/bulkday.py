"""fetch's exchange-wide days: EODHD's bulk answers, asked before the per-symbol loop.

stages/bulk.py decides per exchange whether one bulk day (100 calls) costs less than a
call per symbol; this module asks for the chosen days (`/api/eod-bulk-last-day/{EX}` with
`date=` the session, plus `type=splits` and `type=dividends` for the same day when
`bulk_actions`), through the provider's client (rate limits, the quota ledger counting
the request's cost of 100, retries) and the fetch loop's concurrency (fetching.py's
`call_concurrently`), archives each answer whole (`raw/eodhd/<day>/<EX>.bulk-<type>.<run>.json.gz`),
and hands the loop, per symbol, its rows of those answers. The loop (fetching.py, the
one loop) then reads, validates and saves every symbol as it does a per-symbol answer;
a symbol a bulk answer lacks (or dates otherwise: a carried-forward bar) is asked on its
own there, and so is every symbol of a bulk request that failed.

`date=` is always sent, the latest session included: a bulk day asked soon after the close
may still be the session before, and a run must get the session it planned.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import StockpipeError
from ..providers import eodhd_lists
from ..providers.base import ParsedDaily, Payload
from ..stages.bulk import BulkDay, BulkPlan, plan_bulk
from ..stages.plan import FetchTask
from ..storage import archive
from .context import Context
from .fetching import Stop, call_concurrently

log = logging.getLogger("stockpipe")


@dataclass(frozen=True)
class Served:
    """What the bulk answers gave, for the loop."""

    rows: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)  # symbol -> its bars (every day it needs)
    actions: Mapping[str, list[tuple[dt.date, str, float]]] = field(default_factory=dict)  # symbol -> splits, dividends
    sources: Mapping[str, str] = field(default_factory=dict)  # symbol -> where its rows came from
    calls: int = 0  # calls spent (each bulk request x its cost), failed ones too
    requests: int = 0  # bulk requests sent
    plan: BulkPlan | None = None

    def payload(self, provider: str, symbol: str) -> Payload | None:
        """The symbol's rows as a payload the vendor's daily parse reads, None when the bulk
        answers did not serve it. Archived already (as part of the whole answer)."""
        rows = self.rows.get(symbol)
        if rows is None:
            return None
        return Payload(provider, symbol, json.dumps(rows).encode(), "application/json", api_calls=0,
                       source=self.sources[symbol], archived=True)


NONE = Served()


def serves_bulk(provider: Any) -> bool:
    """Whether `provider` has exchange-wide days (EODHD over HTTP)."""
    return provider.name == "eodhd" and hasattr(provider, "fetch_exchange")


def serve(ctx: Context, provider: Any, tasks: Sequence[FetchTask]) -> Served:
    """Ask the bulk days that cost less than asking `tasks` one by one; NONE when none do
    (or `bulk_daily` is off, or the provider has none)."""
    if not ctx.settings.bulk_daily or not serves_bulk(provider) or not tasks:
        return NONE
    venue_of = _venues(provider)
    plan = plan_bulk(tasks, venue_of)
    if not plan.days:
        return NONE
    kinds = ("eod", "splits", "dividends") if ctx.settings.bulk_actions else ("eod",)
    requests = [(day, kind) for day in plan.days for kind in kinds]
    served_by_bulk = _needs(plan)
    log.info("%s: %d bulk request(s) for %d exchange day(s) instead of %d per-symbol call(s)", provider.name,
             len(requests), len(plan.days), len(served_by_bulk))
    codes: dict[tuple[str, str], list[FetchTask]] = {}  # (venue, bulk code) -> the tasks it answers
    for task in tasks:
        venue = venue_of(task.symbol)
        if venue is not None:
            codes.setdefault((venue, eodhd_lists.ticker_of(provider.vendor_symbol(task.symbol))), []).append(task)
    got_rows: dict[str, list[dict[str, Any]]] = {}
    actions: dict[str, list[tuple[dt.date, str, float]]] = {}
    calls, stop = 0, Stop()

    def ask(item: tuple[BulkDay, str]) -> Payload:
        day, kind = item
        request = eodhd_lists.bulk_last_day_request(day.venue, day.day, kind)
        return provider.fetch_exchange(day.venue, request, lambda r: _judge(r, day.day, kind))

    for (day, kind), got in call_concurrently(provider, requests, ask, stop):
        if isinstance(got, StockpipeError) or got is None:
            calls += getattr(got, "api_calls", 0)
            log.warning("%s bulk %s for %s %s not used (%s): its symbols are asked one by one", provider.name, kind,
                        day.venue, day.day, got or stop.error)
            continue
        calls += got.api_calls
        _archive(ctx, got, kind, day.day)
        _take(got, day, kind, codes, got_rows, actions)
    rows = {s: r for s, r in got_rows.items() if len(r) == served_by_bulk.get(s, 0)}
    sources = {s: f"{provider.name} eod-bulk-last-day/{_venue(plan, s)} " + ",".join(str(r["date"]) for r in rows[s])
               for s in rows}
    return Served(rows, actions, sources, calls, len(requests), plan)


def _venues(provider: Any):
    def venue_of(symbol: str) -> str | None:
        try:
            return eodhd_lists.exchange_of(provider.vendor_symbol(symbol))
        except ValueError:
            return None

    return venue_of


def _judge(response, day: dt.date, kind: str):
    """The verdict the client needs on an answer (refusals); rows are read by `_take`."""
    from ..providers.wire import Outcome, Parsed

    _, failure = eodhd_lists.bulk_rows(response, day) if kind == "eod" else eodhd_lists.bulk_actions(response, kind)
    return failure or Parsed(Outcome.OK)


def _archive(ctx: Context, payload: Payload, kind: str, day: dt.date) -> None:
    path = archive.archive_path(ctx.settings.raw_dir, payload.provider, ctx.now.date(), payload.symbol, ctx.run_id,
                                payload.media_type, f"bulk-{kind}-{day.isoformat()}")
    archive.write(path, payload.content)


def _take(payload: Payload, day: BulkDay, kind: str, codes: Mapping[tuple[str, str], list[FetchTask]],
          rows: dict[str, list[dict[str, Any]]], actions: dict[str, list[tuple[dt.date, str, float]]]) -> None:
    """Hand each symbol its rows of one bulk answer: a bar to the symbols the day serves, a
    split or dividend to every planned symbol of the exchange whose range holds its date
    (a per-symbol answer carries no actions)."""
    from ..providers.wire import Response

    response = Response(payload.status, payload.headers, payload.content)
    if kind == "eod":
        found, failure = eodhd_lists.bulk_rows(response, day.day)
        serves = set(day.symbols)
        for code, row in ([] if failure else found.items()):
            for task in codes.get((day.venue, code), ()):
                if task.symbol in serves:
                    rows.setdefault(task.symbol, []).append(row)
        return
    found_actions, failure = eodhd_lists.bulk_actions(response, kind)
    for code, listed in ([] if failure else found_actions.items()):
        for task in codes.get((day.venue, code), ()):
            actions.setdefault(task.symbol, []).extend(a for a in listed if task.start <= a[0] <= task.end)


def _needs(plan: BulkPlan) -> dict[str, int]:
    """symbol -> how many bulk days serve it (its rows must all be found)."""
    needs: dict[str, int] = {}
    for day in plan.days:
        for symbol in day.symbols:
            needs[symbol] = needs.get(symbol, 0) + 1
    return needs


def _venue(plan: BulkPlan, symbol: str) -> str:
    return next(d.venue for d in plan.days if symbol in d.symbols)


def with_actions(parsed: ParsedDaily, actions: Sequence[tuple[dt.date, str, float]] | None) -> ParsedDaily:
    """`parsed` with the splits and dividends a bulk answer gave its symbol added."""
    if not actions:
        return parsed
    import pandas as pd

    found = pd.DataFrame({"date": pd.to_datetime([a[0] for a in actions]).astype("datetime64[us]"),
                          "kind": [a[1] for a in actions], "value": [float(a[2]) for a in actions]})
    frames = [f for f in (parsed.actions, found) if f is not None and len(f)]
    merged = pd.concat(frames, ignore_index=True).drop_duplicates(["date", "kind"], keep="last")
    return dataclasses.replace(parsed, actions=merged.reset_index(drop=True))
