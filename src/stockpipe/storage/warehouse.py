"""The SQL warehouse: engines, and the dialect-aware bulk upsert and replace (migrations: migrating.py;
what a database error means: dberrors.py, both re-exported here).

One engine per process and database URL: `create` hands out the same engine to every
stage, provider and check that asks for the same database, so a run holds one pool.

SQLite (the embedded default) and PostgreSQL share one schema and one alembic history.
Upserts write only rows whose values differ from what the table holds, so loading the
same lake twice writes nothing:
- SQLite: `INSERT .. ON CONFLICT DO UPDATE .. WHERE <a value differs>` via executemany;
- PostgreSQL (storage/pgload.py): binary COPY, streamed from Arrow on the caller's own
  connection; straight into the table when none of the keys can be there yet (a backfill,
  a new day), else into a TEMP staging table and one
  `INSERT .. SELECT .. ON CONFLICT DO UPDATE .. WHERE (..) IS DISTINCT FROM (..)`.
  prices_daily and indicators_daily are partitioned by month there (storage/partitions.py).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from ..errors import ConfigError
from ..models import Dataset
from . import schema
from .dberrors import from_db_error, unreachable
from .migrating import (alembic_config, check_revision, current_revision, downgrade, head_revision,  # noqa: F401
                        known_revision, migrated, migrations_dir, revision_fix, upgrade)
from .migrating import sqlite_pragmas as _sqlite_pragmas

if TYPE_CHECKING:
    import pyarrow as pa


def redact(url: str) -> str:
    """The URL with any password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL must still never leak
        return "<unparseable database URL>"


SUPPORTED = ("sqlite", "postgresql")  # the backends the migrations and the bulk load speak
_ENGINES: dict[tuple[int, str], Engine] = {}  # (process id, URL) -> its engine
_ENGINES_LOCK = threading.Lock()
_MAX_ENGINES = 8  # URLs a process keeps engines for; the least recently created goes first


def create(url: str) -> Engine:
    """The process's engine for `url`, created on first use (SQLite gets WAL and a busy
    timeout); every later call with the same URL returns the same engine.

    An in-memory SQLite URL is a new database each time, so it is never shared; a forked
    child gets engines of its own (a pool must not cross a fork).

    Raises:
        ConfigError: the URL is malformed or names a driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise _unusable(url, exc) from None
    if parsed.get_backend_name() not in SUPPORTED:
        raise ConfigError(f"database URL {redact(url)}: {parsed.get_backend_name()} is not supported: use "
                          "sqlite:///path.db or postgresql+psycopg2://user@host/db")
    key = _engine_key(parsed)
    if key is None:
        return _new_engine(url, parsed)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _new_engine(url, parsed)
            while len(_ENGINES) > _MAX_ENGINES:  # dropped, not disposed: a holder keeps using it
                del _ENGINES[next(iter(_ENGINES))]
        return engine


def _engine_key(parsed: sa.URL) -> tuple[int, str] | None:
    """(process id, URL) naming the engine `parsed` shares; None for in-memory SQLite."""
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return None
        parsed = parsed.set(database=os.path.abspath(parsed.database))  # a relative path follows the cwd
    return os.getpid(), parsed.render_as_string(hide_password=False)


def _new_engine(url: str, parsed: sa.URL) -> Engine:
    try:
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise _unusable(url, exc) from None
    except OSError as exc:  # the SQLite file's folder cannot be created
        raise ConfigError(f"cannot create the folder of {redact(url)} ({exc.strerror}): point --database-url / "
                          "STOCKPIPE_DATABASE_URL (or the data directory) at a writable place") from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _unusable(url: str, exc: Exception) -> ConfigError:
    return ConfigError(f"database URL {redact(url)} is not usable ({type(exc).__name__}): "
                       "use sqlite:///path.db or postgresql+psycopg2://user@host/db")


def check_reachable(engine: Engine) -> None:
    """Raises (password redacted) when the database does not answer: DatabaseUnavailableError
    (exit 5) for a server that is down or a file that cannot be read, ConfigError (exit 4)
    for refused credentials, an unknown database or a path that cannot be written."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        raise from_db_error(exc, engine.url) or unreachable(exc, engine.url) from None


# --------------------------------------------------------------------------- upsert


_IN_LIST = 500  # values per IN (...) list: far below every driver's parameter limit


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A transaction whose reads all see one committed state of the database, while other
    processes (a second shard's load) commit: PostgreSQL's REPEATABLE READ; on SQLite an
    explicit BEGIN (pysqlite would begin none before a SELECT, so each read would see the
    newest commit), which WAL pins to one snapshot at the first read. Committed on exit, so
    TEMP tables the reads made are dropped for good (quality_data.collect)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            yield conn


def chunks(items: Sequence[str], size: int = _IN_LIST) -> Iterator[Sequence[str]]:
    """`items` in slices of `size` (default: small enough for an IN list on every driver)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def replace(conn: Connection, dataset: Dataset, symbols: Iterable[str], table: "pa.Table") -> tuple[int, int]:
    """Make `table` all of `dataset`'s rows for `symbols`: delete the symbols' rows, then
    insert, in the caller's transaction, so a row the new ones lack (an adjustment span a
    new split made obsolete) vanishes and no reader sees a mix of old and new.

    Returns:
        (rows deleted, rows written).
    """
    target = schema.DATA_TABLES[dataset.name]
    deleted = 0
    for part in chunks(sorted(set(symbols))):
        deleted += max(conn.execute(target.delete().where(target.c.symbol.in_(part))).rowcount, 0)
    return deleted, upsert(conn, dataset, table)


def distinct_symbols(dataset: Dataset) -> sa.Select:
    """The query for the symbols `dataset`'s table holds."""
    return sa.select(schema.DATA_TABLES[dataset.name].c.symbol).distinct()


