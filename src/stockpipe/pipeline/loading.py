"""`load`: apply what changed in the lake to the warehouse, dataset by dataset (LOAD_ORDER).

Each dataset is applied in one transaction that also records, in `lake_applied`, the lake
table's id and the version now held (storage/applied.py) — the watermark lives with the
rows, so a kill before the commit leaves the warehouse at the previous version and the next
load applies the same changes again; a kill after leaves nothing to redo.

* The warehouse holds the version recorded: nothing to do (a re-run writes 0 rows).
* It holds an older version of the same table: the change feed since then is applied —
  for each key its last change: inserted or updated rows are upserted (only rows that
  differ are written), deleted ones (adjustment spans a split made obsolete) deleted.
* It holds nothing of this table (a new or rebuilt warehouse, a move to PostgreSQL, a lake
  table that was recreated, a change feed that was vacuumed), or `--full`: the table's
  snapshot replaces the warehouse's rows (this shard's symbols' rows under `--shard`).
* A lake table that does not exist is left alone: the warehouse keeps what it has.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .. import crashpoints, logs
from ..errors import ExitCode
from ..models import LOAD_ORDER, Dataset, StageResult
from ..storage import applied, warehouse
from ..storage.lake import ChangesUnavailableError, Lake
from . import revisions
from .context import Context


@logs.stage("load")
def load_stage(ctx: Context, full: bool = False) -> StageResult:
    """Bring each dataset in the warehouse to the lake's current version.

    Counts: `<dataset>_written` rows inserted or updated per dataset; rows_loaded their sum;
    rows_deleted rows removed (deleted in the lake, or replaced by a snapshot load);
    rows_written both; snapshots the datasets loaded whole.
    """
    lake, counts = Lake(ctx.settings.lake_dir), {}
    deleted = snapshots = revisions_total = 0
    for dataset in LOAD_ORDER:
        written, gone, whole, revised = _apply(ctx, lake, dataset, full)
        counts[f"{dataset.name}_written"] = written
        revisions_total += revised
        deleted, snapshots = deleted + gone, snapshots + whole
        ctx.progress("load", 1, 1)
    loaded = sum(counts.values())
    counts |= {"rows_deleted": deleted, "snapshots": snapshots, "rows_loaded": loaded, "rows_written": loaded + deleted,
               "price_revisions": revisions_total}
    return StageResult("load", ExitCode.OK, counts)


def _apply(ctx: Context, lake: Lake, dataset: Dataset, full: bool) -> tuple[int, int, int, int]:
    """(rows written, rows deleted, 1 if loaded from the snapshot, price_revisions kept) for one dataset."""
    version, table_id = lake.version(dataset), lake.identity(dataset)
    if version is None:
        return 0, 0, 0, 0
    consumer, now = ctx.consumer("load"), applied.Applied(table_id, version)
    with ctx.engine.begin() as conn:
        done = applied.read(conn, consumer, dataset.name)
        if done == now and not full:
            return 0, 0, 0, 0
        feed = None
        if done is not None and done.table_id == table_id and not full:
            try:
                feed = lake.changes(dataset, done.version, version)
            except ChangesUnavailableError:
                feed = None
        warehouse.begin_load(conn, dataset)  # before the table is read: shards' loads never deadlock
        if feed is None:
            written, deleted = _snapshot(ctx, conn, lake, dataset, version)
        else:
            upserts, deletes = _net(feed, dataset, ctx)
            deleted = warehouse.delete_rows(conn, dataset, keys=deletes)
            written = warehouse.upsert(conn, dataset, upserts)
        revised = revisions.record(conn, ctx, lake, dataset, feed)  # restatements and rows_held, same transaction
        applied.save(conn, consumer, dataset.name, now, ctx.now)
        crashpoints.hit("before_load_commit")
    crashpoints.hit("after_load_commit")
    return written, deleted, int(feed is None), revised


def _snapshot(ctx: Context, conn, lake: Lake, dataset: Dataset, version: int) -> tuple[int, int]:
    """Replace the warehouse's rows (this shard's) with the lake table's at `version`, a
    batch of rows at a time (bounded memory, whatever the table's size)."""
    if ctx.settings.shard is None:
        deleted = warehouse.delete_rows(conn, dataset)
    else:
        held = conn.execute(warehouse.distinct_symbols(dataset)).scalars().all()
        deleted = warehouse.delete_rows(conn, dataset, symbols=ctx.mine(held))
    # Bounded memory: a batch of rows at a time, streamed through one upsert_batches (on
    # PostgreSQL a fresh month's partition is filled by every batch, then keyed once).
    return warehouse.upsert_batches(conn, dataset, _mine(ctx, lake.scan(dataset, version=version))), deleted


def _mine(ctx: Context, batches):
    """This shard's rows of each batch (all of them unsharded)."""
    for batch in batches:
        if ctx.settings.shard is not None:
            mine = ctx.mine(pc.unique(batch["symbol"]).to_pylist())
            batch = batch.filter(pc.is_in(batch["symbol"], pa.array(mine, pa.string())))
        yield batch


def _net(feed: pa.Table, dataset: Dataset, ctx: Context) -> tuple[pa.Table, pa.Table]:
    """(rows to upsert, keys to delete): each key's last change in the feed, this shard's."""
    feed = feed.filter(pc.not_equal(feed["_change_type"], "update_preimage"))
    feed = feed.filter(pc.is_in(feed["symbol"], pa.array(ctx.mine(set(feed["symbol"].to_pylist())), pa.string())))
    # A rewrite (Lake.rewrite) deletes a key's old row and inserts its new one in the same
    # commit: within a commit, the deletion comes first.
    feed = feed.append_column("__kept", pc.not_equal(feed["_change_type"], "delete").cast(pa.int8()))
    ordered = feed.sort_by([("_commit_version", "ascending"), ("__kept", "ascending")])
    ordered = ordered.append_column("__i", pa.array(range(ordered.num_rows), pa.int64()))
    last = ordered.group_by(list(dataset.key), use_threads=False).aggregate([("__i", "max")])["__i_max"]
    net = ordered.take(pc.take(last, pc.sort_indices(last)))
    gone = pc.equal(net["_change_type"], "delete")
    return net.filter(pc.invert(gone)).select(dataset.column_names), net.filter(gone).select(list(dataset.key))
