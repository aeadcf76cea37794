"""Warehouse migrations (alembic, shipped inside the package): where the database stands,
and upgrades that are all or nothing per migration and one process at a time."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import crashpoints
from ..errors import ConfigError
from .dberrors import shown as _shown

if TYPE_CHECKING:
    from alembic.config import Config



def migrations_dir() -> Path:
    """The alembic script directory: inside the installed package, else the checkout's."""
    try:
        from importlib.resources import files

        return Path(str(files("stockpipe.migrations")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
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
        sqlite_pragmas(dbapi_conn, record)

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


def sqlite_pragmas(dbapi_conn, _record) -> None:
    """What every SQLite connection gets, the warehouse engine's and the migration's: a busy
    timeout, WAL, synchronous=NORMAL."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: switching a fresh file to WAL may have to wait
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
