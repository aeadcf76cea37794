"""pipeline/verify.py: each invariant broken on purpose is named (every instance), `--repair`
fixes what it can, and a clean installation passes — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from conftest import NOW, clock
from stockpipe import pipeline
from stockpipe.errors import ExitCode, LockedError
from stockpipe.pipeline.verify import verify
from stockpipe.storage import lock, schema, warehouse


@pytest.fixture
def settings(make_settings, database_url):
    built = make_settings(database_url=database_url, symbols=("AAPL", "MSFT"), history_days=90)
    assert pipeline.run(built, clock=clock).exit_code == ExitCode.OK
    return built


def failed(result) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for check in result.stages[0].checks:
        if not check.ok and check.severity == "error":
            found.setdefault(check.name, []).append(check.detail)
    return found


def execute(settings, sql: str, **params) -> None:
    engine = warehouse.create(settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_a_clean_installation_passes_every_check(settings):
    result = verify(settings, clock=clock)
    assert result.exit_code == ExitCode.OK, result.message
    names = {c.name for c in result.stages[0].checks}
    assert {"migrations", "lake files", "lake keys", "warehouse keys", "warehouse = lake", "symbol_state", "runs",
            "database integrity", "litter"} <= names
    counts = result.stages[0].counts
    assert counts["lake_files_read"] > 0 and counts["warehouse_rows_compared"] > 0 and counts["problems"] == 0


def test_a_warehouse_unlike_the_lake_names_each_symbol_and_repair_reloads_it(settings):
    execute(settings, "UPDATE prices_daily SET close = close + 1 WHERE symbol = 'MSFT' AND date = "
            "(SELECT MAX(date) FROM prices_daily)")
    execute(settings, "DELETE FROM indicators_daily WHERE symbol = 'AAPL'")
    result = verify(settings, clock=clock)
    assert result.exit_code == ExitCode.INCONSISTENT
    details = failed(result)["warehouse = lake"]
    assert any("prices_daily" in d and "MSFT" in d and "AAPL" not in d for d in details), details
    assert any("indicators_daily" in d and "AAPL" in d for d in details), details

    assert verify(settings, repair=True, clock=clock).exit_code == ExitCode.OK
    pipeline.load(settings, clock=clock)
    assert verify(settings, clock=clock).exit_code == ExitCode.OK


def test_symbol_state_ahead_of_the_lake_is_named_and_set_back(settings):
    execute(settings, "UPDATE symbol_state SET last_date = :day WHERE dataset = 'prices_daily'", day=dt.date(2027, 1, 4))
    result = verify(settings, clock=clock)
    problems = failed(result)["symbol_state"]
    assert len(problems) == 2 and any(p.startswith("AAPL:") for p in problems) and any(p.startswith("MSFT") for p in problems)
    assert verify(settings, repair=True, clock=clock).exit_code == ExitCode.OK
    engine = warehouse.create(settings.database_url)
    with engine.connect() as conn:
        lasts = set(conn.execute(sa.select(schema.symbol_state.c.last_date)).scalars())
    assert lasts == {NOW.date()}


def test_runs_left_running_and_every_temp_file_are_named_then_cleared(settings):
    execute(settings, "UPDATE pipeline_runs SET status = 'running', finished_at = NULL")
    litter = [settings.raw_dir / "demo" / "2026-11-23" / ".AAPL.x.json.gz.tmp",
              settings.lake_dir / "prices_daily" / "month=2026-11" / ".data.parquet.4242.tmp",
              settings.lake_dir / "indicators_daily" / "_delta_log" / "_commit_0a1b.json.tmp"]
    for path in litter:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    result = verify(settings, clock=clock)
    problems = failed(result)
    assert len(problems["litter"]) == 3 and all(any(str(p) in d for d in problems["litter"]) for p in litter)
    assert problems["runs"]

    repaired = verify(settings, repair=True, clock=clock)
    assert repaired.exit_code == ExitCode.OK and not any(p.exists() for p in litter)
    assert any("temp file" in r for r in repaired.extra["repaired"])
    assert verify(settings, clock=clock).exit_code == ExitCode.OK


def test_a_key_twice_in_the_lake_is_named(settings):
    from deltalake import write_deltalake

    from stockpipe.models import DATASETS
    from stockpipe.storage.lake import Lake

    lake = Lake(settings.lake_dir)
    row = lake.read(DATASETS["corporate_actions"]).slice(0, 1)
    import pyarrow as pa

    row = row.append_column("month", pa.array([row["date"][0].as_py().strftime("%Y-%m")]))
    write_deltalake(str(lake.path(DATASETS["corporate_actions"])), row, mode="append")
    result = verify(settings, clock=clock)
    assert any("corporate_actions" in d and "1 key(s)" in d for d in failed(result)["lake keys"]), result.message


def test_migrations_behind_are_named(settings):
    engine = warehouse.create(settings.database_url)
    warehouse.downgrade(engine, "-1")
    result = verify(settings, clock=clock)
    assert result.exit_code == ExitCode.INCONSISTENT
    assert "stockpipe db upgrade" in failed(result)["migrations"][0]


def test_verify_waits_for_no_run_it_refuses_while_one_holds_the_lock(settings):
    with lock.hold(settings.data_dir, "run"):
        with pytest.raises(LockedError):
            verify(settings, clock=clock)
