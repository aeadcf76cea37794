"""Shared fixtures: settings in a temporary directory, real SQLite, real PostgreSQL.

PostgreSQL tests read STOCKPIPE_TEST_DATABASE_URL. Without it they skip with a reason
on a developer's machine; under CI=true a skipped PostgreSQL test is a failure.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from stockpipe.config import Settings, load_settings

# A fixed clock: Monday 2026-11-23 23:00 UTC = 18:00 New York, after the close,
# so the latest closed session is that Monday.
NOW = dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.timezone.utc)


def clock() -> dt.datetime:
    return NOW


@pytest.fixture
def make_settings(tmp_path: Path):
    """Build Settings as the CLI would, isolated from the real environment."""

    def build(environ: dict[str, str] | None = None, **flags) -> Settings:
        flags.setdefault("data_dir", tmp_path / "data")
        flags.setdefault("provider", "demo")  # offline: the default provider (yahoo) needs the internet
        return load_settings(flags, environ=environ or {}, cwd=tmp_path)

    return build


def _postgres_url() -> str:
    url = os.environ.get("STOCKPIPE_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but STOCKPIPE_TEST_DATABASE_URL is not set: PostgreSQL tests must run in CI")
        pytest.skip("STOCKPIPE_TEST_DATABASE_URL not set: no PostgreSQL to test against")
    return url


@pytest.fixture
def postgres_url() -> str:
    """A PostgreSQL database emptied for this test (public schema dropped and recreated)."""
    url = _postgres_url()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """Each test using this runs on real SQLite and on real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("postgres_url")


def table_counts(url: str) -> dict[str, int]:
    """Row count of every table (for "nothing changed" assertions)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {n: conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{n}"').scalar() for n in names}
    finally:
        engine.dispose()


def provider_fixtures() -> Path:
    """shared/fixtures/providers: STOCKPIPE_PROVIDER_FIXTURES, else beside the repository (as in CI)."""
    override = os.environ.get("STOCKPIPE_PROVIDER_FIXTURES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "providers"


PROVIDER_FIXTURES = provider_fixtures()


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `stockpipe ARGS` in-process in an empty directory, offline (demo provider, 60
    days of history; test modules may override this fixture), isolated from the real environment; returns (exit code, stdout, stderr)."""
    from stockpipe.cli import main

    for name in list(os.environ):
        if name.startswith("STOCKPIPE_") or name == "STATE_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setenv("STOCKPIPE_PROVIDER", "demo")
    monkeypatch.setenv("STOCKPIPE_HISTORY_DAYS", "60")
    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call
