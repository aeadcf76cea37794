"""Run locks: one writer per shard, shards side by side, a whole-universe run excludes all;
flock files on every warehouse and advisory locks on PostgreSQL, released by a dying holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa

from stockpipe.errors import ExitCode, LockedError
from stockpipe.shards import Shard
from stockpipe.storage import lock

S1, S2 = Shard(1, 2), Shard(2, 2)


def test_the_same_shard_is_held_once(tmp_path):
    with lock.hold(tmp_path, "fetch", S1):
        with pytest.raises(LockedError, match=r"shard 1/2 .* locked by pid \d+ \(fetch\)") as caught:
            with lock.hold(tmp_path, "load", S1):
                pass
    assert caught.value.exit_code == ExitCode.LOCKED
    with lock.hold(tmp_path, "load", S1):  # released on exit
        pass


def test_different_shards_run_side_by_side(tmp_path):
    with lock.hold(tmp_path, "fetch", S1), lock.hold(tmp_path, "fetch", S2):
        pass


def test_a_whole_universe_run_and_a_shard_exclude_each_other(tmp_path):
    with lock.hold(tmp_path, "run", None):
        with pytest.raises(LockedError, match="shard 2/2"):
            with lock.hold(tmp_path, "fetch", S2):
                pass
    with lock.hold(tmp_path, "fetch", S2):
        with pytest.raises(LockedError, match=r"the whole universe .* pid \d+ \(fetch\) \[\.stockpipe\.shard-2-of-2\.lock\]"):
            with lock.hold(tmp_path, "run", None):
                pass


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from stockpipe.shards import parse
    from stockpipe.storage import lock
    with lock.hold(Path(sys.argv[1]), "run", parse(sys.argv[2]), sys.argv[3] or None):
        print("held", flush=True)
        time.sleep(600)
""")


def _holder(data_dir, shard: str, url: str = "") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(data_dir), shard, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    proc = _holder(tmp_path, "1/2")
    try:
        with pytest.raises(LockedError):
            with lock.hold(tmp_path, "run", S1):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    with lock.hold(tmp_path, "run", S1):
        pass


# ------------------------------------------------------------------ PostgreSQL


def _advisory_locks(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' "
                                        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).scalar()
    finally:
        engine.dispose()


def test_postgres_advisory_locks_exclude_across_data_directories(tmp_path, postgres_url):
    """Two machines share only the database: different data directories, same shard."""
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    with lock.hold(a, "fetch", S1, postgres_url):
        assert _advisory_locks(postgres_url) == 2  # universe (shared) + shard 1/2 (exclusive)
        with pytest.raises(LockedError, match="advisory"):
            with lock.hold(b, "fetch", S1, postgres_url):
                pass
        with lock.hold(b, "fetch", S2, postgres_url):  # another shard: fine
            pass
        with pytest.raises(LockedError, match="advisory"):
            with lock.hold(b, "run", None, postgres_url):  # the whole universe: not while a shard runs
                pass
    assert _advisory_locks(postgres_url) == 0  # a dedicated connection, really closed: nothing left behind


def test_postgres_advisory_lock_dies_with_its_holder(tmp_path, postgres_url):
    proc = _holder(tmp_path / "a", "2/2", postgres_url)
    try:
        with pytest.raises(LockedError, match="advisory"):
            with lock.hold(tmp_path / "b", "run", S2, postgres_url):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 30  # the server notices the closed socket at once; allow for a loaded machine
    while _advisory_locks(postgres_url) and time.monotonic() < deadline:
        time.sleep(0.1)
    with lock.hold(tmp_path / "b", "run", S2, postgres_url):
        pass
