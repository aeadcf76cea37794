"""The one fetch loop, for daily bars, quotes and intraday bars alike.

For every job (one symbol's request) it calls the provider — concurrently, within the
provider's rate limits — archives every payload exactly as received (storage/archive.py,
on a thread of its own, before anything parses it), reads it through the dataset's
`Spec.read`, and saves in batches: the lake first, then symbol_state, lake versions and
one run_events row per symbol in one transaction, so a crash in between only refetches.

A terminal answer for the provider (`errors.StopsProvider`: a refused key, a spent quota, a
persistent throttle, a plan not entitled) stops all further calls at once; the symbols not
yet asked are recorded deferred (run_events status `skipped`, no failure counted) and come
first next run. Those, and the ones that failed because the provider stopped, are handed
back so a failover chain can give them to the next provider.

What differs per dataset is a `Spec`: the call, the reading, which lake datasets a symbol's
rows go to, and the extra symbol_state columns a success sets. What is derived from the
rows (indicators, quotes_daily, the warehouse) follows the lake's change feed, not flags.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd

from .. import crashpoints, logs
from ..errors import ExitCode, NotAsked, StockpipeError, StopsProvider
from ..models import DATASETS, StageResult, SymbolOutcome
from ..providers.base import Payload
from ..storage import applied, archive, state
from ..storage.lake import Commit, Lake, MergeResult
from .context import SYMBOLS_PER_CHUNK, Context

log = logging.getLogger("stockpipe")


@dataclass(frozen=True)
class Read:
    """What one symbol's payloads gave."""

    frames: Mapping[str, Any]  # lake dataset name -> rows (rejects included): a frame, or a part for Spec.build
    rows: int  # rows accepted for the spec's dataset
    rejected: int = 0
    note: str = ""
    state: Mapping[str, Any] = field(default_factory=dict)  # symbol_state columns a success sets


@dataclass(frozen=True)
class Spec:
    """One dataset's fetch: what the loop asks, reads and saves."""

    stage: str  # run_events stage name: fetch, fetch-quotes, fetch-intraday
    dataset: str  # symbol_state's dataset for these symbols
    lake: tuple[str, ...]  # lake datasets the rows go to
    call: Callable[[Any], list[Payload]]  # job -> payloads (on a worker thread)
    read: Callable[[Any, list[Payload]], Read]  # job, payloads -> rows (on the caller's thread)
    archive_kind: str | None = None  # part of the raw archive's file name (None: daily bars)
    # lake dataset -> how a batch's parts become one frame (default: concatenated frames); lets
    # the daily fetch build prices in one vectorised step per batch instead of a frame per symbol
    build: Mapping[str, Callable[[list[Any]], pd.DataFrame]] = field(default_factory=dict)
    on_success: Callable[[Any, Mapping[str, Any], Read], Mapping[str, Any]] = lambda job, known, read: {}


@dataclass(frozen=True)
class Fetched:
    """The loop's result for one provider."""

    outcomes: list[SymbolOutcome]
    handover: set[str]  # symbols another provider may serve (deferred, or failed because this one stopped)
    written: int  # rows the lake took as new or changed in the spec's dataset


class Stop:
    """Set once a provider answered something terminal; later calls are not made."""

    def __init__(self) -> None:
        self.error: StockpipeError | None = None

    def check(self, exc: StockpipeError) -> None:
        if isinstance(exc, StopsProvider) and self.error is None:
            self.error = exc


def call_concurrently(provider, items: Sequence, call: Callable, stop: Stop) -> Iterator[tuple[Any, Any]]:
    """(item, call(item) | error | None) in item order; None = not asked (the provider
    stopped, or an `errors.NotAsked`: refused by the quota ledger before the vendor answered).

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


@dataclass
class _Batch:
    """Fetched symbols not yet saved; flushed every `batch_rows` rows or chunk of symbols."""

    jobs: list[Any] = field(default_factory=list)
    frames: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    reads: dict[str, Read] = field(default_factory=dict)
    outcomes: list[SymbolOutcome] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)
    handover: set[str] = field(default_factory=set)
    rows: int = 0


@dataclass(frozen=True)
class _Got:
    """A job's payloads as received, and the archiving of them (done before parsing)."""

    payloads: list[Payload]
    archived: Future


