"""`fetch`: daily bars and corporate actions, planned from symbol_state, into the lake.

The plan (stages/plan.py) asks each symbol for the sessions it lacks on its own exchange's
calendar; the one fetch loop (fetching.py) calls, archives, reads and saves. A symbol's
payload is parsed by its provider and validated (stages/validate.py): accepted bars go to
prices_daily, corporate actions to corporate_actions, bad rows to rejects; transform finds
them in the lake's change feed.

Split basis: a vendor that sends split-adjusted bars (Yahoo) has them put back as traded
by its provider, which says on what basis (ParsedDaily.split_basis: the last day its answer
covered); each bar records it (`prices_daily.split_basis`). When an answer reports a split
that stored bars of the same vendor were fetched short of (basis.restate), those bars are
restated in the same batch, and the symbol's outcome and a WARNING line say so.

Failover: with several providers (`[universe] providers = ["eodhd", "yahoo"]` or
`--provider eodhd,yahoo`), the symbols the first could not serve because it stopped
(refused key, quota spent, unreachable) or is not entitled go to the next, and so on; a
provider that cannot even be built (no key set) hands every symbol on. run_events records
each attempt with its provider; pipeline_runs.provider names the providers that served
symbols; a problem a later provider covered still counts in `warnings` (and `failed_over`
counts the symbols it covered), so a scheduler sees it though the exit code is 0.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import calendars, logs
from ..config import normalize_symbol
from ..errors import ConfigError, ExitCode
from ..models import DATASETS, StageResult, SymbolOutcome
from ..providers import registry as providers
from ..providers.base import Payload
from ..providers.basis import restate
from ..stages.plan import EARLIEST, FetchPlan, FetchTask, plan_fetch
from ..stages.validate import Validated, accepted_frame, rejected_frame, validate_bars
from ..storage import applied, ledger, state
from ..storage.lake import ChangesUnavailableError, Lake
from . import bulkday, forecast, universe
from .context import Context
from .fetching import Read, Spec, fetch_all, outcome_counts, verdict

log = logging.getLogger("stockpipe")

PRICES, ACTIONS, REJECTS = (DATASETS[n] for n in ("prices_daily", "corporate_actions", "rejects"))


@logs.stage("fetch")
def fetch_stage(ctx: Context, start: dt.date | None, end: dt.date | None) -> StageResult:
    """Plan, call the provider(s), archive, parse, validate, and save to the lake."""
    settings = ctx.settings
    exchange_of = calendars.exchange_resolver(settings.exchanges)
    chain = list(settings.providers or (settings.provider,))
    provider, covered = _first_provider(ctx, chain)
    chain = chain[chain.index(provider.name):] if provider.name in chain else chain
    try:
        listed = provider.symbols()
        reconcile(ctx)
        if listed is None:  # an API: ask only for what symbol_state says is missing
            symbols = universe.symbols(ctx)  # with [universe] exchanges: their listed symbols
            with ctx.engine.connect() as conn:
                known = state.read_states(conn, PRICES.name, symbols)
                left = forecast.quota_left(conn, settings, provider.name, ctx.now)
            plan = plan_fetch(symbols, known, ctx.now, settings.history_days, exchange_of, start, end,
                              forecast.restate_sessions(settings, provider.name), settings.max_consecutive_failures)
            forecast.announce(settings, provider.name, plan, left, ctx.now)
            for symbol, last, latest in plan.ahead:
                log.warning("%s: symbol_state says its bars run to %s, after the latest closed session %s (the clock "
                            "went back?): nothing fetched; `stockpipe fetch --symbol %s --start DATE` resets it",
                            symbol, last, latest, symbol)
        else:  # a file source: import all it holds; the lake's merge skips what is there
            listed = [normalize_symbol(s, f"the symbols {provider.name} listed") for s in listed]  # every source
            symbols = ctx.mine(settings.symbols if settings.universe_source == "command line" else listed)
            plan = plan_fetch(symbols, {}, ctx.now, settings.history_days, exchange_of, start or EARLIEST, end)
            chain = chain[:1]
        last, problems, calls, bulk = _over_chain(ctx, provider, chain, plan.tasks)
    finally:
        provider.close()
    outcomes = [last[t.symbol] for t in plan.tasks if t.symbol in last]
    # every call made counts, a failed one too and one a later provider's outcome replaced,
    # and an exchange-wide bulk request at its cost (bulkday.py)
    counts = {**outcome_counts(len(plan.tasks), outcomes, up_to_date=len(plan.current)), "api_calls": calls,
              **forecast.plan_counts(plan)}
    if bulk:
        counts["bulk_requests"] = bulk
    _record_servers(ctx, outcomes)
    if not plan.tasks:
        return StageResult("fetch", ExitCode.NOTHING_TO_DO, counts, (), message=_nothing(plan))
    return _covered(_unreachable(verdict("fetch", len(plan.tasks), counts, outcomes)), [*covered, *problems], outcomes)


def _nothing(plan: FetchPlan) -> str:
    if not plan.skipped:
        return "every symbol is up to date"
    return (f"every symbol is up to date or skipped; {len(plan.skipped)} skipped after failing "
            f"{'' if len(plan.skipped) == 1 else 'each '}too many times in a row (first {plan.skipped[0]}): "
            "`stockpipe reset SYMBOL` or `stockpipe reset --all-skipped` to fetch again")


@dataclass
class _Problem:
    """A provider of the chain that failed symbols a later one may cover."""

    provider: str
    message: str
    symbols: frozenset[str]


def _first_provider(ctx: Context, chain: Sequence[str]):
    """The first provider of the chain that can be built, and the problems of those before
    it (a provider without a key hands every symbol on). The last one's error is raised.

    Raises:
        ConfigError: no provider of the chain can be built (the last one's reason).
    """
    problems = []
    for position, name in enumerate(chain):
        try:
            return _open(ctx, name), problems
        except ConfigError as exc:
            if position == len(chain) - 1:
                raise
            log.warning("%s; failing over to %s", exc, chain[position + 1])
            problems.append(_Problem(name, str(exc), frozenset()))  # every symbol: filled in by _covered
    raise ConfigError("no provider named: set --provider")  # unreachable: the chain is never empty


def _open(ctx: Context, name: str):
    return providers.create(name, ctx.settings, ctx.clock, ledger=ledger.opener(ctx.engine))


def _over_chain(ctx: Context, first, chain: Sequence[str], tasks: Sequence[FetchTask]):
    """Fetch `tasks` with each provider of the chain in turn (`first` already open), the next
    one taking what the one before handed over. Returns (symbol -> its last outcome,
    problems a later provider may have covered, the calls every provider made, the bulk
    requests among them)."""
    last: dict[str, SymbolOutcome] = {}
    problems: list[_Problem] = []
    calls = bulk = 0
    for position, name in enumerate(chain):
        try:
            provider = first if not position else _open(ctx, name)
        except ConfigError as exc:
            problems.append(_Problem(name, str(exc), frozenset(t.symbol for t in tasks)))
            continue
        try:
            served = bulkday.serve(ctx, provider, tasks)  # exchange-wide days where they cost less
            fetched = fetch_all(ctx, provider, tasks, _spec(ctx, provider, served))
        finally:
            if position:
                provider.close()
        last.update((o.symbol, o) for o in fetched.outcomes)
        calls += sum(o.api_calls for o in fetched.outcomes) + served.calls
        bulk += served.requests
        failed = [o for o in fetched.outcomes if o.symbol in fetched.handover and o.status == "failed"]
        if failed and position < len(chain) - 1:  # what it failed and what it then deferred
            problems.append(_Problem(name, failed[0].message, frozenset(fetched.handover)))
        tasks = [t for t in tasks if t.symbol in fetched.handover]
        if not tasks:
            break
    return last, problems, calls, bulk


def _covered(result: StageResult, problems: Sequence[_Problem], outcomes: Sequence[SymbolOutcome]) -> StageResult:
    """`result` with the problems a later provider covered counted (`warnings`, `failed_over`)
    and said in its message, so a covered refusal is not only a WARNING line."""
    served = {o.symbol: o.provider for o in outcomes if o.status in ("ok", "no_data")}
    said, moved = [], set()
    for problem in problems:
        symbols = {s for s, by in served.items()
                   if by != problem.provider and (not problem.symbols or s in problem.symbols)}
        if symbols:
            said.append(f"{problem.message}: {len(symbols)} symbol(s) failed over to "
                        f"{', '.join(sorted({served[s] for s in symbols}))}")
            moved |= symbols
    if not said:
        return result
    counts = {**result.counts, "warnings": len(said), "failed_over": len(moved)}
    message = "; ".join(filter(None, [result.message, *said]))
    return StageResult(result.stage, result.exit_code, counts, result.outcomes, result.checks, message)


def _unreachable(result: StageResult) -> StageResult:
    """Exit 5 (unavailable) when a provider was unreachable and no symbol was served: the
    vendor is down, not the symbols; its message leads."""
    down = [o for o in result.outcomes if o.exit_code == ExitCode.UNAVAILABLE and o.status == "failed"]
    if not down or any(o.status in ("ok", "no_data") for o in result.outcomes):
        return result
    deferred = sum(o.status == "skipped" for o in result.outcomes)
    message = down[0].message + (f"; {deferred} symbol(s) deferred to the next run" if deferred else "")
    return StageResult(result.stage, ExitCode.UNAVAILABLE, result.counts, result.outcomes, result.checks, message)


def _record_servers(ctx: Context, outcomes: Sequence[SymbolOutcome]) -> None:
    """pipeline_runs.provider: the providers that served symbols, in chain order (the first
    configured one when none did)."""
    served = [o.provider for o in outcomes if o.status in ("ok", "no_data") and o.provider]
    if served:
        with ctx.engine.begin() as conn:
            state.set_run_provider(conn, ctx.invocation, ",".join(dict.fromkeys(served)))


# ------------------------------------------------------------------------ the loop's spec


@dataclass(frozen=True)
class _Bars:
    """One symbol's validated bars and the split basis they were fetched on."""

    checked: Validated
    split_basis: dt.date | None


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


def _spec(ctx: Context, provider, served: bulkday.Served = bulkday.NONE) -> Spec:
    def call(task: FetchTask) -> list[Payload]:
        sliced = served.payload(provider.name, task.symbol)  # its rows of a bulk day's answer
        return [sliced if sliced is not None else provider.fetch_daily(task.symbol, task.start, task.end)]

    def read(task: FetchTask, payloads: list[Payload]) -> Read:
        parsed = bulkday.with_actions(provider.parse_daily(payloads[0], task.start, task.end),
                                      served.actions.get(task.symbol))
        checked = validate_bars(task.symbol, parsed.bars, provider=provider.name, run_id=ctx.run_id, now=ctx.now,
                                latest_session=calendars.latest_closed_session(ctx.now, task.exchange),
                                parser_rejects=parsed.rejected)
        # built per batch (Spec.build): the prices with their basis, and any restated bars
        frames: dict[str, Any] = {PRICES.name: [_Bars(checked, parsed.split_basis)], REJECTS.name: checked}
        note = payloads[0].source if payloads[0].archived else ""  # "eodhd eod-bulk-last-day/US 2026-12-04"
        if parsed.split_basis is not None and not task.backfill:
            stored = Lake(ctx.settings.lake_dir).read_frame(PRICES, [task.symbol])
            restated = restate(stored[stored["provider"] == provider.name], parsed.actions, task.start)
            if len(restated):
                frames[PRICES.name].append(restated)
                note = _restated(task.symbol, provider.name, restated, parsed.actions)
        if len(parsed.actions):
            frames[ACTIONS.name] = _actions(task.symbol, parsed.actions, provider.name, ctx.now)
        success: dict[str, Any] = {"currency": parsed.currency} if parsed.currency else {}
        if checked.rows:
            dates = checked.columns["date"]
            success["span"] = (pd.Timestamp(dates.min()).date(), pd.Timestamp(dates.max()).date())
        return Read(frames, checked.rows, len(checked.rejects), note, state=success)

    return Spec("fetch", PRICES.name, (PRICES.name, ACTIONS.name, REJECTS.name), call, read,
                on_success=_held, build={PRICES.name: _prices, REJECTS.name: rejected_frame})


def _prices(parts: list[list[Any]]) -> pd.DataFrame:
    """A batch's prices_daily frame: the validated bars with each symbol's split basis, then
    the restated stored bars."""
    bars = [p for part in parts for p in part if isinstance(p, _Bars)]
    frame = accepted_frame([b.checked for b in bars])
    basis = np.array([b.split_basis for b in bars], dtype="datetime64[D]")
    frame["split_basis"] = np.repeat(basis, [b.checked.rows for b in bars]).astype("datetime64[us]")
    restated = [p for part in parts for p in part if isinstance(p, pd.DataFrame)]
    return pd.concat([frame, *(r[frame.columns] for r in restated)], ignore_index=True) if restated else frame


def _restated(symbol: str, provider: str, restated: pd.DataFrame, actions: pd.DataFrame) -> str:
    """The outcome's note (and a WARNING line) for bars restated after a split."""
    splits = actions[actions["kind"] == "split"]
    named = ", ".join(f"{row.value:g}:1 of {row.date:%Y-%m-%d}" for row in splits.itertuples(index=False))
    first, latest = pd.Timestamp(restated["date"].min()), pd.Timestamp(restated["date"].max())
    note = (f"{len(restated)} stored bar(s) {first:%Y-%m-%d}..{latest:%Y-%m-%d} restated: {provider} had "
            f"adjusted them for a split their split basis did not undo ({named})")
    log.warning("%s: %s", symbol, note)
    return note


def _held(task: FetchTask, known: Mapping[str, Any], read: Read) -> dict[str, Any]:
    """A success's symbol_state: the span held, the currency, and a refetched gap cleared."""
    kept = () if task.reset else (known.get("first_date"), known.get("last_date"))  # a future last_date is wrong
    seen = [d for d in (*kept, *read.state.get("span", ())) if d]
    row = {"first_date": min(seen, default=None), "last_date": max(seen, default=None)}
    if "currency" in read.state:  # as the vendor states it (GBp = pence)
        row["currency"] = read.state["currency"]
    refetch = known.get("refetch_from")
    if refetch is not None and task.start <= refetch <= task.end:  # the gap was asked for: done
        row["refetch_from"] = None
    if known.get("needs_reprocess") and task.backfill:  # the full reload `reset` asked for is in
        row["needs_reprocess"] = False
    return row


def _actions(symbol: str, actions: pd.DataFrame, provider: str, now: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, **{c: actions[c].to_numpy() for c in ("date", "kind", "value")},
                         "provider": provider, "fetched_at": pd.Timestamp(now)}, columns=ACTIONS.column_names)
