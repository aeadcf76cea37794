"""Monthly range partitions of the big PostgreSQL tables (`PARTITIONED`): the hot index of a
nightly load is one month's, not ten years' (PERFORMANCE.md §2: 0.29 s vs 0.81 s a day).

Migration 0012 turns the tables into `PARTITION BY RANGE (date)` parents with a month
partition for every month they held and a DEFAULT partition; loads create the months their
rows need, and the next one ahead, before copying (`ensure_months`). The partitions live in
the schema `SCHEMA`, so the public schema (and SQLAlchemy's reflection of it) holds exactly
the tables models.py declares; queries name the parent and never need to know.

The DEFAULT partition is a safety net for rows written by something other than a load (a
hand-written INSERT): a month created later takes its rows out of it (`attach`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Iterable, Sequence

import sqlalchemy as sa

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Connection

SCHEMA = "stockpipe_partitions"
PARTITIONED = {"prices_daily": "date", "indicators_daily": "date"}  # table -> its range column
_LOCK_TIMEOUT = "5s"  # a side transaction waiting longer for its lock gives way to the caller's
_BOUND = re.compile(r"FROM \((?:'([^']*)'|MINVALUE)\) TO \((?:'([^']*)'|MAXVALUE)\)")


def month_partition(table: str, month: dt.date) -> str:
    return f"{SCHEMA}.{table}_{month:%Y_%m}"


def default_partition(table: str) -> str:
    return f"{SCHEMA}.{table}_default"


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def row_months(column: "pa.Array | pa.ChunkedArray"):  # -> numpy datetime64[M] array
    """Each value's month (a date column without NULLs: a key column)."""
    import pyarrow as pa

    return column.cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]").astype("datetime64[M]")


def months_of(column: "pa.Array | pa.ChunkedArray") -> list[dt.date]:
    """The first days of the months a date column's values fall in, ascending."""
    import numpy as np

    return [m.astype(dt.date) for m in np.unique(row_months(column)).astype("datetime64[D]")]


def ranges(conn: "Connection", table: str) -> list[tuple[dt.date, dt.date]] | None:
    """The [from, to) ranges of `table`'s partitions (not the default), or None when `table`
    is not a partitioned table (a PostgreSQL database before 0012)."""
    rows = conn.exec_driver_sql(
        "SELECT c.relkind, pg_get_expr(p.relpartbound, p.oid) FROM pg_class c "
        "LEFT JOIN pg_inherits i ON i.inhparent = c.oid LEFT JOIN pg_class p ON p.oid = i.inhrelid "
        "WHERE c.oid = to_regclass(%(t)s)", {"t": table}).all()
    if not rows or rows[0][0] != "p":
        return None
    out = []
    for _, bound in rows:
        found = _BOUND.search(bound or "")
        if found:
            low, high = found.groups()
            out.append((dt.date.fromisoformat(low) if low else dt.date.min,
                        dt.date.fromisoformat(high) if high else dt.date.max))
    return out


def missing(conn: "Connection", table: str, months: Iterable[dt.date]) -> list[dt.date]:
    """The months no partition of `table` covers yet (none when `table` is not partitioned)."""
    held = ranges(conn, table)
    if held is None:
        return []
    return [m for m in sorted(set(months)) if not any(low < next_month(m) and m < high for low, high in held)]


def ensure_months(conn: "Connection", table: str, months: Iterable[dt.date], ahead: bool = True) -> list[dt.date]:
    """Create the month partitions of `table` that `months` (first days) need, and (`ahead`)
    the month after the newest; returns the months created.

    They are created and committed in a short transaction of their own, so the caller's
    (possibly long) load never holds the parent's DDL locks and readers never wait for it;
    an empty partition left by a load that then rolls back is harmless. When the caller's
    transaction already holds a lock on the table (an earlier write or read in it), a
    second session would wait for it forever, so they are created in the caller's
    transaction instead; likewise when the side session cannot get its lock in time.
    """
    months = sorted(set(months))
    if not months:
        return []
    wanted = [*months, next_month(months[-1])] if ahead else months
    if not missing(conn, table, wanted):
        return []
    if not _locked_here(conn, table):
        try:
            with conn.engine.begin() as side:
                side.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
                created = _create(side, table, wanted, wait=False)
            if created is not None:
                return created
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != "55P03":  # lock_not_available
                raise
    return _create(conn, table, wanted)


