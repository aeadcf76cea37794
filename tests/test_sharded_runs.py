"""`--shard i/n` and `--run-id` through the real CLI: slices that add up to the whole
universe, one lock per shard, and shards running side by side against one PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from stockpipe.cli import main
from stockpipe.errors import ExitCode
from stockpipe.shards import Shard

from helpers import clean_environment, environment_without_settings

SYMBOLS = ["AAPL", "MSFT", "IBM", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "XOM", "KO", "PEP"]
TABLES = ("prices_daily", "corporate_actions", "indicators_daily", "adjustments")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    clean_environment(monkeypatch, STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="200")
    monkeypatch.chdir(tmp_path)


def run_cli(*args: str) -> tuple[int, dict]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--json"])
    return code, json.loads(out.getvalue())


def contents(url: str) -> dict[str, list[tuple]]:
    """Every row of the data tables (without fetched_at/computed_at stamps)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for name in TABLES:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                columns = [c for c in table.c if not c.name.endswith("_at")]
                out[name] = sorted(tuple(r) for r in conn.execute(sa.select(*columns)))
            return out
    finally:
        engine.dispose()


def symbol_args() -> list[str]:
    return [a for s in SYMBOLS for a in ("--symbol", s)]


def test_the_shards_of_a_universe_add_up_to_the_unsharded_run(tmp_path):
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    code, _ = run_cli("run", *symbol_args(), "--data-dir", str(tmp_path / "whole"), "--database-url", whole)
    assert code == ExitCode.OK

    sharded = f"sqlite:///{tmp_path / 'sharded.db'}"
    for i in (1, 2, 3):
        code, doc = run_cli("run", *symbol_args(), "--shard", f"{i}/3", "--run-id", "nightly-42",
                            "--data-dir", str(tmp_path / "sharded"), "--database-url", sharded)
        assert code == ExitCode.OK, doc
        assert doc["run_id"] == "nightly-42"
    assert contents(sharded) == contents(whole)

    engine = sa.create_engine(sharded)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT run_id, shard, status FROM pipeline_runs ORDER BY id")).all()
        events = conn.execute(sa.text("SELECT DISTINCT run_id FROM run_events")).scalars().all()
        fetched = conn.execute(sa.text("SELECT p.shard, e.symbol FROM run_events e JOIN pipeline_runs p "
                                       "ON p.run_id = e.run_id WHERE e.stage = 'fetch'")).all()
    engine.dispose()
    assert [tuple(r) for r in runs] == [("nightly-42", f"{i}/3", "ok") for i in (1, 2, 3)]
    assert events == ["nightly-42"]
    # every shard's run fetched exactly its own slice (joined on the shared run_id: 3 shards x own symbols)
    per_shard = {}
    for shard, symbol in fetched:
        per_shard.setdefault(shard, set()).add(symbol)
    assert per_shard  # the join saw each shard's run rows
    assert {s for s in SYMBOLS} == set().union(*per_shard.values())


def test_each_stage_takes_only_its_shard(tmp_path):
    code, _ = run_cli("fetch", *symbol_args(), "--shard", "1/2")
    assert code == ExitCode.OK
    code, doc = run_cli("transform", "--shard", "2/2")  # shard 2 fetched nothing yet: nothing to transform
    assert code == ExitCode.OK and doc["counts"].get("indicators_written", 0) == 0
    code, doc = run_cli("transform", "--shard", "1/2")
    assert doc["counts"]["indicators_written"] > 0
    code, doc = run_cli("load", "--shard", "1/2")
    mine = set(Shard(1, 2).select(SYMBOLS))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'stockpipe-data' / 'stockpipe.db'}")
    with engine.connect() as conn:
        loaded = set(conn.execute(sa.text("SELECT DISTINCT symbol FROM prices_daily")).scalars())
        with_indicators = set(conn.execute(sa.text("SELECT DISTINCT symbol FROM indicators_daily")).scalars())
    engine.dispose()
    assert loaded == with_indicators == mine


