"""Shared fixtures: settings in a temporary directory, real SQLite, real PostgreSQL, the
in-process CLI (`make_cli`, `cli`), a migrated warehouse (`engine`), the fake vendor server
(`fake_vendor`). Plain helpers are in helpers.py (`from helpers import ...`).

PostgreSQL tests read STOCKPIPE_TEST_DATABASE_URL. Without it they skip with a reason
on a developer's machine; under CI=true a skipped PostgreSQL test is a failure.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from fakevendor import fake_vendor  # noqa: F401 - a fixture, for every test module
from helpers import PROVIDER_FIXTURES, clean_environment, table_counts  # noqa: F401 - two re-exported (older imports)
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


@pytest.fixture
def engine(database_url: str):
    """A warehouse engine migrated to the newest revision, on SQLite and on PostgreSQL."""
    from stockpipe.storage import warehouse

    eng = warehouse.create(database_url)
    warehouse.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory) -> Settings:
    """Settings of a data directory (lake + SQLite warehouse) that one `run` of the demo
    provider filled for AAPL and MSFT (400 days up to NOW), shared by the tests that only
    read it (show, plot, export, the terminal layout). Never write to it."""
    from stockpipe import pipeline

    folder = tmp_path_factory.mktemp("demo-warehouse")
    settings = load_settings({"provider": "demo", "data_dir": folder / "data", "symbols": ("AAPL", "MSFT"),
                              "history_days": 400}, environ={}, cwd=folder)
    result = pipeline.run(settings, clock=clock)
    assert result.exit_code == 0, result.message
    return settings


@pytest.fixture
def make_cli(capsys, monkeypatch, tmp_path):
    """The one way to run `stockpipe ARGS` in-process: `make_cli(**environment)` drops the
    developer's settings (helpers.clean_environment), moves into the empty tmp_path, sets
    `environment` and returns `cli(*args) -> (exit code, stdout, stderr)`. A module's own
    `cli` fixture is `make_cli(...)` with what it needs (a fake vendor's URL, keys).

    The `stockpipe` logger is put back afterwards: a run points it at this test's captured
    stderr, which is closed once the test ends (a process runs `main` once; tests run it often)."""
    from stockpipe.cli import main

    def make(**environment: str):
        clean_environment(monkeypatch, **environment)
        monkeypatch.chdir(tmp_path)

        def call(*args: str) -> tuple[int, str, str]:
            code = main(list(args))
            out = capsys.readouterr()
            return code, out.out, out.err

        return call

    logger = logging.getLogger("stockpipe")  # logs.LOGGER
    saved = (logger.handlers[:], logger.level)
    yield make
    logger.handlers[:], logger.level = saved


@pytest.fixture
def cli(make_cli):
    """`stockpipe ARGS` offline (demo provider, 60 days of history) in an empty directory."""
    return make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="60")


# ------------------------------------------------------------------ the fault suite's figures


@pytest.fixture(scope="session", autouse=True)
def fault_figures(tmp_path_factory) -> Path:
    """faults-figures.json under pytest's base temporary directory: tests/faults/ add the
    figures the README's "Reliability" table quotes (faultharness.record)."""
    path = tmp_path_factory.getbasetemp() / "faults-figures.json"
    os.environ["PYTEST_FAULT_FIGURES"] = str(path)  # not STOCKPIPE_*: no setting
    return path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the fault figures, when a fault test wrote some."""
    import json

    path = os.environ.get("PYTEST_FAULT_FIGURES")
    if not path or not os.path.exists(path):
        return
    terminalreporter.section("fault figures (issue 11)")
    with open(path) as handle:
        figures = json.load(handle)
    for name, values in sorted(figures.items()):
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())
                                                            if k != "recorded_at"))
    terminalreporter.write_line(f"written to {path}")
