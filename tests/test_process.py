"""The installed command as a process: imports kept light, signals, resume after interruption."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from stockpipe.errors import ExitCode
from stockpipe.models import DATASETS
from stockpipe.storage.lake import Lake

from helpers import environment_without_settings


def env_without_settings() -> dict[str, str]:
    # demo: offline; a year is enough to be interrupted mid-run, and quicker
    return environment_without_settings(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="365")


def stockpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stockpipe", *args], cwd=cwd, env=env_without_settings(),
                          capture_output=True, text=True, timeout=300)


HEAVY = ("pandas", "pyarrow", "numpy")


def test_help_and_health_check_do_not_import_pandas_or_pyarrow(tmp_path):
    probe = (
        "import sys\n"
        "from stockpipe.cli import main\n"
        "code = main(sys.argv[1:])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy, 'CODE', code, file=sys.stderr)\n"
    )
    for args in (["--help"], ["health-check"], ["run", "--help"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, env=env_without_settings(),
                              capture_output=True, text=True, timeout=60)
        assert "HEAVY [] CODE" in done.stderr, (args, done.stderr)


def test_sigint_mid_run_exits_130_and_the_next_run_resumes(tmp_path):
    symbols = tmp_path / "many.txt"
    symbols.write_text("\n".join(f"S{i:04d}" for i in range(1200)) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "stockpipe", "run", "--symbols-file", str(symbols)],
                            cwd=tmp_path, env=env_without_settings(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    db = tmp_path / "stockpipe-data" / "stockpipe.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "stockpipe-data" / "raw").rglob("*.gz")):
        time.sleep(0.05)  # wait until fetching is under way
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "interrupted" in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, exit_code FROM pipeline_runs").fetchall() == [("interrupted", 130)]

    done = stockpipe("run", "--symbols-file", str(symbols), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        held = conn.execute("SELECT COUNT(DISTINCT symbol), COUNT(*) FROM prices_daily").fetchone()
        indicators = conn.execute("SELECT COUNT(*) FROM indicators_daily").fetchone()[0]
    lake = Lake(tmp_path / "stockpipe-data" / "lake")
    assert held[0] == 1200 and indicators == held[1] == lake.count(DATASETS["prices_daily"])  # nothing left unloaded
    again = json.loads(stockpipe("run", "--symbols-file", str(symbols), "--json", cwd=tmp_path).stdout)
    assert again["exit_code"] == ExitCode.NOTHING_TO_DO and again["counts"]["rows_written"] == 0


def test_sigterm_is_handled_like_sigint(tmp_path):
    symbols = tmp_path / "many.txt"
    symbols.write_text("\n".join(f"T{i:04d}" for i in range(5000)) + "\n")  # far more than it gets through
    proc = subprocess.Popen([sys.executable, "-m", "stockpipe", "fetch", "--symbols-file", str(symbols)],
                            cwd=tmp_path, env=env_without_settings(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "stockpipe-data" / "raw").rglob("*.gz")):
        time.sleep(0.05)
    assert proc.poll() is None, "the fetch ended before the signal could be sent"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, err