def test_a_shard_held_elsewhere_exits_75_while_another_shard_runs(tmp_path):
    from stockpipe.storage import lock

    data = tmp_path / "stockpipe-data"
    with lock.hold(data, "fetch", Shard(1, 2)):  # as another process running shard 1/2 holds it
        code, doc = run_cli("fetch", *symbol_args(), "--shard", "1/2")
        assert code == ExitCode.LOCKED and "shard 1/2" in doc["error"]
        assert not list(data.glob("lake/**/*.parquet"))  # nothing written
        code, _ = run_cli("fetch", *symbol_args(), "--shard", "2/2")
        assert code == ExitCode.OK
        code, _ = run_cli("fetch", *symbol_args())  # the whole universe includes the held shard
        assert code == ExitCode.LOCKED


def test_bad_shard_and_run_id_are_usage_errors(capsys):
    assert main(["fetch", "--all", "--shard", "3/2"]) == ExitCode.USAGE
    assert "--shard '3/2'" in capsys.readouterr().err
    assert main(["load", "--run-id", "has space"]) == ExitCode.USAGE
    assert "--run-id" in capsys.readouterr().err


# ------------------------------------------------------------- shards in parallel


def _spawn(data_dir: Path, url: str, *args: str) -> subprocess.Popen:
    env = environment_without_settings(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="365",
                                       STOCKPIPE_DATABASE_URL=url, STOCKPIPE_DATA_DIR=str(data_dir))
    return subprocess.Popen([sys.executable, "-m", "stockpipe", *args, "--json", "--debug"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_shards_run_side_by_side_without_deadlock_or_lost_rows(tmp_path, postgres_url):
    """On PostgreSQL, the warehouse for parallel shards. (SQLite queues writers with WAL and
    a busy timeout, but a deferred transaction that read before another process wrote can
    fail at once with "database is locked" (exit 5): parallel shards want PostgreSQL.)"""
    url = postgres_url
    many = [f"S{i:03d}" for i in range(60)]
    universe = tmp_path / "universe.txt"
    universe.write_text("\n".join(many) + "\n")
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    done = subprocess.run([sys.executable, "-m", "stockpipe", "run", "--symbols-file", str(universe), "--json"],
                          env=environment_without_settings(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="365",
                                                           STOCKPIPE_DATABASE_URL=reference,
                                                           STOCKPIPE_DATA_DIR=str(tmp_path / "ref")),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    data = tmp_path / "shared"  # one data directory (one lake) and one warehouse for both shards
    first = _spawn(data, url, "run", "--symbols-file", str(universe), "--shard", "1/2", "--run-id", "night")
    second = _spawn(data, url, "run", "--symbols-file", str(universe), "--shard", "2/2", "--run-id", "night")
    deadline = time.monotonic() + 120  # once shard 1 holds its lock, a second copy of it must bounce
    lock_file = data / ".stockpipe.shard-1-of-2.lock"
    while time.monotonic() < deadline and not (lock_file.exists() and lock_file.read_text()):
        time.sleep(0.02)
    again = _spawn(data, url, "run", "--symbols-file", str(universe), "--shard", "1/2", "--run-id", "dup")
    outs = [p.communicate(timeout=600) for p in (first, second, again)]
    codes = [p.returncode for p in (first, second, again)]
    assert codes[:2] == [0, 0], [err for _, err in outs]
    assert codes[2] == ExitCode.LOCKED, outs[2]
    assert json.loads(outs[2][0])["exit_code"] == ExitCode.LOCKED

    assert contents(url) == contents(reference)  # nothing lost, nothing twice
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT run_id, shard, status FROM pipeline_runs ORDER BY shard")).all()
        fetched = conn.execute(sa.text("SELECT COUNT(DISTINCT symbol) FROM run_events WHERE run_id = 'night' "
                                       "AND stage = 'fetch' AND status = 'ok'")).scalar()
    engine.dispose()
    assert [tuple(r) for r in runs] == [("night", "1/2", "ok"), ("night", "2/2", "ok")]  # the bounced run left no row
    assert fetched == len(many)
