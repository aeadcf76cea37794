"""The PostgreSQL side of the warehouse's upsert and deletes, in the caller's transaction.

`upsert` picks, per call, the cheapest way that writes exactly the rows that differ
(bench/bench_pg_load.py measures each; bench/README.md has the numbers):

- rows no key of which can already be in the table (a backfill, a fresh warehouse, a new
  day): a plain binary COPY straight into the table, at the server's COPY speed; the
  primary key is the check. Whether any can be is asked first with one index probe
  (`_may_exist`: the first key column's values within the batch's range of the others);
  should a concurrent writer add one of the keys meanwhile, the COPY fails on the key,
  is rolled back to a savepoint, and the rows take the staged path;
- otherwise: binary COPY into a TEMP staging table, then one
  `INSERT .. ON CONFLICT (key) DO UPDATE .. WHERE (values) IS DISTINCT FROM (new values)`,
  so a re-sent unchanged day writes 0 rows and the count returned is exact.

On a month-partitioned table, the rows of a month that has no partition yet (a backfill
into a fresh warehouse) are copied into a new table first and its primary key built
after, one sort instead of a btree insert per row, before it is attached as the month's
partition (`upsert_batches` does this across every batch of a streamed snapshot); the
partitions the other rows need, and the next month's, are created as needed
(partitions.ensure_months). Everything runs on the SQLAlchemy connection's own psycopg2
connection (pgcopy.copy_rows), so the rows commit together with whatever else the caller
writes in its transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..models import Dataset
from . import partitions, pgcopy

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Connection

_PROBE_VALUES = 100_000  # more distinct first-key values than this: skip the probe, stage
_UNIQUE_VIOLATION = "23505"


def upsert(conn: "Connection", dataset: Dataset, table: "pa.Table") -> int:
    """Insert new rows and update changed ones (the volatile columns alone never make a row
    changed); returns the number of rows written. `table`'s keys must be unique."""
    return upsert_batches(conn, dataset, [table])


def upsert_batches(conn: "Connection", dataset: Dataset, batches: Iterable["pa.Table"]) -> int:
    """`upsert` of each batch in turn, in the caller's transaction, holding one batch at a
    time; returns the rows written. On a month-partitioned table, a month with no partition
    (nor rows) when a batch first brings it (a backfill) gets a new table, filled from every
    batch and keyed once at the end, so a whole snapshot streamed through one call loads up
    to twice as fast as COPY into keyed partitions. Keys must be unique across the batches."""
    column = partitions.PARTITIONED.get(dataset.name)
    filling: dict = {}  # month -> its new partition's table, unkeyed and unattached until the end
    seen, written = set(), 0
    for batch in batches:
        if not batch.num_rows:
            continue
        batch = batch.select(dataset.column_names)
        if column is not None:
            months = partitions.months_of(batch.column(column))
            seen.update(months)
            _open_fresh(conn, dataset, months, filling)
            batch, filled = _fill(conn, dataset, batch, filling)
            written += filled
            partitions.ensure_months(conn, dataset.name, [m for m in months if m not in filling], ahead=False)
        if batch.num_rows:
            written += _upsert(conn, dataset, batch)
    for month in filling:
        partitions.attach(conn, dataset.name, month, key=dataset.key)
    if seen:
        partitions.ensure_months(conn, dataset.name, seen)  # the month after the newest, ahead
    return written


def _upsert(conn: "Connection", dataset: Dataset, table: "pa.Table") -> int:
    """A plain COPY when no key can collide, else the staged upsert."""
    if not _may_exist(conn, dataset, table):
        try:
            with conn.begin_nested():
                return pgcopy.copy_rows(conn, dataset.name, dataset, table)
        except Exception as exc:  # noqa: BLE001 - only a key collision falls through to the staged path
            if getattr(exc, "pgcode", None) != _UNIQUE_VIOLATION:
                raise
    return merge(conn, dataset, table)


def _open_fresh(conn: "Connection", dataset: Dataset, months: list, filling: dict) -> None:
    """Add to `filling` a new (unkeyed, unattached) table for each of `months` that has no
    partition and no rows anywhere yet. The transaction then holds the partition lock until
    it commits: a shard backfilling the same months at once waits, then finds them made."""
    todo = [m for m in months if m not in filling]
    if not todo or not partitions.missing(conn, dataset.name, todo):
        return
    partitions.lock(conn, dataset.name)
    for month in partitions.fresh(conn, dataset.name, todo):
        filling[month] = partitions.new_table(conn, dataset.name, month)


def _fill(conn: "Connection", dataset: Dataset, table: "pa.Table", filling: dict) -> tuple["pa.Table", int]:
    """COPY the rows of the months being filled into their tables; returns the other rows and
    the rows copied."""
    import numpy as np
    import pyarrow as pa

    if not filling:
        return table, 0
    row_months, copied = partitions.row_months(table.column(partitions.PARTITIONED[dataset.name])), 0
    for month in np.unique(row_months):
        target = filling.get(month.astype("datetime64[D]").astype(object))
        if target is not None:
            copied += pgcopy.copy_rows(conn, target, dataset, table.filter(pa.array(row_months == month)))
    if not copied:
        return table, 0
    months = np.array(list(filling), dtype="datetime64[M]")
    return table.filter(pa.array(~np.isin(row_months, months))), copied


