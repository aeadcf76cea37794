"""Restatements kept: a restated bar's old values go to `price_revisions`, and each symbol's
row count (`symbol_state.rows_held`) follows the rows loaded.

Called by `load` (loading.py) inside the transaction that applies prices_daily's change
feed, so the audit trail and the count commit with the rows they describe, exactly once per
change (the load's watermark moves in the same transaction):

* The lake's MERGE rewrites a bar only when a value column differs, and its change feed
  carries the bar before (`update_preimage`) and after (`update_postimage`) in the same
  commit version. Each column of REVISED_COLUMNS whose value differs between the two becomes
  one row (symbol, date, column, old, new, provider, run_id, seen_at): `seen_at` is when the
  new value was fetched (the postimage's fetched_at), `provider` who sent it, `run_id` the
  run that committed it (the commit's metadata; the loading run's id when it has none).
  A bar restated twice between two loads gives a row per restatement.
* rows_held moves by the feed's inserts minus its deletes per symbol. A snapshot load (a new
  warehouse, `--full`) has no feed: it counts the rows it holds instead, and records no
  revisions (it cannot tell what changed).

Only the invocation's shard's symbols are touched, as load applies only theirs.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from ..models import Dataset
from ..storage import schema
from ..storage.lake import Lake
from ..storage.warehouse import chunks
from .context import Context

log = logging.getLogger("stockpipe")

PRICES = "prices_daily"
_KEY = ["symbol", "date", "_commit_version"]


def record(conn, ctx: Context, lake: Lake, dataset: Dataset, feed: pa.Table | None) -> int:
    """Keep rows_held and the revisions of `feed` (None: a snapshot was loaded) for prices_daily;
    returns the price_revisions rows written (0 for any other dataset)."""
    if dataset.name != PRICES:
        return 0
    if feed is None:
        _recount(conn, ctx)
        return 0
    feed = feed.filter(pc.is_in(feed["symbol"], pa.array(ctx.mine(set(feed["symbol"].to_pylist())), pa.string())))
    _count_rows(conn, feed)
    rows = revised(feed)
    if not rows:
        return 0
    runs = _commit_runs(lake, dataset, {r["version"] for r in rows})
    for row in rows:
        row["run_id"] = runs.get(row.pop("version"), "") or ctx.run_id
    return _insert(conn, rows)


def revised(feed: pa.Table) -> list[dict[str, Any]]:
    """One dict per changed value of an updated bar in `feed` (a change feed of prices_daily):
    symbol, date, column, old, new, provider, seen_at, version (the commit's)."""
    kinds = feed["_change_type"]
    pre = feed.filter(pc.equal(kinds, "update_preimage"))
    post = feed.filter(pc.equal(kinds, "update_postimage"))
    if not pre.num_rows or not post.num_rows:
        return []
    names = list(schema.REVISED_COLUMNS)
    pre = pre.select([*_KEY, *names]).rename_columns([*_KEY, *(f"old_{n}" for n in names)])
    both = post.select([*_KEY, *names, "provider", "fetched_at"]).join(pre, _KEY, join_type="inner")
    out = []
    for row in both.to_pylist():
        for name in names:
            old, new = row[f"old_{name}"], row[name]
            if old != new and not (_nan(old) and _nan(new)):  # NaN on both sides is no change
                out.append({"symbol": row["symbol"], "date": row["date"], "column": name,
                            "old": None if old is None else float(old), "new": None if new is None else float(new),
                            "provider": row["provider"], "seen_at": row["fetched_at"],
                            "version": row["_commit_version"]})
    return out


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _commit_runs(lake: Lake, dataset: Dataset, versions: set[int]) -> dict[int, str]:
    """Commit version -> the run id its commit metadata names."""
    from deltalake import DeltaTable

    if not versions:
        return {}
    try:
        table = DeltaTable(str(lake.path(dataset)))
        history = table.history(table.version() - min(versions) + 1)
    except Exception as exc:  # noqa: BLE001 - delta-rs raises its own types; the loading run's id stands in
        log.debug("cannot read %s's history for run ids: %s", dataset.name, exc)
        return {}
    return {int(entry["version"]): str(entry.get("stockpipe.run_id") or "") for entry in history
            if entry.get("version") in versions}


def _insert(conn, rows: list[dict[str, Any]]) -> int:
    table = schema.price_revisions
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    written = 0
    for start in range(0, len(rows), 1000):
        result = conn.execute(insert(table).on_conflict_do_nothing(), rows[start:start + 1000])
        written += max(result.rowcount, 0)
    return written


def _count_rows(conn, feed: pa.Table) -> None:
    """rows_held += inserts - deletes, per symbol of the feed."""
    kinds = feed["_change_type"]
    delta: dict[str, int] = {}
    for kind, sign in (("insert", 1), ("delete", -1)):
        symbols = feed["symbol"].filter(pc.equal(kinds, kind))
        if len(symbols):
            counts = pc.value_counts(symbols)
            for symbol, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
                delta[symbol] = delta.get(symbol, 0) + sign * n
    changes = [{"s": s, "n": n} for s, n in delta.items() if n]
    if changes:
        state = schema.symbol_state
        conn.execute(state.update().where(state.c.dataset == PRICES, state.c.symbol == sa.bindparam("s"))
                     .values(rows_held=state.c.rows_held + sa.bindparam("n")), changes)


def _recount(conn, ctx: Context) -> None:
    """rows_held from the warehouse's rows, after a snapshot load (this shard's symbols)."""
    state, prices = schema.symbol_state, schema.prices_daily
    held = (sa.select(sa.func.count()).where(prices.c.symbol == state.c.symbol).scalar_subquery())
    where = state.c.dataset == PRICES
    if ctx.settings.shard is None:
        conn.execute(state.update().where(where).values(rows_held=held))
        return
    symbols = ctx.mine(conn.execute(sa.select(state.c.symbol).where(where)).scalars().all())
    for chunk in chunks(symbols):
        conn.execute(state.update().where(where, state.c.symbol.in_(chunk)).values(rows_held=held))