def delete_rows(conn: Connection, dataset: Dataset, keys: "pa.Table | None" = None,
                symbols: Iterable[str] | None = None) -> int:
    """Delete rows of `dataset` in the caller's transaction: those whose key is in `keys`
    (a table of the key columns: a change feed's deleted rows; keys the table does not hold
    count nothing), or all of `symbols`' rows, or — given neither — every row. Returns the
    rows deleted."""
    target = schema.DATA_TABLES[dataset.name]
    if keys is not None:
        return _delete_keys(conn, dataset, keys)
    if symbols is None:
        return max(conn.execute(target.delete()).rowcount, 0)
    return sum(max(conn.execute(target.delete().where(target.c.symbol.in_(part))).rowcount, 0)
               for part in chunks(sorted(set(symbols))))


def begin_load(conn: Connection, dataset: Dataset) -> None:
    """Call first in a load's transaction, before it reads or deletes `dataset`'s rows. On
    PostgreSQL, for a month-partitioned table, it takes the transaction's lock on creating
    its partitions (partitions.lock): attaching a month locks the DEFAULT partition
    exclusively, so a second load (another shard) that had read the table and then waited
    for that lock would deadlock with the first. Taken first, the second load waits holding
    nothing of the table: loads of one partitioned table run one after another."""
    if conn.dialect.name == "postgresql":
        from . import partitions

        if dataset.name in partitions.PARTITIONED:
            partitions.lock(conn, dataset.name)


def upsert(conn: Connection, dataset: Dataset, table: "pa.Table") -> int:
    """Insert new rows and update changed ones, in the caller's transaction; returns the
    number of rows written (rows equal but for the volatile columns are not written)."""
    return upsert_batches(conn, dataset, [table])


def upsert_batches(conn: Connection, dataset: Dataset, batches: Iterable["pa.Table"]) -> int:
    """`upsert` of each batch, holding one at a time: what a load streaming a whole lake
    snapshot calls, in one transaction with its watermark. On PostgreSQL, the months a
    backfill brings that have no partition yet are filled from every batch and keyed once at
    the end (pgload.upsert_batches); keys must be unique across the batches. Returns the rows
    written. Both dialects take Arrow text as string, large_string, string_view or
    dictionary, and any int, float, date or timestamp width (test_pgcopy.py)."""
    if conn.dialect.name == "postgresql":
        from . import pgload  # numpy, only once there are rows to write

        return pgload.upsert_batches(conn, dataset, (b for b in batches if b.num_rows))
    return sum(_upsert_sqlite(conn, dataset, b.select(dataset.column_names)) for b in batches if b.num_rows)


def _delete_keys(conn: Connection, dataset: Dataset, keys: "pa.Table") -> int:
    """PostgreSQL: one DELETE .. USING a TEMP table COPY filled (pgload); SQLite: executemany."""
    if keys.num_rows == 0:
        return 0
    if conn.dialect.name == "postgresql":
        from . import pgload

        return pgload.delete_keys(conn, dataset, keys)
    where = " AND ".join(f"{c} = ?" for c in _q(dataset.key))
    rows = list(zip(*(_sqlite_column(keys.column(c)) for c in dataset.key)))
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(f"DELETE FROM {dataset.name} WHERE {where}", rows)
        return max(cursor.rowcount, 0)
    finally:
        cursor.close()


def _upsert_sqlite(conn: Connection, dataset: Dataset, table: "pa.Table") -> int:
    cols = dataset.column_names
    values = dataset.value_columns
    changed = " OR ".join(f'"{c}" IS NOT excluded."{c}"' for c in values)
    sql = (
        f'INSERT INTO {dataset.name} ({", ".join(_q(cols))}) VALUES ({", ".join("?" for _ in cols)}) '
        f'ON CONFLICT ({", ".join(_q(dataset.key))}) DO UPDATE SET '
        + ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c not in dataset.key)
        + (f" WHERE {changed}" if changed else "")
    )
    rows = list(zip(*(_sqlite_column(table.column(c)) for c in cols)))
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, rows)
        return max(cursor.rowcount, 0)
    finally:
        cursor.close()


def _sqlite_column(column: "pa.ChunkedArray") -> list:
    """Python values as SQLAlchemy's SQLite types store them (ISO text for dates/times)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type):  # UTC, formatted in Arrow's C++ rather than per value in Python
        column = pc.strftime(pc.cast(column, pa.timestamp("us", tz="UTC")), format="%Y-%m-%d %H:%M:%S")
    elif pa.types.is_date(column.type):
        column = pc.cast(column, pa.string())
    return column.to_pylist()


def _q(names) -> list[str]:
    return [f'"{n}"' for n in names]

