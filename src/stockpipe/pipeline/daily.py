"""`fetch`: daily bars and corporate actions, planned from symbol_state, into the lake.

The plan (stages/plan.py) asks each symbol for the sessions it lacks on its own exchange's
calendar; the one fetch loop (fetching.py) calls, archives, reads and saves. A symbol's
payload is parsed by its provider and validated (stages/validate.py): accepted bars go to
prices_daily, corporate actions to corporate_actions, bad rows to rejects; transform finds
them in the lake's change feed.

Failover: with several providers (`[universe] providers = ["eodhd", "yahoo"]` or
`--provider eodhd,yahoo`), the symbols the first could not serve because it stopped
(refused key, quota spent) or is not entitled go to the next, and so on; run_events
records each attempt with its provider.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Sequence

import pandas as pd
import pyarrow as pa

from .. import calendars, logs
from ..config import normalize_symbol
from ..errors import ExitCode
from ..models import DATASETS, StageResult, SymbolOutcome
from ..providers import registry as providers
from ..providers.base import Payload
from ..stages.plan import FetchTask, plan_fetch
from ..stages.validate import accepted_frame, rejected_frame, validate_bars
from ..storage import applied, ledger, state
from ..storage.lake import ChangesUnavailableError, Lake
from .context import Context
from .fetching import Read, Spec, fetch_all, outcome_counts, verdict

PRICES, ACTIONS, REJECTS = (DATASETS[n] for n in ("prices_daily", "corporate_actions", "rejects"))
EARLIEST = dt.date(1900, 1, 1)


@logs.stage("fetch")
def fetch_stage(ctx: Context, start: dt.date | None, end: dt.date | None) -> StageResult:
    """Plan, call the provider(s), archive, parse, validate, and save to the lake."""
    settings = ctx.settings
    exchange_of = calendars.exchange_resolver(settings.exchanges)
    chain = list(settings.providers or (settings.provider,))
    provider = providers.create(chain[0], settings, ctx.clock, ledger=ledger.opener(ctx.engine))
    try:
        listed = provider.symbols()
        reconcile(ctx)
        if listed is None:  # an API: ask only for what symbol_state says is missing
            symbols = ctx.mine(settings.symbols)
            with ctx.engine.connect() as conn:
                known = state.read_states(conn, PRICES.name, symbols)
            plan = plan_fetch(symbols, known, ctx.now, settings.history_days, exchange_of, start, end)
        else:  # a file source: import all it holds; the lake's merge skips what is there
            listed = [normalize_symbol(s, f"the symbols {provider.name} listed") for s in listed]  # every source
            symbols = ctx.mine(settings.symbols if settings.universe_source == "command line" else listed)
            plan = plan_fetch(symbols, {}, ctx.now, settings.history_days, exchange_of, start or EARLIEST, end)
            chain = chain[:1]
        last: dict[str, SymbolOutcome] = {}
        tasks: Sequence[FetchTask] = plan.tasks
        for position, name in enumerate(chain):
            if position:
                provider.close()
                provider = providers.create(name, settings, ctx.clock, ledger=ledger.opener(ctx.engine))
            fetched = fetch_all(ctx, provider, tasks, _spec(ctx, provider))
            last.update((o.symbol, o) for o in fetched.outcomes)
            tasks = [t for t in tasks if t.symbol in fetched.handover]
            if not tasks:
                break
    finally:
        provider.close()
    outcomes = [last[t.symbol] for t in plan.tasks if t.symbol in last]
    counts = outcome_counts(len(plan.tasks), outcomes, up_to_date=len(plan.current))
    if not plan.tasks:
        return StageResult("fetch", ExitCode.NOTHING_TO_DO, counts, (), message="every symbol is up to date")
    return verdict("fetch", len(plan.tasks), counts, outcomes)


def reconcile(ctx: Context) -> None:
    """Bring symbol_state's first/last dates in line with the lake before planning.

    fetch commits bars to the lake, then symbol_state with the planner's watermark (the lake
    version it reflects, in lake_applied). A kill in between, a new or rebuilt warehouse, or
    a lake table that was replaced leaves the two apart; this reads what the lake gained since
    the watermark (its change feed), or its whole snapshot when the watermark says nothing
    about this table, so no symbol is fetched twice and none is planned on data that is gone.
    """
    lake, consumer = Lake(ctx.settings.lake_dir), ctx.consumer("plan")
    version, table_id = lake.version(PRICES), lake.identity(PRICES)
    with ctx.engine.connect() as conn:
        done = applied.read(conn, consumer, PRICES.name)
    if version is None and done is None or done == applied.Applied(table_id, version):
        return
    spans, replace = _held_spans(lake, done, table_id, version)
    with ctx.engine.begin() as conn:
        known = state.read_states(conn, PRICES.name, ctx.mine(spans)) if not replace else {}
        symbols = ctx.mine(set(spans) | (set(state.held_symbols(conn, PRICES.name)) if replace else set()))
        rows = [_reconciled(s, spans.get(s), known.get(s, {})) for s in symbols]
        state.save_states(conn, rows)
        if version is None:
            applied.forget(conn, consumer, PRICES.name)
        else:
            applied.save(conn, consumer, PRICES.name, applied.Applied(table_id, version), ctx.now)


def _held_spans(lake: Lake, done, table_id, version) -> tuple[dict[str, tuple[dt.date, dt.date]], bool]:
    """(symbol -> first/last date the lake gained, whether that is the whole truth)."""
    if version is None:
        return {}, True
    if done is not None and done.table_id == table_id:
        try:
            feed = lake.changes(PRICES, done.version, version)
            kinds = feed["_change_type"].to_pylist()
            rows = feed.filter(pa.array([k in ("insert", "update_postimage") for k in kinds], pa.bool_()))
            return _spans_of(rows), False
        except ChangesUnavailableError:
            pass
    return _spans_of(lake.read(PRICES, columns=["symbol", "date"])), True


def _spans_of(rows: pa.Table) -> dict[str, tuple[dt.date, dt.date]]:
    spans = rows.select(["symbol", "date"]).group_by("symbol").aggregate([("date", "min"), ("date", "max")])
    return {s: (lo, hi) for s, lo, hi in zip(*(spans[c].to_pylist() for c in ("symbol", "date_min", "date_max")))}


def _reconciled(symbol: str, span, known: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"symbol": symbol, "dataset": PRICES.name}
    if span is None:  # the lake holds nothing of it (any more)
        return row | {"first_date": None, "last_date": None}
    seen = [d for d in (known.get("first_date"), known.get("last_date"), *span) if d]
    return row | {"first_date": min(seen), "last_date": max(seen)}


def _spec(ctx: Context, provider) -> Spec:
    def call(task: FetchTask) -> list[Payload]:
        return [provider.fetch_daily(task.symbol, task.start, task.end)]

    def read(task: FetchTask, payloads: list[Payload]) -> Read:
        parsed = provider.parse_daily(payloads[0], task.start, task.end)
        checked = validate_bars(task.symbol, parsed.bars, provider=provider.name, run_id=ctx.run_id, now=ctx.now,
                                latest_session=calendars.latest_closed_session(ctx.now, task.exchange),
                                parser_rejects=parsed.rejected)
        frames: dict[str, Any] = {PRICES.name: checked, REJECTS.name: checked}  # built per batch (Spec.build)
        if len(parsed.actions):
            frames[ACTIONS.name] = _actions(task.symbol, parsed.actions, provider.name, ctx.now)
        success: dict[str, Any] = {"currency": parsed.currency} if parsed.currency else {}
        if checked.rows:
            dates = checked.columns["date"]
            success["span"] = (pd.Timestamp(dates.min()).date(), pd.Timestamp(dates.max()).date())
        return Read(frames, checked.rows, len(checked.rejects), state=success)

    return Spec("fetch", PRICES.name, (PRICES.name, ACTIONS.name, REJECTS.name), call, read,
                on_success=_held, build={PRICES.name: accepted_frame, REJECTS.name: rejected_frame})


def _held(task: FetchTask, known: Mapping[str, Any], read: Read) -> dict[str, Any]:
    """A success's symbol_state: the span held, the currency, and a refetched gap cleared."""
    seen = [d for d in (known.get("first_date"), known.get("last_date"), *read.state.get("span", ())) if d]
    row = {"first_date": min(seen, default=None), "last_date": max(seen, default=None)}
    if "currency" in read.state:  # as the vendor states it (GBp = pence)
        row["currency"] = read.state["currency"]
    refetch = known.get("refetch_from")
    if refetch is not None and task.start <= refetch <= task.end:  # the gap was asked for: done
        row["refetch_from"] = None
    return row


def _actions(symbol: str, actions: pd.DataFrame, provider: str, now: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, **{c: actions[c].to_numpy() for c in ("date", "kind", "value")},
                         "provider": provider, "fetched_at": pd.Timestamp(now)}, columns=ACTIONS.column_names)
