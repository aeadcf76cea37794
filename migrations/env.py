"""Alembic environment: one migration history for SQLite and PostgreSQL.

Used both from a checkout (`alembic upgrade head` with ./alembic.ini) and from the
installed package (`stockpipe db upgrade`, which hands over an open connection).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from stockpipe.storage.schema import metadata

config = context.config


def _configure(connection) -> None:
    """Each migration in a transaction of its own, SQLite included: its DDL is transactional
    once pysqlite's autocommit is out of the way (storage.warehouse.upgrade hands over such a
    connection), so a process killed halfway leaves the previous revision, not half a schema.
    A connection already in a transaction (PostgreSQL's upgrade) keeps the one it has."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
        transactional_ddl=True,
        transaction_per_migration=True,
        on_version_apply=_applied,
    )
    with context.begin_transaction():
        context.run_migrations()


def _applied(*, ctx, step, heads, run_args) -> None:
    from stockpipe.storage.migrating import migrated

    migrated(step.up_revision_id or "")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from stockpipe.config import load_settings

        url = load_settings().database_url
    engine = create_engine(url)
    with engine.begin() as conn:
        _configure(conn)


if context.is_offline_mode():
    raise SystemExit("stockpipe migrations run online only: use `stockpipe db upgrade`")
run_migrations_online()