def merge(conn: "Connection", dataset: Dataset, table: "pa.Table", statement: str = "on_conflict") -> int:
    """The staged upsert: COPY into a TEMP table, then one statement that inserts the new rows
    and updates only those whose values differ. Returns the rows inserted or updated.

    statement: "on_conflict" (`INSERT .. ON CONFLICT DO UPDATE .. WHERE (..) IS DISTINCT
    FROM (..)`) or "merge" (PostgreSQL 15 `MERGE .. WHEN MATCHED AND (..) IS DISTINCT FROM
    (..)`); bench/bench_pg_load.py measures both.
    """
    stage = _stage(conn, dataset, table, dataset.column_names)
    cols, values = _q(dataset.column_names), _q(dataset.value_columns)
    rest = [c for c in cols if c.strip('"') not in dataset.key]
    if statement == "merge":
        match = " AND ".join(f"t.{c} = s.{c}" for c in _q(dataset.key))
        changed = (f" AND ({', '.join(f't.{c}' for c in values)}) IS DISTINCT FROM "
                   f"({', '.join(f's.{c}' for c in values)})" if values else "")
        sql = (f"MERGE INTO {dataset.name} t USING {stage} s ON {match} "
               f"WHEN MATCHED{changed} THEN UPDATE SET {', '.join(f'{c} = s.{c}' for c in rest)} "
               f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join(f's.{c}' for c in cols)})")
    else:
        changed = (f" WHERE ({', '.join(f'{dataset.name}.{c}' for c in values)}) IS DISTINCT FROM "
                   f"({', '.join(f'EXCLUDED.{c}' for c in values)})" if values else "")
        sql = (f"INSERT INTO {dataset.name} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM {stage} "
               f"ON CONFLICT ({', '.join(_q(dataset.key))}) DO UPDATE SET "
               f"{', '.join(f'{c} = EXCLUDED.{c}' for c in rest)}{changed}")
    return max(conn.exec_driver_sql(sql).rowcount, 0)


def delete_keys(conn: "Connection", dataset: Dataset, keys: "pa.Table") -> int:
    """Delete the rows whose keys are `keys`' rows (its key columns; others are ignored);
    returns the rows deleted (keys the table does not hold count nothing)."""
    stage = _stage(conn, dataset, keys, list(dataset.key))
    match = " AND ".join(f"t.{c} = s.{c}" for c in _q(dataset.key))
    return max(conn.exec_driver_sql(f"DELETE FROM {dataset.name} t USING {stage} s WHERE {match}").rowcount, 0)


def _stage(conn: "Connection", dataset: Dataset, table: "pa.Table", columns: list[str]) -> str:
    """A TEMP table (dropped at commit) of the dataset table's `columns`, holding `table`'s
    rows, copied in binary."""
    stage = f"stage_{dataset.name}" if len(columns) == len(dataset.columns) else f"stage_keys_{dataset.name}"
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "
                         f"SELECT {', '.join(_q(columns))} FROM {dataset.name} WITH NO DATA")
    conn.exec_driver_sql(f"TRUNCATE {stage}")
    pgcopy.copy_rows(conn, stage, dataset, table, columns)
    if table.num_rows > 10_000:  # a TEMP table is never auto-analysed; the join plan needs its size
        conn.exec_driver_sql(f"ANALYZE {stage}")
    return stage


def _may_exist(conn: "Connection", dataset: Dataset, table: "pa.Table") -> bool:
    """Whether the table may hold a key of `table`'s rows: a row with one of its first key
    column's values and, in each other orderable key column, a value within the batch's
    range. Never wrong when it says no (then a plain COPY cannot collide); may say yes
    needlessly. One index probe per value (LATERAL .. LIMIT 1): `= ANY(..)` over a big range
    is planned as a scan of every partition in it."""
    import pyarrow.compute as pc

    kinds = dict(dataset.columns)
    first = pc.unique(table.column(dataset.key[0]))
    if len(first) > _PROBE_VALUES or kinds[dataset.key[0]].kind != "str":
        return True
    where, params = [f't."{dataset.key[0]}" = k.v'], {"k": first.to_pylist()}
    for i, column in enumerate(dataset.key[1:], start=1):
        if kinds[column].kind in ("date", "ts", "int"):
            bounds = pc.min_max(table.column(column))
            where.append(f't."{column}" BETWEEN %(lo{i})s AND %(hi{i})s')
            params[f"lo{i}"], params[f"hi{i}"] = bounds["min"].as_py(), bounds["max"].as_py()
    return bool(conn.exec_driver_sql(
        f"SELECT EXISTS (SELECT 1 FROM unnest(%(k)s::text[]) AS k(v) CROSS JOIN LATERAL "
        f"(SELECT 1 FROM {dataset.name} t WHERE {' AND '.join(where)} LIMIT 1) hit)", params).scalar())


def _q(names) -> list[str]:
    return [f'"{n}"' for n in names]
