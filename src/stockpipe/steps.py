"""The stages of a run, each joining one pure stage to the lake, the warehouse and state.

Kept apart from `pipeline.py` so that `health-check` and `--help` never import pandas.
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import pandas as pd

from . import calendars, logs
from .config import normalize_symbol
from .errors import ExitCode, NotAsked, StockpipeError, StopsProvider
from .models import DATASETS, SymbolOutcome, StageResult
from .pipeline import Context
from .providers import registry as providers
from .providers.base import Payload
from .stages.indicators import compute_indicators
from .stages.plan import FetchTask, plan_fetch
from .stages.quality import evaluate
from .stages.validate import Validated, accepted_frame, rejected_frame, validate_bars
from .storage import archive, ledger, state, warehouse
from .storage.lake import Lake

log = logging.getLogger("stockpipe")

PRICES, ACTIONS, INDICATORS, REJECTS = (DATASETS[n] for n in ("prices_daily", "corporate_actions", "indicators_daily", "rejects"))
QUOTES, QUOTES_DAILY = DATASETS["quotes"], DATASETS["quotes_daily"]
LOAD_ORDER = (PRICES, ACTIONS, INDICATORS, REJECTS, QUOTES, QUOTES_DAILY, DATASETS["prices_intraday"])
SYMBOLS_PER_CHUNK = 2000  # transform/load work on this many symbols' histories at a time
EARLIEST = dt.date(1900, 1, 1)


def _chunks(items: Sequence[str], size: int = SYMBOLS_PER_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --------------------------------------------------------------------------- fetch


@dataclass
class _Batch:
    """Fetched symbols not yet saved; flushed to the lake and state every `batch_rows`."""

    tasks: list[FetchTask] = field(default_factory=list)
    checked: list[Validated] = field(default_factory=list)  # accepted rows and rejects, per symbol
    actions: list[pd.DataFrame] = field(default_factory=list)  # only symbols that have some
    outcomes: list[SymbolOutcome] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)  # not asked: the provider stopped
    handover: set[str] = field(default_factory=set)  # another provider may serve these
    currency: dict[str, str] = field(default_factory=dict)  # as the vendor states it (GBp = pence)
    provider: str = ""
    spans: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)  # first/last accepted date
    rows: int = 0


@logs.stage("fetch")
def fetch_stage(ctx: Context, start: dt.date | None, end: dt.date | None) -> StageResult:
    """Plan, call the provider(s), archive, parse, validate, and save to the lake.

    Failover: with several providers (`[universe] providers = ["eodhd", "yahoo"]` or
    `--provider eodhd,yahoo`), the symbols the first could not serve because it stopped
    (refused key, quota spent) or is not entitled go to the next, and so on; run_events
    records each attempt with its provider.
    """
    from .calendars import exchange_resolver  # each symbol is planned on its own exchange's calendar

    settings = ctx.settings
    exchange_of = exchange_resolver(settings.exchanges)
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
            outcomes, handover = _fetch_all(ctx, provider, tasks)
            last.update((o.symbol, o) for o in outcomes)
            tasks = [t for t in tasks if t.symbol in handover]
            if not tasks:
                break
    finally:
        provider.close()
    return _fetch_result(plan.tasks, plan.current, [last[t.symbol] for t in plan.tasks if t.symbol in last])


def _fetch_all(ctx: Context, provider, tasks: Sequence[FetchTask]) -> tuple[list[SymbolOutcome], set[str]]:
    """Fetch every task (concurrently when the provider allows), saving in batches.

    A terminal answer for the provider (bad key, quota spent) stops all further calls at
    once; the symbols not yet asked for are recorded as deferred and come first next run.
    Returns the outcomes and the symbols another provider may serve (deferred, or failed
    because this provider stopped or is not entitled).
    """
    outcomes: list[SymbolOutcome] = []
    handover: set[str] = set()
    batch = _Batch(provider=provider.name)
    stop = _Stop()
    # The raw archive (gzip and a file per payload) is written by its own thread, off the
    # fetch pool's way to its next call and off the parsing thread; gzip and file writes
    # release the GIL. _fetch_one waits for it before parsing.
    archiver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive")

    def daily(task: FetchTask) -> _Fetched:
        payload = provider.fetch_daily(task.symbol, task.start, task.end)
        return _Fetched(payload, archiver.submit(_archive, ctx, payload))

    try:
        for done, (task, got) in enumerate(call_concurrently(provider, tasks, daily, stop), start=1):
            _fetch_one(ctx, provider, task, got, batch, stop)
            ctx.progress("fetch", done, len(tasks))
            if batch.rows >= ctx.settings.batch_rows:
                outcomes += _flush(ctx, batch)
                handover |= batch.handover
                batch = _Batch(provider=provider.name)
    finally:
        archiver.shutdown(wait=True)
    outcomes += _flush(ctx, batch)
    return outcomes, handover | batch.handover


@dataclass(frozen=True)
class _Fetched:
    """A payload as received and the archiving of it (done before anything parses it)."""

    payload: Payload
    archived: Future


class _Stop:
    """Set once a provider answered something terminal; later calls are not made."""

    def __init__(self) -> None:
        self.error: StockpipeError | None = None

    def check(self, exc: StockpipeError) -> None:
        if isinstance(exc, StopsProvider) and self.error is None:
            self.error = exc


def call_concurrently(provider, items: Sequence, call: Callable, stop: _Stop) -> Iterator[tuple[object, object]]:
    """(item, call(item) | error | None) in item order; None = not asked (provider stopped,
    or a NotAsked error: stopped by the quota before the vendor answered).

    Calls run on a thread pool sized from the provider's rate limits (its client blocks
    to keep them); parsing and saving stay in the caller's thread.
    """
    def ask(item):
        if stop.error is not None:
            return item, None
        try:
            return item, call(item)
        except StockpipeError as exc:
            stop.check(exc)
            # Stopped before the vendor answered (a spent quota ledger): not asked, so deferred.
            return item, None if isinstance(exc, NotAsked) else exc

    workers = max(1, provider.concurrency)
    if workers == 1 or len(items) < 2:
        yield from map(ask, items)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fetch-{provider.name}")
    try:
        yield from pool.map(logs.carry(ask), items)  # workers log with the run's run_id and stage
    finally:  # Ctrl-C or a crash: make no calls that have not started
        stop.error = stop.error or StockpipeError("the fetch was interrupted")
        pool.shutdown(wait=True, cancel_futures=True)


def _fetch_one(ctx: Context, provider, task: FetchTask, got: object, batch: _Batch, stop: _Stop) -> None:
    batch.tasks.append(task)
    if got is None:
        reason = f"deferred: {provider.name} stopped ({stop.error})"
        batch.deferred[task.symbol] = reason
        batch.handover.add(task.symbol)
        batch.outcomes.append(SymbolOutcome(task.symbol, "fetch", "skipped", 0, 0, reason, provider.name,
                                            int(ExitCode.PARTIAL)))
        return
    try:
        if isinstance(got, StockpipeError):
            raise got
        got.archived.result()  # the raw payload is on disk before anything parses it
        payload = got.payload
        parsed = provider.parse_daily(payload, task.start, task.end)
        checked = validate_bars(task.symbol, parsed.bars, provider=provider.name, run_id=ctx.run_id, now=ctx.now,
                                latest_session=calendars.latest_closed_session(ctx.now, task.exchange),
                                parser_rejects=parsed.rejected)
    except StockpipeError as exc:
        stop.check(exc)
        if isinstance(exc, StopsProvider):
            batch.handover.add(task.symbol)
        batch.errors[task.symbol] = str(exc)
        batch.outcomes.append(SymbolOutcome(task.symbol, "fetch", "failed", 0, 0, str(exc), provider.name,
                                            int(exc.exit_code)))
        return
    batch.checked.append(checked)
    if len(parsed.actions):
        batch.actions.append(_actions(task.symbol, parsed.actions, provider.name, ctx.now))
    batch.rows += checked.rows
    if parsed.currency:
        batch.currency[task.symbol] = parsed.currency
    if checked.rows:
        dates = checked.columns["date"]
        batch.spans[task.symbol] = (pd.Timestamp(dates.min()).date(), pd.Timestamp(dates.max()).date())
    status = "ok" if checked.rows else "no_data"
    note = f"{len(checked.rejects)} row(s) rejected" if checked.rejects else ""
    batch.outcomes.append(SymbolOutcome(task.symbol, "fetch", status, checked.rows, payload.api_calls,
                                        note, provider.name))


def _actions(symbol: str, actions: pd.DataFrame, provider: str, now: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, **{c: actions[c].to_numpy() for c in ("date", "kind", "value")},
                         "provider": provider, "fetched_at": pd.Timestamp(now)}, columns=ACTIONS.column_names)


def _archive(ctx: Context, payload) -> None:
    """Keep the payload exactly as received (storage/archive.py); runs on the fetch's archive
    thread, since gzip and file writes release the GIL."""
    archive.write(archive.archive_path(ctx.settings.raw_dir, payload.provider, ctx.now.date(), payload.symbol,
                                       ctx.run_id, payload.media_type), payload.content)


def _flush(ctx: Context, batch: _Batch) -> list[SymbolOutcome]:
    """Save a batch: lake first, then state, so a crash in between only refetches."""
    if not batch.tasks:
        return []
    lake = Lake(ctx.settings.lake_dir)
    changed = {ds.name: lake.merge(ds, frame).changed  # one frame per dataset and batch, not per symbol
               for ds, frame in ((PRICES, accepted_frame(batch.checked)), (ACTIONS, _concat(batch.actions, ACTIONS)),
                                 (REJECTS, rejected_frame(batch.checked)))}
    with ctx.engine.begin() as conn:
        known = state.read_states(conn, PRICES.name, [t.symbol for t in batch.tasks])
        state.save_states(conn, [_state_row(ctx, t, known.get(t.symbol, {}), batch) for t in batch.tasks])
        for name, symbols in changed.items():
            if symbols:
                state.bump_versions(conn, name, symbols)
        # New prices, or a new split/dividend (which changes the adjusted history), mean
        # the symbol's indicators are recomputed from its whole history.
        state.save_states(conn, [{"symbol": s, "dataset": INDICATORS.name, "needs_reprocess": True}
                                 for s in sorted(set(changed[PRICES.name]) | set(changed[ACTIONS.name]))])
        state.record_events(conn, ctx.run_id, batch.outcomes, ctx.now)
    logs.outcomes(batch.outcomes)  # one log line per symbol, once committed (failures at WARNING)
    return batch.outcomes


def _concat(frames: list[pd.DataFrame], dataset) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=dataset.column_names)


def _state_row(ctx: Context, task: FetchTask, known: dict, batch: _Batch) -> dict:
    row = {"symbol": task.symbol, "dataset": PRICES.name, "last_attempt_at": ctx.now,
           "provider": batch.provider or ctx.settings.provider,
           "currency": batch.currency.get(task.symbol, known.get("currency"))}
    if task.symbol in batch.deferred:  # not this symbol's failure: no failure counted
        return row | {"last_error": batch.deferred[task.symbol][:500], "first_date": known.get("first_date"),
                      "last_date": known.get("last_date")}
    if task.symbol in batch.errors:
        return row | {"consecutive_failures": known.get("consecutive_failures", 0) + 1,
                      "last_error": batch.errors[task.symbol][:500],
                      "first_date": known.get("first_date"), "last_date": known.get("last_date")}
    seen = [d for d in (known.get("first_date"), known.get("last_date"), *batch.spans.get(task.symbol, ())) if d]
    refetch = known.get("refetch_from")
    if refetch is not None and task.start <= refetch <= task.end:  # the gap was asked for: done
        row["refetch_from"] = None
    return row | {"consecutive_failures": 0, "last_error": None, "last_success_at": ctx.now,
                  "first_date": min(seen, default=None), "last_date": max(seen, default=None)}


def _fetch_result(tasks, current, outcomes: list[SymbolOutcome]) -> StageResult:
    """Counts and the exit code of a fetch.

    0 when every planned symbol was fetched; 99 when nothing was planned; 4 when the
    provider refused the key; the one cause's code when every symbol failed for the same
    reason (e.g. 65 for one bad CSV file); 3 (partial) otherwise.
    """
    failed = [o for o in outcomes if o.status == "failed"]
    deferred = [o for o in outcomes if o.status == "skipped"]
    counts = {"planned": len(tasks), "ok": len(outcomes) - len(failed) - len(deferred), "failed": len(failed),
              "deferred": len(deferred), "skipped": len(current), "rows_fetched": sum(o.rows for o in outcomes),
              "rows_rejected": sum(int(o.message.split()[0]) for o in outcomes if o.message.endswith("rejected")),
              "api_calls": sum(o.api_calls for o in outcomes)}
    if not tasks:
        return StageResult("fetch", ExitCode.NOTHING_TO_DO, counts, (), message="every symbol is up to date")
    return fetch_verdict("fetch", len(tasks), counts, outcomes)


def fetch_verdict(stage: str, planned: int, counts: dict[str, int], outcomes: list[SymbolOutcome]) -> StageResult:
    """The exit code and message of a fetch-like stage from its per-symbol outcomes (see _fetch_result)."""
    failed = [o for o in outcomes if o.status == "failed"]
    deferred = [o for o in outcomes if o.status == "skipped"]
    if not failed and not deferred:
        return StageResult(stage, ExitCode.OK, counts, tuple(outcomes))
    if not failed:
        return StageResult(stage, ExitCode.PARTIAL, counts, tuple(outcomes), message=deferred[0].message)
    codes = {o.exit_code for o in failed}
    message = failed[0].message if len(failed) == 1 else (
        f"{len(failed)} of {planned} symbol(s) failed; first: {failed[0].symbol}: {failed[0].message}")
    if deferred:
        message += f"; {len(deferred)} deferred to the next run"
    if ExitCode.CONFIG in codes:  # the provider refused the key: a person must act
        code = ExitCode.CONFIG
    elif len(failed) == planned and len(codes) == 1:  # nothing succeeded, one cause
        code = codes.pop()
    else:
        code = ExitCode.PARTIAL
    return StageResult(stage, code, counts, tuple(outcomes), message=message)


# ----------------------------------------------------------------------- transform


@logs.stage("transform")
def transform_stage(ctx: Context) -> StageResult:
    """Recompute adjustment spans and indicators, from the whole history, for symbols whose
    prices or corporate actions changed (stages/adjust.py holds the conventions).

    Per chunk of symbols:
    - spans derived from prices + corporate_actions *replace* the symbols' spans in the lake
      (`Lake.replace`): a new split changes every earlier span, so none may stay stale;
      symbols whose spans changed get their `adjustments` lake_version bumped, and load
      replaces them in the warehouse, where the view prices_daily_adjusted applies them
      (full adjustment: splits and dividends);
    - indicators are computed on split-adjusted prices (a 10:1 split is not a -90% day);
    - the vendor's own adj_close, where sent, is kept as it is and compared with our full
      adjustment: counts adj_close_symbols_compared and adj_close_max_rel_diff_ppm (the
      worst symbol), and each symbol's outcome says how far it is; unusable actions are
      counted (actions_ignored) and named in the outcome.
    needs_reprocess is cleared only once the lake holds both, so a crash redoes the chunk.
    """
    from .stages.adjust import adjustment_spans, apply_adjustments, unusable_actions, vendor_divergence

    adjustments = DATASETS["adjustments"]
    with ctx.engine.connect() as conn:
        pending = ctx.mine(sorted(set(state.symbols_where(conn, INDICATORS.name, "reprocess"))
                                  | set(state.symbols_where(conn, adjustments.name, "reprocess"))))
    lake, outcomes = Lake(ctx.settings.lake_dir), []
    counts = dict.fromkeys(("indicators_written", "adjustments_written", "actions_ignored",
                            "adj_close_symbols_compared", "adj_close_max_rel_diff_ppm"), 0)

    def notes(spans: pd.DataFrame, divergence: pd.DataFrame, ignored: pd.DataFrame) -> dict[str, str]:
        out: dict[str, list[str]] = {}
        for symbol, n in spans["symbol"].value_counts().items():
            out.setdefault(symbol, []).append(f"{n} adjustment span(s)")
        for row in divergence.itertuples(index=False):  # one row per symbol, not per bar
            out.setdefault(row.symbol, []).append(
                f"vendor adj_close within {row.max_rel_diff * 1e6:.0f} ppm of ours over {row.compared} bar(s)"
                f" (worst {row.max_at:%Y-%m-%d})")
        for symbol, group in ignored.groupby("symbol"):
            first = group.iloc[0]
            out.setdefault(symbol, []).append(
                f"{len(group)} corporate action(s) ignored, first {first['date']:%Y-%m-%d} {first['kind']} "
                f"{first['value']:g}: {first['reason']}")
        return {symbol: "; ".join(parts) for symbol, parts in out.items()}

    for done, chunk in enumerate(_chunks(pending), start=1):
        prices, actions = lake.read_frame(PRICES, chunk), lake.read_frame(ACTIONS, chunk)
        spans = adjustment_spans(prices, actions)
        spans["computed_at"] = pd.Timestamp(ctx.now)
        respanned = lake.replace(adjustments, chunk, spans).changed
        indicators = compute_indicators(apply_adjustments(prices, spans, dividends=False))
        indicators["computed_at"] = pd.Timestamp(ctx.now)
        indicators = indicators.reindex(columns=INDICATORS.column_names)
        changed = lake.merge(INDICATORS, indicators).changed
        divergence, ignored = vendor_divergence(prices, spans), unusable_actions(prices, actions)
        counts["indicators_written"] += sum(changed.values())
        counts["adjustments_written"] += sum(respanned.values())
        counts["actions_ignored"] += len(ignored)
        counts["adj_close_symbols_compared"] += len(divergence)
        if len(divergence):
            counts["adj_close_max_rel_diff_ppm"] = max(counts["adj_close_max_rel_diff_ppm"],
                                                       int(round(float(divergence["max_rel_diff"].max()) * 1e6)))
        messages = notes(spans, divergence, ignored)
        with ctx.engine.begin() as conn:
            if changed:
                state.bump_versions(conn, INDICATORS.name, changed)
            if respanned:
                state.bump_versions(conn, adjustments.name, respanned)
            state.save_states(conn, [{"symbol": s, "dataset": name, "needs_reprocess": False}
                                     for name in (INDICATORS.name, adjustments.name) for s in chunk])
            chunk_outcomes = [SymbolOutcome(s, "transform", "ok", changed.get(s, 0) + respanned.get(s, 0),
                                            message=messages.get(s, "")) for s in chunk]
            state.record_events(conn, ctx.run_id, chunk_outcomes, ctx.now)
        logs.outcomes(chunk_outcomes)
        outcomes += chunk_outcomes
        ctx.progress("transform", done * SYMBOLS_PER_CHUNK, len(pending))
    counts = {"symbols": len(pending), "rows_written": counts["indicators_written"] + counts["adjustments_written"],
              **counts}
    return StageResult("transform", ExitCode.OK, counts, tuple(outcomes))


@logs.stage("quotes-daily")
def quotes_daily_stage(ctx: Context) -> StageResult:
    """Rebuild quotes_daily (stages/quotes.py) for symbols whose quotes changed."""
    from .stages.quotes import quotes_to_daily

    with ctx.engine.connect() as conn:
        pending = ctx.mine(state.symbols_where(conn, QUOTES_DAILY.name, "reprocess"))
    exchange_of = calendars.exchange_resolver(ctx.settings.exchanges)
    lake, written, outcomes = Lake(ctx.settings.lake_dir), 0, []
    for chunk in _chunks(pending):
        daily = quotes_to_daily(lake.read_frame(QUOTES, chunk), lambda s: calendars.timezone(exchange_of(s)))
        daily["computed_at"] = pd.Timestamp(ctx.now)
        changed = lake.merge(QUOTES_DAILY, daily).changed
        written += sum(changed.values())
        with ctx.engine.begin() as conn:
            if changed:
                state.bump_versions(conn, QUOTES_DAILY.name, changed)
            state.save_states(conn, [{"symbol": s, "dataset": QUOTES_DAILY.name, "needs_reprocess": False}
                                     for s in chunk])
            chunk_outcomes = [SymbolOutcome(s, "quotes-daily", "ok", changed.get(s, 0)) for s in chunk]
            state.record_events(conn, ctx.run_id, chunk_outcomes, ctx.now)
        logs.outcomes(chunk_outcomes)
        outcomes += chunk_outcomes
    return StageResult("quotes-daily", ExitCode.OK, {"symbols": len(pending), "rows_written": written},
                       tuple(outcomes))


# ---------------------------------------------------------------------------- load


@logs.stage("load")
def load_stage(ctx: Context) -> StageResult:
    """Upsert each dataset's changed symbols from the lake into the warehouse.

    `adjustments` is replaced rather than upserted: for each symbol loaded, its warehouse
    spans are deleted and the lake's inserted in one transaction (with loaded_version), so
    a span a new split made obsolete vanishes and the view never mixes old and new spans.
    Only symbols whose lake_version changed are loaded, so a re-run writes nothing.
    rows_loaded counts rows inserted or updated; rows_written adds the spans deleted.
    """
    from .storage import schema

    adjustments = DATASETS["adjustments"]
    order = list(LOAD_ORDER)
    if adjustments.name not in {d.name for d in order}:  # after the actions it derives from
        order.insert(order.index(ACTIONS) + 1, adjustments)
    lake, counts, deleted = Lake(ctx.settings.lake_dir), {}, 0
    for dataset in order:
        with ctx.engine.connect() as conn:
            pending = ctx.mine(state.symbols_where(conn, dataset.name, "unloaded"))
        written = 0
        for chunk in _chunks(pending):
            with ctx.engine.begin() as conn:
                versions = state.read_states(conn, dataset.name, chunk)
                if dataset.name == adjustments.name:
                    table = schema.adjustments
                    for start in range(0, len(chunk), 500):  # far below every driver's parameter limit
                        part = list(chunk[start:start + 500])
                        deleted += max(conn.execute(table.delete().where(table.c.symbol.in_(part))).rowcount, 0)
                written += warehouse.upsert(conn, dataset, lake.read(dataset, chunk))
                state.save_states(conn, [{"symbol": s, "dataset": dataset.name,
                                          "loaded_version": versions[s]["lake_version"]} for s in chunk])
        counts[f"{dataset.name}_written"] = written
        ctx.progress("load", 1, 1)
    loaded = sum(counts.values())
    counts["adjustments_deleted"] = deleted
    counts["rows_loaded"], counts["rows_written"] = loaded, loaded + deleted
    return StageResult("load", ExitCode.OK, counts)


# ------------------------------------------------------------------- quality-check


@logs.stage("quality-check")
def quality_stage(ctx: Context) -> StageResult:
    """Judge every symbol the warehouse holds (and an explicitly given universe).

    Records one quality_results row per (rule, symbol) and sets each symbol's
    symbol_state.refetch_from to its earliest missing session (NULL without gaps), which
    the next fetch plan turns into a refetch.
    """
    from . import calendars
    from .stages.quality import thresholds
    from .storage import quality_data

    settings = ctx.settings
    limits = thresholds(settings.quality, settings.stale_after_sessions)
    calendar = quality_data.Calendar(
        exchange_of=lambda symbol: calendars.exchange_for(symbol, settings.exchanges),
        sessions_between=calendars.sessions_between,
        latest_session=lambda exchange: calendars.latest_closed_session(ctx.now, exchange))
    with ctx.engine.begin() as conn:  # committed: SQLite keeps the TEMP tables' DROP only then
        facts = quality_data.collect(conn, calendar, limits)
    symbols = ctx.mine(sorted(set(facts) | (set(settings.symbols) if settings.universe_source != "default" else set())))
    checks = evaluate(facts, symbols, limits)
    with ctx.engine.begin() as conn:
        state.record_quality(conn, ctx.run_id, checks, ctx.now)
        quality_data.save_refetch(conn, {s: facts[s]["first_missing"] if s in facts else None for s in symbols})
    errors = [c for c in checks if not c.ok and c.severity == "error"]
    warnings = [c for c in checks if not c.ok and c.severity != "error"]
    counts = {"checks": len(checks), "errors": len(errors), "warnings": len(warnings), "symbols_checked": len(symbols)}
    if errors:
        first = errors[0]
        message = f"{len(errors)} error-severity check(s) failed; first: {first.name} for {first.symbol}: {first.detail}"
        return StageResult("quality-check", ExitCode.QUALITY, counts, checks=tuple(checks), message=message)
    return StageResult("quality-check", ExitCode.OK, counts, checks=tuple(checks))
