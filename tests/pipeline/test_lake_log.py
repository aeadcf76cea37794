"""The lake is a log (issue 10): nothing lost between the lake and the warehouse, nothing
loaded twice, a nightly that costs what changed. Real Delta tables, real SQLite and
PostgreSQL, and the real CLI killed at every crash point."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from conftest import clock
from helpers import COMPARED, environment_without_settings, lake_rows, warehouse_rows
from stockpipe import crashpoints, pipeline
from stockpipe.errors import ExitCode, HealthCode
from stockpipe.models import DATASETS
from stockpipe.storage import warehouse
from stockpipe.storage.lake import Lake

SYMBOLS = ("AAA", "BBB", "CCC")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def assert_warehouse_equals_lake(data_dir: Path, url: str) -> None:
    for name in COMPARED:
        pd.testing.assert_frame_equal(warehouse_rows(url, name), lake_rows(data_dir, name), check_dtype=False,
                                      obj=name)


# ------------------------------------------------------------------ empty warehouses


def test_a_deleted_sqlite_warehouse_is_loaded_again_from_the_lake(make_settings, tmp_path):
    settings = make_settings(symbols=SYMBOLS, history_days=90)
    assert pipeline.run(settings, clock=clock).exit_code == ExitCode.OK
    (settings.data_dir / "stockpipe.db").unlink()
    warehouse.create(settings.database_url).dispose()  # this process's pooled connection still has the old file open

    again = pipeline.run(settings, clock=clock)

    counts = {s.stage: s.counts for s in again.stages}
    assert again.exit_code == ExitCode.OK, again.message
    assert counts["fetch"]["planned"] == 0  # symbol_state reconciled from the lake: nothing fetched twice
    assert counts["load"]["snapshots"] >= 4 and counts["quality-check"]["symbols_checked"] == 3
    assert_warehouse_equals_lake(settings.data_dir, settings.database_url)
    assert pipeline.health_check(settings, clock=clock).exit_code == HealthCode.OK


def test_an_existing_lake_pointed_at_a_fresh_postgresql_is_loaded(make_settings, postgres_url):
    sqlite = make_settings(symbols=SYMBOLS, history_days=90)
    assert pipeline.run(sqlite, clock=clock).exit_code == ExitCode.OK
    moved = make_settings(symbols=SYMBOLS, history_days=90, database_url=postgres_url)

    assert pipeline.run(moved, clock=clock).exit_code == ExitCode.OK

    assert_warehouse_equals_lake(moved.data_dir, postgres_url)
    assert warehouse_rows(postgres_url, "prices_daily").equals(warehouse_rows(sqlite.database_url, "prices_daily"))


def test_health_check_is_critical_when_the_warehouse_lacks_lake_rows(make_settings):
    settings = make_settings(symbols=SYMBOLS, history_days=90)
    assert pipeline.run(settings, clock=clock).exit_code == ExitCode.OK
    engine = sa.create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM prices_daily WHERE symbol = 'BBB'")
    engine.dispose()

    found = pipeline.health_check(settings, clock=clock)

    check = next(c for c in found.stages[0].checks if c.name == "lake loaded")
    assert found.exit_code == HealthCode.CRITICAL and not check.ok
    assert "prices_daily" in check.detail and "stockpipe load" in check.detail
    assert pipeline.load(settings, clock=clock, full=True).exit_code == ExitCode.OK
    assert pipeline.health_check(settings, clock=clock).exit_code == HealthCode.OK


# --------------------------------------------------------------- incremental changes


def test_a_restated_bar_rewrites_indicators_from_its_date_and_load_applies_only_the_change(make_settings):
    settings = make_settings(symbols=SYMBOLS, history_days=200)
    assert pipeline.run(settings, clock=clock).exit_code == ExitCode.OK
    lake = Lake(settings.lake_dir)
    prices = lake.read_frame(DATASETS["prices_daily"], ["BBB"])
    day = prices["date"].iloc[-10]
    restated = prices[prices["date"] == day].assign(close=lambda f: f["close"] * 1.01,
                                                    high=lambda f: f[["high", "close"]].max(axis=1) * 1.01)
    assert lake.merge(DATASETS["prices_daily"], restated).changed == {"BBB": 1}

    transformed = pipeline.transform(settings, clock=clock)
    loaded = pipeline.load(settings, clock=clock)

    indicators = transformed.stages[0].counts["indicators_written"]
    assert 0 < indicators <= 10  # from the restated day on, not BBB's whole history
    counts = loaded.stages[0].counts
    assert counts["prices_daily_written"] == 1 and counts["snapshots"] == 0
    assert counts["indicators_daily_written"] == indicators
    assert_warehouse_equals_lake(settings.data_dir, settings.database_url)
    assert pipeline.transform(settings, clock=clock).stages[0].counts["symbols"] == 0
    assert pipeline.load(settings, clock=clock).stages[0].counts["rows_written"] == 0


def test_a_late_split_rewrites_the_whole_symbol_and_load_deletes_obsolete_spans(make_settings):
    settings = make_settings(symbols=SYMBOLS, history_days=200)
    assert pipeline.run(settings, clock=clock).exit_code == ExitCode.OK
    lake = Lake(settings.lake_dir)
    dates = lake.read_frame(DATASETS["prices_daily"], ["CCC"])["date"]
    held = set(lake.read_frame(DATASETS["corporate_actions"], ["CCC"])["date"])
    day = next(d for d in dates.iloc[len(dates) // 2:] if d not in held)  # a date no action holds yet

    def vendor_says(ratio: float) -> None:
        lake.merge(DATASETS["corporate_actions"], pd.DataFrame({
            "symbol": ["CCC"], "date": [day], "kind": ["split"], "value": [ratio], "provider": ["demo"],
            "fetched_at": [pd.Timestamp(clock())]}))

    def spans() -> set:
        return set(warehouse_rows(settings.database_url, "adjustments")["valid_to"])

    vendor_says(4.0)  # a split the vendor had missed
    transformed = pipeline.transform(settings, clock=clock)
    assert pipeline.load(settings, clock=clock).stages[0].counts["rows_written"] > 0
    assert transformed.stages[0].counts["indicators_written"] >= len(dates) // 2  # re-based: the whole history
    assert f"{day:%Y-%m-%d}" in spans()
    assert_warehouse_equals_lake(settings.data_dir, settings.database_url)

    vendor_says(0.0)  # restated as unusable: its span must go, in the lake and the warehouse
    pipeline.transform(settings, clock=clock)
    loaded = pipeline.load(settings, clock=clock).stages[0].counts

    assert loaded["rows_deleted"] >= 1 and loaded["snapshots"] == 0
    assert f"{day:%Y-%m-%d}" not in spans()
    assert_warehouse_equals_lake(settings.data_dir, settings.database_url)
    assert pipeline.load(settings, clock=clock).stages[0].counts["rows_written"] == 0


def test_a_lake_of_release_0_1_is_converted_in_place_and_loaded(make_settings, tmp_path):
    settings = make_settings(symbols=("AAA", "BBB"))
    shutil.copytree(FIXTURES / "lake-0.1", settings.lake_dir)
    old = {name: sum(pq.read_table(f).num_rows for f in (settings.lake_dir / name).glob("month=*/data.parquet"))
           for name in COMPARED}

    assert pipeline.load(settings, clock=clock).exit_code == ExitCode.OK

    for name in COMPARED:
        assert (settings.lake_dir / name / "_delta_log").is_dir()
        assert len(warehouse_rows(settings.database_url, name)) == old[name] > 0
    assert_warehouse_equals_lake(settings.data_dir, settings.database_url)
    leftovers = [p for p in settings.lake_dir.rglob("*") if p.name.endswith(".tmp") or p.name == ".write.lock"]
    assert leftovers == []


# ------------------------------------------------------------------------ crash points


def _cli(data_dir: Path, url: str, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = environment_without_settings(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="60",
                                       STOCKPIPE_DATA_DIR=str(data_dir), STOCKPIPE_DATABASE_URL=url)
    env.pop("STOCKPIPE_CRASHPOINT", None)
    if crash:
        env["STOCKPIPE_CRASHPOINT"] = crash
    return subprocess.run([sys.executable, "-m", "stockpipe", *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """An uninterrupted run's lake content, what every interrupted one must end with."""
    data = tmp_path_factory.mktemp("golden")
    done = _cli(data, f"sqlite:///{data / 'golden.db'}", "run", *[a for s in SYMBOLS for a in ("--symbol", s)])
    assert done.returncode == 0, done.stderr
    return {name: lake_rows(data, name) for name in COMPARED}