def _locked_here(conn: "Connection", table: str) -> bool:
    return bool(conn.exec_driver_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' "
        "AND relation IN (to_regclass(%(t)s), to_regclass(%(d)s)))",
        {"t": table, "d": default_partition(table)}).scalar())


def lock(conn: "Connection", table: str, wait: bool = True) -> bool:
    """Take the transaction's lock on creating `table`'s partitions (one creator at a time: a
    shard that waited finds them made); without `wait`, False when another session holds it."""
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    taken = conn.exec_driver_sql(f"SELECT {function}(hashtext(%(k)s))", {"k": f"{SCHEMA}.{table}"}).scalar()
    return wait or bool(taken)


def _create(conn: "Connection", table: str, months: list[dt.date], wait: bool = True) -> list[dt.date] | None:
    """Create the missing ones of `months`; None (without `wait`) when another session is
    creating partitions of `table` (it may be the caller's own transaction)."""
    if not lock(conn, table, wait):
        return None
    todo = missing(conn, table, months)
    for month in todo:
        create_month(conn, table, month)
    return todo


def fresh(conn: "Connection", table: str, months: Iterable[dt.date]) -> list[dt.date]:
    """The months of `months` with no partition and no rows in the DEFAULT partition: a load
    may fill them before building their key (`new_table`, then `attach(.., key=)`)."""
    todo = missing(conn, table, months)
    if not todo or conn.exec_driver_sql("SELECT to_regclass(%(d)s) IS NULL", {"d": default_partition(table)}).scalar():
        return todo
    column = PARTITIONED[table]
    held = {m for (m,) in conn.exec_driver_sql(
        f'SELECT DISTINCT date_trunc(\'month\', "{column}")::date FROM {default_partition(table)} '
        f'WHERE "{column}" >= %(lo)s AND "{column}" < %(hi)s', {"lo": todo[0], "hi": next_month(todo[-1])})}
    return [m for m in todo if m not in held]


def create_month(conn: "Connection", table: str, month: dt.date) -> None:
    """Create `table`'s partition for `month`, moving in any rows of that month the DEFAULT
    partition holds."""
    new_table(conn, table, month)
    attach(conn, table, month)


def new_table(conn: "Connection", table: str, month: dt.date) -> str:
    """Create (not yet attached) the table that becomes `table`'s partition for `month`; no
    key yet, so a load can fill a `fresh` month first and key it after (`attach`)."""
    name = month_partition(table, month)
    conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    return name


def attach(conn: "Connection", table: str, month: dt.date, key: Sequence[str] = ()) -> None:
    """Make `new_table`'s table `table`'s partition for `month`. With `key` (a filled fresh
    month): build that primary key first, one sort instead of a btree insert per row (up to
    twice as fast as COPY into a keyed partition: bench/README.md), and the parent's key
    adopts it. Without: move in the DEFAULT partition's rows of the month (the parent's key builds
    the partition's). ATTACH rather than CREATE .. PARTITION OF: it takes only a SHARE UPDATE
    EXCLUSIVE lock on the parent, so reads and writes of other months go on meanwhile."""
    name, column, high = month_partition(table, month), PARTITIONED[table], next_month(month)
    if key:
        quoted = ", ".join(f'"{c}"' for c in key)
        conn.exec_driver_sql(f"ALTER TABLE {name} ADD PRIMARY KEY ({quoted})")
    elif conn.exec_driver_sql("SELECT to_regclass(%(d)s) IS NOT NULL", {"d": default_partition(table)}).scalar():
        within = f"\"{column}\" >= DATE '{month}' AND \"{column}\" < DATE '{high}'"
        conn.exec_driver_sql(f"WITH moved AS (DELETE FROM {default_partition(table)} WHERE {within} RETURNING *) "
                             f"INSERT INTO {name} SELECT * FROM moved")
    conn.exec_driver_sql(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{month}') TO ('{high}')")
