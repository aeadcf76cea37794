"""The SQL warehouse: engines, migrations, and the dialect-aware bulk upsert and replace.

One engine per process and database URL: `create` hands out the same engine to every
stage, provider and check that asks for the same database, so a run holds one pool.

SQLite (the embedded default) and PostgreSQL share one schema and one alembic history.
Upserts write only rows whose values differ from what the table holds, so loading the
same lake twice writes nothing:
- SQLite: `INSERT .. ON CONFLICT DO UPDATE .. WHERE <a value differs>` via executemany;
- PostgreSQL: COPY into a TEMP staging table, then one
  `INSERT .. SELECT .. ON CONFLICT DO UPDATE .. WHERE (..) IS DISTINCT FROM (..)`.
"""

from __future__ import annotations

import fcntl
import io
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from .. import crashpoints
from ..errors import (
    ConfigError,
    DatabaseUnavailableError,
    StockpipeError,
    UnavailableError,
)
from ..models import Dataset
from . import schema

if TYPE_CHECKING:
    import pyarrow as pa
    from alembic.config import Config


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


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: switching a fresh file to WAL may have to wait
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def check_reachable(engine: Engine) -> None:
    """Raises (password redacted) when the database does not answer: DatabaseUnavailableError
    (exit 5) for a server that is down or a file that cannot be read, ConfigError (exit 4)
    for refused credentials, an unknown database or a path that cannot be written."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        raise from_db_error(exc, engine.url) or _unreachable(exc, engine.url) from None


# Connection refusals a person must fix in the URL or the server's configuration (exit 4).
_CREDENTIALS = ("password authentication failed", "no password supplied", "authentication failed",
                "does not exist", "pg_hba.conf", "permission denied for database")
_SQLITE_FULL = ("database or disk is full", "disk i/o error")
_SQLITE_PATH = ("unable to open database file", "attempt to write a readonly database", "readonly database")


def from_db_error(exc: BaseException, url: sa.URL | str | None = None) -> StockpipeError | None:
    """The StockpipeError a database error that reached no handler stands for, or None (a bug).

    PostgreSQL: refused credentials or an unknown database -> ConfigError (4); a server that
    is down, went away mid-run or refused the connection -> DatabaseUnavailableError (5).
    SQLite: a full disk -> UnavailableError (5); a file that cannot be opened or written (read-
    only file system, permissions) -> ConfigError (4); locked past the busy timeout -> 5.
    """
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    lower = text.lower()
    shown = _shown(url)
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return _unreachable(exc, url)
    module = type(original).__module__ or ""
    if module.startswith("sqlite3") or (url is not None and "sqlite" in str(url)[:7]):
        if any(m in lower for m in _SQLITE_FULL):
            return UnavailableError(f"database {shown}: {text}: free space on its file system, then run again")
        if any(m in lower for m in _SQLITE_PATH):
            return ConfigError(f"database {shown} cannot be opened for writing ({text}): point --database-url / "
                               "STOCKPIPE_DATABASE_URL or the data directory at a writable place")
        if "database is locked" in lower:
            return DatabaseUnavailableError(f"database {shown} stayed locked by another process ({text}): run again")
        return None
    if module.startswith("psycopg2") and type(original).__name__ in ("OperationalError", "InterfaceError"):
        if any(m in lower for m in _CREDENTIALS):
            return ConfigError(f"database {shown} refused the connection ({_scrub_url(text, url)}): check the user, "
                               "password and database name in STOCKPIPE_DATABASE_URL / --database-url")
        return _unreachable(exc, url)
    return None


def _unreachable(exc: BaseException, url: sa.URL | str | None) -> DatabaseUnavailableError:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    reason = _scrub_url(lines[0] if lines else type(original).__name__, url)
    return DatabaseUnavailableError(f"database {_shown(url)} is unreachable ({reason}): check STOCKPIPE_DATABASE_URL / "
                                    "--database-url and that the server is running")


def _shown(url: sa.URL | str | None) -> str:
    if url is None:
        return "(the warehouse)"
    return url.render_as_string(hide_password=True) if isinstance(url, sa.URL) else redact(url)


def _scrub_url(text: str, url: sa.URL | str | None) -> str:
    try:
        password = (url if isinstance(url, sa.URL) else make_url(url)).password if url is not None else None
    except Exception:  # noqa: BLE001 - an unparseable URL has no password to hide
        password = None
    return text.replace(password, "***") if password else text


# ------------------------------------------------------------------------ migrations


def migrations_dir() -> Path:
    """The alembic script directory: inside the installed package, else the checkout's."""
    try:
        from importlib.resources import files

        return Path(str(files("stockpipe.migrations")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(connection: Connection | None = None) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def known_revision(revision: str) -> bool:
    """Whether this stockpipe ships migration `revision`."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def revision_fix(current: str | None, head: str) -> str:
    """What to do about a database at `current` when this stockpipe's newest is `head`: ""
    when they match; upgrade stockpipe when the database is newer; else `db upgrade`."""
    if current == head:
        return ""
    if current is not None and not known_revision(current):
        return "the database is newer than this stockpipe: upgrade stockpipe"
    return "run `stockpipe db upgrade`"


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_revision(engine: Engine, auto_migrate: bool = True) -> tuple[str | None, str]:
    """(the database's revision, the newest this stockpipe ships), refusing what no command
    that writes may work on.

    Raises:
        ConfigError: the database is at a revision this stockpipe does not know (a newer
            stockpipe migrated it), or behind with `auto_migrate` off.
    """
    current, head = current_revision(engine), head_revision()
    if current is not None and current != head and not known_revision(current):
        raise ConfigError(f"database {_shown(engine.url)} is at revision {current}, newer than this stockpipe "
                          f"(head {head}): upgrade stockpipe (pip install -U stockpipe)")
    if current != head and not auto_migrate:
        raise ConfigError(f"database {_shown(engine.url)} is at revision {current or 'empty'}, this stockpipe needs "
                          f"{head}: run `stockpipe db upgrade` (auto_migrate is off)")
    return current, head


# pg_advisory_xact_lock key serialising migrations: shards that start together on a fresh
# PostgreSQL database would otherwise race to create the same tables.
_MIGRATION_LOCK = 0x73746B7069706531  # "stkpipe1"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`, one process at a time, each migration all or nothing.

    Shards that start together on a fresh database would otherwise race to create the same
    tables: PostgreSQL serialises on an advisory transaction lock, SQLite on an flock file
    beside the database. The others wait, then find the work done (alembic reads the
    revision only once the lock is held).

    A process killed halfway leaves the database at the revision before the migration it was
    in: PostgreSQL runs the whole upgrade in one transaction; SQLite (whose DDL is
    transactional, but which pysqlite would autocommit) runs each migration in a transaction
    of its own on a connection that SQLAlchemy's documented recipe gives real BEGINs
    (`_transactional_sqlite`).

    Raises:
        ConfigError: the database is at a revision newer than this stockpipe knows.
    """
    from alembic import command

    check_revision(engine)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with _sqlite_migration_lock(engine):
            migrating = _transactional_sqlite(engine)
            try:
                with migrating.connect() as conn:  # not in a transaction: alembic begins one per migration
                    command.upgrade(alembic_config(conn), revision)
            finally:
                migrating.dispose()
        engine.pool.dispose()  # connections opened before the migration may hold the old schema's view
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        command.upgrade(alembic_config(conn), revision)


def _transactional_sqlite(engine: Engine) -> Engine:
    """A one-connection engine on `engine`'s SQLite file whose transactions cover DDL too:
    pysqlite's own transaction handling is turned off and SQLAlchemy emits BEGIN itself
    (the recipe of SQLAlchemy's SQLite dialect documentation, "Serializable isolation /
    Savepoints / Transactional DDL")."""
    migrating = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)

    def connect(dbapi_conn, record) -> None:
        dbapi_conn.isolation_level = None
        _sqlite_pragmas(dbapi_conn, record)

    def begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # takes the write lock now: a racing writer waits (busy_timeout)

    sa.event.listen(migrating, "connect", connect)
    sa.event.listen(migrating, "begin", begin)
    return migrating


def migrated(revision: str) -> None:
    """Called by migrations/env.py once a migration's DDL ran, inside its transaction: the
    crash point `during_migration` kills the process there (the fault tests)."""
    crashpoints.hit("during_migration")


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


# --------------------------------------------------------------------------- upsert


_IN_LIST = 500  # values per IN (...) list: far below every driver's parameter limit


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
    (a table of the key columns), or all of `symbols`' rows, or — given neither — every
    row. Returns the rows deleted."""
    target = schema.DATA_TABLES[dataset.name]
    if keys is None and symbols is None:
        return max(conn.execute(target.delete()).rowcount, 0)
    if symbols is not None:
        return sum(max(conn.execute(target.delete().where(target.c.symbol.in_(part))).rowcount, 0)
                   for part in chunks(sorted(set(symbols))))
    if keys.num_rows == 0:
        return 0
    where = sa.and_(*(target.c[k] == sa.bindparam(f"k_{k}") for k in dataset.key))
    statement = target.delete().where(where)
    return sum(max(conn.execute(statement, {f"k_{k}": v for k, v in row.items()}).rowcount, 0)  # few: spans a split moved
               for row in keys.select(list(dataset.key)).to_pylist())


def upsert(conn: Connection, dataset: Dataset, table: "pa.Table") -> int:
    """Insert new rows and update changed ones; returns the number of rows written."""
    if table.num_rows == 0:
        return 0
    table = table.select(dataset.column_names)
    if conn.dialect.name == "postgresql":
        return _upsert_postgres(conn, dataset, table)
    return _upsert_sqlite(conn, dataset, table)


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


def _upsert_postgres(conn: Connection, dataset: Dataset, table: "pa.Table") -> int:
    import pyarrow.csv as pacsv

    cols = _q(dataset.column_names)
    stage = f"stage_{dataset.name}"
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {dataset.name} INCLUDING DEFAULTS) ON COMMIT DROP")
    conn.exec_driver_sql(f"TRUNCATE {stage}")
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    buffer.seek(0)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.copy_expert(f"COPY {stage} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()
    values = _q(dataset.value_columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c.strip('"') not in dataset.key)
    result = conn.exec_driver_sql(
        f"INSERT INTO {dataset.name} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM {stage} "
        f"ON CONFLICT ({', '.join(_q(dataset.key))}) DO UPDATE SET {updates} "
        f"WHERE ({', '.join(f'{dataset.name}.{c}' for c in values)}) IS DISTINCT FROM "
        f"({', '.join(f'EXCLUDED.{c}' for c in values)})"
    )
    return max(result.rowcount, 0)


def _q(names) -> list[str]:
    return [f'"{n}"' for n in names]

