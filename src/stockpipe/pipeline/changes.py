"""What changed in the lake since a derived table's watermark.

A derived lake table (indicators_daily, quotes_daily) records, in the same commit as its
rows, the versions of the inputs it consumed: Delta application transactions named
`<stage>[:<shard>]:<input>` (each shard keeps its own, since it derives only its own
symbols). The next run reads the inputs' change feeds from there. Without a watermark (a new
lake or a new output table) or with a change feed that is gone (vacuumed), every symbol of
the input is taken: the output is recomputed once, and what did not change merges as no
change.
"""

from __future__ import annotations

import datetime as dt
from typing import Mapping

import pyarrow as pa

from ..models import DATASETS, Dataset
from ..storage.lake import ChangesUnavailableError, Commit, Lake
from .context import Context

Inputs = Mapping[str, tuple[str, int]]  # input dataset -> (its watermark's application id, its version now)


def inputs(ctx: Context, lake: Lake, datasets: tuple[Dataset, ...], stage: str = "transform") -> dict[str, tuple[str, int]]:
    """The inputs that exist, with their watermark names and current versions."""
    found = {d.name: lake.version(d) for d in datasets}
    return {name: (f"{ctx.consumer(stage)}:{name}", version) for name, version in found.items() if version is not None}


def pending(ctx: Context, lake: Lake, output: Dataset, given: Inputs, whole: tuple[str, ...],
            full: bool = False) -> dict[str, dt.date | None]:
    """This shard's symbols whose inputs changed since `output`'s watermark (every symbol of
    the inputs with `full`) -> the first date that changed (None: the whole symbol, always so
    for an input in `whole`)."""
    since: dict[str, dt.date | None] = {}
    for name, (app, version) in given.items():
        dataset = DATASETS[name]
        seen = None if full else lake.watermark(output, app)
        if seen is not None and seen >= version:  # nothing new
            continue
        try:
            if seen is None:
                raise ChangesUnavailableError(f"{output.name} has no watermark for {name}")
            firsts = _first_dates(lake.changes(dataset, seen, version), dataset.partition)
        except ChangesUnavailableError:
            firsts = dict.fromkeys(lake.read(dataset, columns=["symbol"])["symbol"].to_pylist())
        for symbol, first in firsts.items():
            if name in whole or first is None or since.get(symbol, first) is None:
                since[symbol] = None
            else:
                since[symbol] = min(first, since.get(symbol, first))
    mine = set(ctx.mine(since))
    return {s: d for s, d in since.items() if s in mine}


def commit(ctx: Context, stage: str, given: Inputs, last: bool) -> Commit:
    """An output commit; the last one of a run carries the inputs' versions as watermarks."""
    return Commit(ctx.run_id, stage, {app: version for app, version in given.values()} if last else {})


def advance(ctx: Context, lake: Lake, output: Dataset, stage: str, given: Inputs) -> None:
    """Record the watermarks when the inputs moved on and nothing of this shard changed."""
    if any(lake.watermark(output, app) != version for app, version in given.values()):
        lake.mark(output, commit(ctx, stage, given, last=True))


def _first_dates(feed: pa.Table, column: str) -> dict[str, dt.date | None]:
    if feed.num_rows == 0:
        return {}
    firsts = feed.select(["symbol", column]).group_by("symbol").aggregate([(column, "min")])
    values = firsts[f"{column}_min"].to_pylist()
    return {s: (v.date() if isinstance(v, dt.datetime) else v) for s, v in zip(firsts["symbol"].to_pylist(), values)}
