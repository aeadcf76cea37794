"""Schema drift (row 17 of issue 11): a warehouse one migration behind, at a revision newer
than the code, or whose `db upgrade` was killed halfway.

A killed upgrade is recoverable on both backends: every SQLite migration runs in a real
transaction (pysqlite's autocommit-on-DDL turned off, storage/warehouse.py), PostgreSQL's
upgrade in one; the crash point `during_migration` SIGKILLs `stockpipe db upgrade` after the
first migration's DDL, before its commit.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import environment_without_settings, query

from stockpipe.errors import ExitCode
from stockpipe.storage import warehouse

STOCKPIPE = [sys.executable, "-m", "stockpipe"]


def stockpipe(cwd: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = environment_without_settings(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="60",
                                               STOCKPIPE_DATABASE_URL=url, STOCKPIPE_DATA_DIR=str(cwd / "data"), **env)
    return subprocess.run([*STOCKPIPE, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False)


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def set_revision(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def test_a_killed_first_upgrade_is_recoverable(tmp_path, database_url):
    killed = stockpipe(tmp_path, database_url, "db", "upgrade", STOCKPIPE_CRASHPOINT="during_migration")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert tables(database_url) <= {"alembic_version"}  # the first migration rolled back: no half schema
    assert "alembic_version" not in tables(database_url) or query(database_url, "SELECT * FROM alembic_version") == []
    current = stockpipe(tmp_path, database_url, "db", "current")
    assert current.returncode == ExitCode.OK and "database at empty" in current.stdout, current
    upgraded = stockpipe(tmp_path, database_url, "db", "upgrade")
    assert upgraded.returncode == ExitCode.OK, upgraded.stderr
    ran = stockpipe(tmp_path, database_url, "run", "--all")
    assert ran.returncode == ExitCode.OK, ran.stderr
    assert query(database_url, "SELECT COUNT(DISTINCT symbol) FROM prices_daily") == [(4,)]


def test_a_killed_later_upgrade_stays_at_the_previous_revision(tmp_path, database_url):
    engine = warehouse.create(database_url)
    try:
        warehouse.upgrade(engine, "0006")
    finally:
        engine.dispose()
    killed = stockpipe(tmp_path, database_url, "db", "upgrade", STOCKPIPE_CRASHPOINT="during_migration")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert query(database_url, "SELECT version_num FROM alembic_version") == [("0006",)]
    assert "lake_applied" not in tables(database_url)  # 0007's table rolled back with it
    assert stockpipe(tmp_path, database_url, "db", "upgrade").returncode == ExitCode.OK
    assert query(database_url, "SELECT version_num FROM alembic_version") == [(warehouse.head_revision(),)]


@pytest.mark.parametrize("command", [("run", "--all"), ("fetch", "--all"), ("load",)], ids=lambda c: c[0])
def test_one_migration_behind_with_auto_migrate_off_refuses_to_write(tmp_path, database_url, command):
    engine = warehouse.create(database_url)
    try:
        warehouse.upgrade(engine)
        warehouse.downgrade(engine, "-1")
        behind = warehouse.current_revision(engine)
    finally:
        engine.dispose()
    done = stockpipe(tmp_path, database_url, *command, STOCKPIPE_AUTO_MIGRATE="false")
    assert done.returncode == ExitCode.CONFIG, done.stderr
    assert f"at revision {behind}" in done.stderr and "`stockpipe db upgrade`" in done.stderr
    assert query(database_url, "SELECT COUNT(*) FROM pipeline_runs") == [(0,)]  # refused, not half-written
    checked = stockpipe(tmp_path, database_url, "validate", STOCKPIPE_AUTO_MIGRATE="false")
    assert checked.returncode == ExitCode.CONFIG and "db upgrade" in checked.stdout, checked


def _migrated_then_marked_newer(database_url: str) -> None:
    """A database at head whose alembic_version then says 0999, a revision no stockpipe has."""
    engine = warehouse.create(database_url)
    try:
        warehouse.upgrade(engine)
    finally:
        engine.dispose()
    set_revision(database_url, "0999")


@pytest.mark.parametrize("command", [("run", "--all"), ("db", "upgrade"), ("load",), ("quality-check",)],
                         ids=lambda c: " ".join(c))
def test_a_newer_revision_than_the_code_is_refused(tmp_path, database_url, command):
    _migrated_then_marked_newer(database_url)
    done = stockpipe(tmp_path, database_url, *command)
    assert done.returncode == ExitCode.CONFIG, done.stderr
    head = warehouse.head_revision()
    assert re.search(rf"database \S+ is at revision 0999, newer than this stockpipe \(head {head}\): upgrade "
                     "stockpipe", done.stderr), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert query(database_url, "SELECT COUNT(*) FROM pipeline_runs") == [(0,)]


def test_a_newer_revision_is_named_by_validate_db_current_and_health_check(tmp_path, database_url):
    _migrated_then_marked_newer(database_url)
    advice = "the database is newer than this stockpipe: upgrade stockpipe"
    checked = stockpipe(tmp_path, database_url, "validate")
    assert checked.returncode == ExitCode.CONFIG and advice in checked.stdout, checked
    current = stockpipe(tmp_path, database_url, "db", "current")
    assert current.returncode == ExitCode.OK and advice in current.stdout and "db upgrade" not in current.stdout
    health = stockpipe(tmp_path, database_url, "health-check")
    assert health.returncode == 2 and advice in health.stdout, health