@pytest.mark.parametrize("point", crashpoints.POINTS)
def test_a_kill_at_any_point_ends_in_the_uninterrupted_state_after_one_plain_run(tmp_path, database_url, golden,
                                                                                 point):
    data = tmp_path / "data"
    universe = [a for s in SYMBOLS for a in ("--symbol", s)]
    killed = _cli(data, database_url, "run", *universe, crash=point)
    assert killed.returncode == -9, killed.stderr  # SIGKILL: no cleanup ran

    again = _cli(data, database_url, "run", *universe, "--json")

    assert again.returncode == 0, again.stderr
    for name in COMPARED:
        pd.testing.assert_frame_equal(lake_rows(data, name), golden[name], check_dtype=False, obj=name)
    assert_warehouse_equals_lake(data, database_url)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        refetched = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM run_events e JOIN pipeline_runs r ON r.run_id = e.run_id "
            "WHERE e.stage = 'fetch' AND e.rows > 0 AND r.id = (SELECT MAX(id) FROM pipeline_runs)").scalar()
        statuses = [r[0] for r in conn.exec_driver_sql("SELECT status FROM pipeline_runs ORDER BY id")]
    engine.dispose()
    assert refetched == 0  # every crash point lies after the lake write: nothing fetched twice
    assert statuses == ["abandoned", "ok"]  # the killed run is not left "running"


def test_crash_points_are_inert_unless_armed(monkeypatch):
    monkeypatch.delenv("STOCKPIPE_CRASHPOINT", raising=False)
    for point in crashpoints.POINTS:
        crashpoints.hit(point)  # returns: this test process is still here
    assert os.getpid() > 0 and dt.date.today().year > 2000