def fetch_all(ctx: Context, provider, jobs: Sequence[Any], spec: Spec) -> Fetched:
    """Fetch every job (each has a `.symbol`), saving in batches."""
    archiver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive")  # gzip releases the GIL

    def call(job) -> _Got:
        payloads = spec.call(job)
        return _Got(payloads, archiver.submit(_archive, ctx, payloads, spec.archive_kind))

    outcomes: list[SymbolOutcome] = []
    handover: set[str] = set()
    written = 0
    batch, stop = _Batch(), Stop()
    try:
        for done, (job, got) in enumerate(call_concurrently(provider, jobs, call, stop), start=1):
            _one(provider, spec, job, got, batch, stop)
            ctx.progress(spec.stage, done, len(jobs))
            if batch.rows >= ctx.settings.batch_rows or len(batch.jobs) >= SYMBOLS_PER_CHUNK:
                written += _flush(ctx, provider.name, spec, batch)
                outcomes, handover = outcomes + batch.outcomes, handover | batch.handover
                batch = _Batch()
    finally:
        archiver.shutdown(wait=True)
    written += _flush(ctx, provider.name, spec, batch)
    return Fetched(outcomes + batch.outcomes, handover | batch.handover, written)


def _archive(ctx: Context, payloads: list[Payload], kind: str | None) -> None:
    for number, payload in enumerate(payloads):
        if payload.archived:  # a slice of an answer already archived whole (bulkday.py)
            continue
        path = archive.archive_path(ctx.settings.raw_dir, payload.provider, ctx.now.date(), payload.symbol,
                                    ctx.run_id, payload.media_type, kind, number if len(payloads) > 1 else None)
        archive.write(path, payload.content)


def _one(provider, spec: Spec, job, got: _Got | StockpipeError | None, batch: _Batch, stop: Stop) -> None:
    symbol = job.symbol
    batch.jobs.append(job)
    if got is None:
        reason = f"deferred: {provider.name} stopped ({stop.error})"
        batch.deferred[symbol] = reason
        batch.handover.add(symbol)
        batch.outcomes.append(SymbolOutcome(symbol, spec.stage, "skipped", 0, 0, reason, provider.name,
                                            int(ExitCode.PARTIAL)))
        return
    calls = 0
    try:
        if isinstance(got, StockpipeError):
            raise got
        calls = sum(p.api_calls for p in got.payloads)
        got.archived.result()  # the raw payloads are on disk before anything parses them
        read = spec.read(job, got.payloads)
    except StockpipeError as exc:
        stop.check(exc)
        calls = calls or exc.api_calls  # a failed call is a call: the quota ledger counts it too
        if isinstance(exc, StopsProvider):
            batch.handover.add(symbol)
        batch.errors[symbol] = str(exc)
        batch.outcomes.append(SymbolOutcome(symbol, spec.stage, "failed", 0, calls, str(exc), provider.name,
                                            int(exc.exit_code)))
        return
    for name, part in read.frames.items():
        if not (isinstance(part, pd.DataFrame) and part.empty):
            batch.frames.setdefault(name, []).append(part)
    batch.reads[symbol] = read
    batch.rows += read.rows
    notes = [f"{read.rejected} row(s) rejected"] if read.rejected else []
    notes += [read.note] if read.note else []
    batch.outcomes.append(SymbolOutcome(symbol, spec.stage, "ok" if read.rows else "no_data", read.rows, calls,
                                        "; ".join(notes), provider.name, rejected=read.rejected))


