"""`fetch`: daily bars and corporate actions, planned from symbol_state, into the lake.

The plan (stages/plan.py) asks each symbol for the sessions it lacks on its own exchange's
calendar; the one fetch loop (fetching.py) calls, archives, reads and saves. A symbol's
payload is parsed by its provider and validated (stages/validate.py): accepted bars go to
prices_daily, corporate actions to corporate_actions, bad rows to rejects. New prices or a
new split/dividend mark the symbol's indicators for recomputation.

Failover: with several providers (`[universe] providers = ["eodhd", "yahoo"]` or
`--provider eodhd,yahoo`), the symbols the first could not serve because it stopped
(refused key, quota spent) or is not entitled go to the next, and so on; run_events
records each attempt with its provider.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Sequence

import pandas as pd

from .. import calendars, logs
from ..config import normalize_symbol
from ..errors import ExitCode
from ..models import DATASETS, StageResult, SymbolOutcome
from ..providers import registry as providers
from ..providers.base import Payload
from ..stages.plan import FetchTask, plan_fetch
from ..stages.validate import accepted_frame, rejected_frame, validate_bars
from ..storage import ledger, state
from .context import Context
from .fetching import Read, Spec, fetch_all, outcome_counts, verdict

PRICES, ACTIONS, INDICATORS, REJECTS = (DATASETS[n] for n in ("prices_daily", "corporate_actions", "indicators_daily",
                                                              "rejects"))
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
                # new prices, or a new split/dividend (which changes the adjusted history), mean
                # the symbol's indicators are recomputed from its whole history
                recompute={PRICES.name: INDICATORS.name, ACTIONS.name: INDICATORS.name},
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
