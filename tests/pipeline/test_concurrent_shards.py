"""Two shards writing one lake at the same time (issue 10): real CLI processes started
together, one PostgreSQL warehouse, real Delta tables. Their commits to each table race;
delta-rs refuses the loser's, which retries on the winner's version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from helpers import environment_without_settings
from test_lake_log import COMPARED, assert_warehouse_equals_lake, lake_rows

from stockpipe.errors import ExitCode

SYMBOLS = tuple(f"S{i:02d}" for i in range(24))


def _start(data_dir: Path, url: str, *args: str) -> subprocess.Popen:
    env = environment_without_settings(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="120",
                                       STOCKPIPE_DATA_DIR=str(data_dir), STOCKPIPE_DATABASE_URL=url)
    env.pop("STOCKPIPE_CRASHPOINT", None)
    universe = [a for s in SYMBOLS for a in ("--symbol", s)]
    return subprocess.Popen([sys.executable, "-m", "stockpipe", *args, *universe, "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(*processes: subprocess.Popen, codes=(ExitCode.OK,)) -> None:
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode in codes, err[-2000:] or out


def test_two_shards_side_by_side_end_with_the_rows_of_one_unsharded_run(tmp_path, postgres_url):
    alone = tmp_path / "alone"
    _finish(_start(alone, f"sqlite:///{tmp_path / 'alone.db'}", "run"))
    together = tmp_path / "together"

    _finish(_start(together, postgres_url, "run", "--shard", "1/2"), _start(together, postgres_url, "run", "--shard", "2/2"))

    for name in COMPARED:  # row for row, so a key written twice would show as an extra row
        pd.testing.assert_frame_equal(lake_rows(together, name), lake_rows(alone, name), check_dtype=False, obj=name)
    assert_warehouse_equals_lake(together, postgres_url)

    _finish(_start(together, postgres_url, "run", "--shard", "1/2"), _start(together, postgres_url, "run", "--shard", "2/2"),
            codes=(ExitCode.OK, ExitCode.NOTHING_TO_DO))

    for name in COMPARED:
        pd.testing.assert_frame_equal(lake_rows(together, name), lake_rows(alone, name), check_dtype=False, obj=name)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        written = conn.exec_driver_sql("SELECT COALESCE(SUM(rows), 0) FROM run_events e JOIN pipeline_runs r "
                                       "ON r.run_id = e.run_id WHERE r.id > 2").scalar()
    engine.dispose()
    assert written == 0  # the same day again: nothing fetched, transformed or loaded twice
