"""Issue 11 rows 1, 2 and 6 through the real CLI against a slow fake EODHD, on SQLite and
PostgreSQL: a SIGKILL mid-fetch or at a crash point, then a plain run that asks the vendor
for none of the symbols already saved and ends in the golden state; SIGTERM/SIGINT mid-run
(exit 130 within seconds, the run recorded interrupted); a second copy of a running run
(exit 75, the first unaffected).

Already covered elsewhere (not repeated here): every crash point with the demo provider
(tests/pipeline/test_lake_log.py::test_a_kill_at_any_point_ends_in_the_uninterrupted_state_after_one_plain_run),
SIGINT/SIGTERM with the demo provider on SQLite (tests/test_process.py), a held shard
(tests/test_sharded_runs.py).
"""

from __future__ import annotations

import signal
import subprocess
import time

import faultharness as h
import pytest
from helpers import query

from stockpipe.errors import ExitCode

SYMBOLS = tuple(f"KL{i}" for i in range(6))
SETTINGS = {"STOCKPIPE_EODHD_CALLS_PER_SECOND": "2", "STOCKPIPE_BATCH_ROWS": "300"}  # one symbol per lake batch


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """The uninterrupted run's content hashes (SQLite; the lake's are the backend's too)."""
    from fakevendor import FakeVendor

    folder = tmp_path_factory.mktemp("golden")
    with FakeVendor() as server:
        h.Eodhd(server)
        done = h.stockpipe(h.environment(folder / "data", f"sqlite:///{folder / 'w.db'}", server.url, **SETTINGS),
                           *h.run_args(SYMBOLS))
    assert done.returncode == 0, done.stderr[-2000:]
    return h.content_hashes(folder / "data", f"sqlite:///{folder / 'w.db'}")


def _saved(data_dir) -> set[str]:
    """Symbols whose bars the lake holds (committed versions only)."""
    if not (data_dir / "lake" / "prices_daily").exists():
        return set()
    return set(h.lake_rows(data_dir, "prices_daily")["symbol"])


def _statuses(url: str) -> list[str]:
    return [r[0] for r in query(url, "SELECT status FROM pipeline_runs ORDER BY id")]


def _assert_golden(data_dir, url, golden) -> None:
    hashes = h.content_hashes(data_dir, url)
    assert {k: v for k, v in hashes.items() if v != golden[k]} == {}


@pytest.mark.parametrize("where", ["mid-fetch", "after_lake_write", "before_load_commit"])
def test_a_killed_run_then_a_plain_one_refetches_nothing_saved(where, database_url, fake_vendor, tmp_path, golden):
    vendor = h.Eodhd(fake_vendor, latency=0.4)
    data = tmp_path / "data"
    env = h.environment(data, database_url, fake_vendor.url, **SETTINGS)
    if where == "mid-fetch":
        proc = subprocess.Popen(h.command(*h.run_args(SYMBOLS)), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(_saved(data)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)  # two symbols committed to the lake, others in flight
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    else:
        killed = h.stockpipe({**env, "STOCKPIPE_CRASHPOINT": where}, *h.run_args(SYMBOLS))
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = _saved(data)
    assert saved, "the kill came before anything was saved: nothing to prove"
    vendor.clear()

    again = h.stockpipe(env, *h.run_args(SYMBOLS))

    assert again.returncode == 0, again.stderr[-2000:]
    refetched = vendor.asked() & saved
    assert refetched == set(), f"asked again for {sorted(refetched)} though the lake held them"
    assert vendor.asked() == set(SYMBOLS) - saved  # and everything else exactly
    _assert_golden(data, database_url, golden)
    assert _statuses(database_url) == ["abandoned", "ok"]
    h.record(f"kill_{where}_{database_url.split(':')[0].split('+')[0]}", symbols_saved_before=len(saved),
             symbols_refetched=len(refetched), equal_to_golden=1)


def _run_under_way(env: dict, fake_vendor) -> subprocess.Popen:
    """A `run` of SYMBOLS started, returned once the fetch is under way (calls in flight)."""
    proc = subprocess.Popen(h.command(*h.run_args(SYMBOLS)), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not fake_vendor.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_stops_within_seconds_with_130_and_is_recorded(sig, database_url, fake_vendor, tmp_path,
                                                                         golden):
    h.Eodhd(fake_vendor, latency=0.4)
    data = tmp_path / "data"
    env = h.environment(data, database_url, fake_vendor.url, **SETTINGS)
    proc = _run_under_way(env, fake_vendor)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent

    assert proc.returncode == ExitCode.INTERRUPTED, err[-2000:]
    assert took < 5, f"stopped {took:.1f} s after the signal"
    assert query(database_url, "SELECT status, exit_code FROM pipeline_runs") == [("interrupted", 130)]
    again = h.stockpipe(env, *h.run_args(SYMBOLS))
    assert again.returncode == 0, again.stderr[-2000:]
    _assert_golden(data, database_url, golden)
    h.record(f"signal_{sig.name}_{database_url.split(':')[0].split('+')[0]}", seconds_to_stop=round(took, 2),
             exit_code=proc.returncode)


def test_a_second_copy_of_a_running_run_exits_75_and_the_first_is_unaffected(database_url, fake_vendor, tmp_path,
                                                                             golden):
    vendor = h.Eodhd(fake_vendor, latency=0.4)
    data = tmp_path / "data"
    env = h.environment(data, database_url, fake_vendor.url, **SETTINGS)
    first = _run_under_way(env, fake_vendor)
    started = time.monotonic()
    second = h.stockpipe(env, *h.run_args(SYMBOLS, "--json"))
    took = time.monotonic() - started
    _, err = first.communicate(timeout=120)

    assert second.returncode == ExitCode.LOCKED, second.stderr[-2000:]
    assert "locked" in second.stdout.lower() or "locked" in second.stderr.lower()
    assert first.returncode == 0, err[-2000:]
    assert sorted(c.path for c in vendor.calls()) == sorted({c.path for c in vendor.calls()})  # each asked once
    _assert_golden(data, database_url, golden)
    h.record(f"second_copy_{database_url.split(':')[0].split('+')[0]}", exit_code=second.returncode,
             seconds_to_refuse=round(took, 2))