def _flush(ctx: Context, provider: str, spec: Spec, batch: _Batch) -> int:
    """Save a batch: the lake first (one commit per dataset), then symbol_state, run_events
    and the planner's watermark in one transaction. A crash in between leaves the lake ahead
    of symbol_state, which the next plan reconciles from the lake (daily.py): nothing is
    fetched twice. Returns the rows the lake took as new or changed in the spec's dataset."""
    if not batch.jobs:
        return 0
    lake = Lake(ctx.settings.lake_dir)
    commit = Commit(ctx.run_id, spec.stage)
    written: dict[str, MergeResult] = {}
    for name in spec.lake:  # one frame per dataset and batch, not per symbol
        parts = batch.frames.get(name, [])
        frame = spec.build[name](parts) if name in spec.build else concat(parts, name)
        written[name] = lake.merge(DATASETS[name], frame, commit)
    crashpoints.hit("after_lake_write")
    held = written[spec.dataset]
    with ctx.engine.begin() as conn:
        known = state.read_states(conn, spec.dataset, [job.symbol for job in batch.jobs])
        state.save_states(conn, [_state_row(ctx, provider, spec, job, known.get(job.symbol, {}), batch)
                                 for job in batch.jobs])
        state.record_events(conn, ctx.run_id, batch.outcomes, ctx.now)
        if held.version is not None:  # symbol_state now reflects the lake up to this version
            table_id = lake.identity(DATASETS[spec.dataset])
            applied.save(conn, ctx.consumer("plan"), spec.dataset, applied.Applied(table_id, held.version), ctx.now)
    crashpoints.hit("after_fetch_state")
    logs.outcomes(batch.outcomes)  # one log line per symbol, once committed (failures at WARNING)
    return held.rows


def _state_row(ctx: Context, provider: str, spec: Spec, job, known: Mapping[str, Any], batch: _Batch) -> dict:
    symbol = job.symbol
    row = {"symbol": symbol, "dataset": spec.dataset, "last_attempt_at": ctx.now, "provider": provider}
    if symbol in batch.deferred:  # not this symbol's failure: none counted
        return row | {"last_error": batch.deferred[symbol][:500]}
    if symbol in batch.errors:
        return row | {"consecutive_failures": (known.get("consecutive_failures") or 0) + 1,
                      "last_error": batch.errors[symbol][:500]}
    read = batch.reads[symbol]
    return row | {"consecutive_failures": 0, "last_error": None, "last_success_at": ctx.now,
                  **spec.on_success(job, known, read)}


def concat(frames: list[pd.DataFrame], dataset: str) -> pd.DataFrame:
    """The non-empty frames as one, or an empty frame with the dataset's columns."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=DATASETS[dataset].column_names)


def verdict(stage: str, planned: int, counts: dict[str, int], outcomes: Sequence[SymbolOutcome]) -> StageResult:
    """The exit code and message of a fetch from its per-symbol outcomes.

    0 when every planned symbol was fetched; 4 when the provider refused the key; the one
    cause's code when every symbol failed for the same reason (e.g. 65 for one bad CSV
    file); 3 (partial) otherwise, and when some were deferred.
    """
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


def outcome_counts(planned: int, outcomes: Sequence[SymbolOutcome], *, up_to_date: int | None = None,
                   written: int | None = None) -> dict[str, int]:
    """The counts of a fetch, in the order they are shown. `skipped` (daily bars only) counts
    the symbols already up to date, not asked; `deferred` the ones the provider's stop kept
    from being asked; `rows_written` (quotes, intraday) the rows the lake took as new or changed."""
    failed = sum(o.status == "failed" for o in outcomes)
    deferred = sum(o.status == "skipped" for o in outcomes)
    counts = {"planned": planned, "ok": len(outcomes) - failed - deferred, "failed": failed, "deferred": deferred}
    if up_to_date is not None:
        counts["skipped"] = up_to_date
    counts |= {"rows_fetched": sum(o.rows for o in outcomes), "rows_rejected": sum(o.rejected for o in outcomes)}
    if written is not None:
        counts["rows_written"] = written
    return counts | {"api_calls": sum(o.api_calls for o in outcomes)}
