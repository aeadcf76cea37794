"""The stages of a run, each joining one pure stage to the lake, the warehouse and state.

Kept apart from `pipeline.py` so that `health-check` and `--help` never import pandas.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import pandas as pd

from .errors import ExitCode, StockpipeError
from .models import DATASETS, SymbolOutcome, StageResult
from .pipeline import Context
from .providers import base as providers
from .stages.indicators import compute_indicators
from .stages.plan import FetchTask, plan_fetch
from .stages.quality import evaluate
from .stages.validate import validate_bars
from .storage import state, warehouse
from .storage.lake import Lake

log = logging.getLogger("stockpipe")

PRICES, ACTIONS, INDICATORS, REJECTS = (DATASETS[n] for n in ("prices_daily", "corporate_actions", "indicators_daily", "rejects"))
LOAD_ORDER = (PRICES, ACTIONS, INDICATORS, REJECTS)
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
    prices: list[pd.DataFrame] = field(default_factory=list)
    actions: list[pd.DataFrame] = field(default_factory=list)
    rejects: list[pd.DataFrame] = field(default_factory=list)
    outcomes: list[SymbolOutcome] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    spans: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)  # first/last accepted date
    rows: int = 0


def fetch_stage(ctx: Context, start: dt.date | None, end: dt.date | None) -> StageResult:
    """Plan, call the provider, archive, parse, validate, and save to the lake."""
    settings = ctx.settings
    provider = providers.create(settings.provider, settings, ctx.clock)
    try:
        listed = provider.symbols()
        if listed is None:  # an API: ask only for what symbol_state says is missing
            symbols = list(settings.symbols)
            with ctx.engine.connect() as conn:
                known = state.read_states(conn, PRICES.name, symbols)
            last = {s: row["last_date"] for s, row in known.items()}
            plan = plan_fetch(symbols, last, ctx.latest_session, settings.history_days, start, end)
        else:  # a file source: import all it holds; the lake's merge skips what is there
            symbols = list(settings.symbols) if settings.universe_source == "command line" else listed
            plan = plan_fetch(symbols, {}, ctx.latest_session, settings.history_days, start or EARLIEST, end)
        outcomes = _fetch_all(ctx, provider, plan.tasks)
    finally:
        provider.close()
    return _fetch_result(plan.tasks, plan.current, outcomes)


def _fetch_all(ctx: Context, provider, tasks: Sequence[FetchTask]) -> list[SymbolOutcome]:
    outcomes: list[SymbolOutcome] = []
    batch = _Batch()
    for done, task in enumerate(tasks, start=1):
        _fetch_one(ctx, provider, task, batch)
        ctx.progress("fetch", done, len(tasks))
        if batch.rows >= ctx.settings.batch_rows:
            outcomes += _flush(ctx, batch)
            batch = _Batch()
    return outcomes + _flush(ctx, batch)


def _fetch_one(ctx: Context, provider, task: FetchTask, batch: _Batch) -> None:
    batch.tasks.append(task)
    try:
        payload = provider.fetch_daily(task.symbol, task.start, task.end)
        _archive(ctx, payload)
        parsed = provider.parse_daily(payload, task.start, task.end)
        checked = validate_bars(task.symbol, parsed.bars, provider=provider.name, run_id=ctx.run_id, now=ctx.now,
                                latest_session=ctx.latest_session, parser_rejects=parsed.rejected)
    except StockpipeError as exc:
        log.warning("fetch %s failed: %s", task.symbol, exc)
        batch.errors[task.symbol] = str(exc)
        batch.outcomes.append(SymbolOutcome(task.symbol, "fetch", "failed", 0, 0, str(exc), provider.name,
                                            int(exc.exit_code)))
        return
    batch.prices.append(checked.accepted)
    batch.rejects.append(checked.rejected)
    batch.actions.append(_actions(task.symbol, parsed.actions, provider.name, ctx.now))
    batch.rows += len(checked.accepted)
    if len(checked.accepted):
        dates = checked.accepted["date"]
        batch.spans[task.symbol] = (dates.min().date(), dates.max().date())
    status = "ok" if len(checked.accepted) else "no_data"
    note = f"{len(checked.rejected)} row(s) rejected" if len(checked.rejected) else ""
    batch.outcomes.append(SymbolOutcome(task.symbol, "fetch", status, len(checked.accepted), payload.api_calls,
                                        note, provider.name))


def _actions(symbol: str, actions: pd.DataFrame, provider: str, now: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, **{c: actions[c].to_numpy() for c in ("date", "kind", "value")},
                         "provider": provider, "fetched_at": pd.Timestamp(now)}, columns=ACTIONS.column_names)


def _archive(ctx: Context, payload) -> None:
    """Keep the payload exactly as received, gzipped, before anything parses it."""
    suffix = {"application/json": "json", "text/csv": "csv"}.get(payload.media_type, "bin")
    folder = ctx.settings.raw_dir / payload.provider / ctx.now.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{payload.symbol}.{ctx.run_id}.{suffix}.gz"  # symbols are validated: no path tricks
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(gzip.compress(payload.content, compresslevel=5))
    os.replace(tmp, path)


def _flush(ctx: Context, batch: _Batch) -> list[SymbolOutcome]:
    """Save a batch: lake first, then state, so a crash in between only refetches."""
    if not batch.tasks:
        return []
    lake = Lake(ctx.settings.lake_dir)
    changed = {ds.name: lake.merge(ds, _concat(frames, ds)).changed
               for ds, frames in ((PRICES, batch.prices), (ACTIONS, batch.actions), (REJECTS, batch.rejects))}
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
    return batch.outcomes


def _concat(frames: list[pd.DataFrame], dataset) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=dataset.column_names)


def _state_row(ctx: Context, task: FetchTask, known: dict, batch: _Batch) -> dict:
    row = {"symbol": task.symbol, "dataset": PRICES.name, "last_attempt_at": ctx.now,
           "provider": ctx.settings.provider}
    if task.symbol in batch.errors:
        return row | {"consecutive_failures": known.get("consecutive_failures", 0) + 1,
                      "last_error": batch.errors[task.symbol][:500],
                      "first_date": known.get("first_date"), "last_date": known.get("last_date")}
    seen = [d for d in (known.get("first_date"), known.get("last_date"), *batch.spans.get(task.symbol, ())) if d]
    return row | {"consecutive_failures": 0, "last_error": None, "last_success_at": ctx.now,
                  "first_date": min(seen, default=None), "last_date": max(seen, default=None)}


def _fetch_result(tasks, current, outcomes: list[SymbolOutcome]) -> StageResult:
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {"planned": len(tasks), "ok": len(outcomes) - len(failed), "failed": len(failed),
              "skipped": len(current), "rows_fetched": sum(o.rows for o in outcomes),
              "rows_rejected": sum(int(o.message.split()[0]) for o in outcomes if o.message.endswith("rejected")),
              "api_calls": sum(o.api_calls for o in outcomes)}
    if not tasks:
        return StageResult("fetch", ExitCode.NOTHING_TO_DO, counts, (), message="every symbol is up to date")
    if not failed:
        return StageResult("fetch", ExitCode.OK, counts, tuple(outcomes))
    if len(failed) == 1 == len(tasks):
        return StageResult("fetch", failed[0].exit_code, counts, tuple(outcomes), message=failed[0].message)
    message = f"{len(failed)} of {len(tasks)} symbol(s) failed; first: {failed[0].symbol}: {failed[0].message}"
    codes = {o.exit_code for o in failed}
    # Nothing succeeded and every failure had the same cause: exit with that cause's code.
    code = codes.pop() if len(failed) == len(tasks) and len(codes) == 1 else ExitCode.PARTIAL
    return StageResult("fetch", code, counts, tuple(outcomes), message=message)


# ----------------------------------------------------------------------- transform


def transform_stage(ctx: Context) -> StageResult:
    """Recompute indicators, from their whole history, for symbols whose prices changed."""
    with ctx.engine.connect() as conn:
        pending = state.symbols_where(conn, INDICATORS.name, "reprocess")
    lake, outcomes, written = Lake(ctx.settings.lake_dir), [], 0
    for done, chunk in enumerate(_chunks(pending), start=1):
        prices = lake.read_frame(PRICES, chunk)
        indicators = compute_indicators(prices)
        indicators["computed_at"] = pd.Timestamp(ctx.now)
        indicators = indicators.reindex(columns=INDICATORS.column_names)
        changed = lake.merge(INDICATORS, indicators).changed
        written += sum(changed.values())
        with ctx.engine.begin() as conn:
            if changed:
                state.bump_versions(conn, INDICATORS.name, changed)
            state.save_states(conn, [{"symbol": s, "dataset": INDICATORS.name, "needs_reprocess": False} for s in chunk])
            chunk_outcomes = [SymbolOutcome(s, "transform", "ok", changed.get(s, 0)) for s in chunk]
            state.record_events(conn, ctx.run_id, chunk_outcomes, ctx.now)
        outcomes += chunk_outcomes
        ctx.progress("transform", done * SYMBOLS_PER_CHUNK, len(pending))
    return StageResult("transform", ExitCode.OK, {"symbols": len(pending), "rows_written": written}, tuple(outcomes))


# ---------------------------------------------------------------------------- load


def load_stage(ctx: Context) -> StageResult:
    """Upsert each dataset's changed symbols from the lake into the warehouse."""
    lake, counts = Lake(ctx.settings.lake_dir), {}
    for dataset in LOAD_ORDER:
        with ctx.engine.connect() as conn:
            pending = state.symbols_where(conn, dataset.name, "unloaded")
        written = 0
        for chunk in _chunks(pending):
            with ctx.engine.begin() as conn:
                versions = state.read_states(conn, dataset.name, chunk)
                written += warehouse.upsert(conn, dataset, lake.read(dataset, chunk))
                state.save_states(conn, [{"symbol": s, "dataset": dataset.name,
                                          "loaded_version": versions[s]["lake_version"]} for s in chunk])
        counts[f"{dataset.name}_written"] = written
        ctx.progress("load", 1, 1)
    counts["rows_loaded"] = counts["rows_written"] = sum(counts.values())
    return StageResult("load", ExitCode.OK, counts)


# ------------------------------------------------------------------- quality-check


def quality_stage(ctx: Context) -> StageResult:
    """Judge every symbol the warehouse holds (and an explicitly given universe)."""
    settings = ctx.settings
    with ctx.engine.connect() as conn:
        stats = state.quality_stats(conn, None)
    symbols = sorted({row["symbol"] for row in stats}
                     | (set(settings.symbols) if settings.universe_source != "default" else set()))
    checks = evaluate(stats, symbols, ctx.latest_session, settings.stale_after_sessions)
    with ctx.engine.begin() as conn:
        state.record_quality(conn, ctx.run_id, checks, ctx.now)
    errors = [c for c in checks if not c.ok and c.severity == "error"]
    warnings = [c for c in checks if not c.ok and c.severity != "error"]
    counts = {"checks": len(checks), "errors": len(errors), "warnings": len(warnings), "symbols_checked": len(symbols)}
    if errors:
        first = errors[0]
        message = f"{len(errors)} error-severity check(s) failed; first: {first.name} for {first.symbol}: {first.detail}"
        return StageResult("quality-check", ExitCode.QUALITY, counts, checks=tuple(checks), message=message)
    return StageResult("quality-check", ExitCode.OK, counts, checks=tuple(checks))
