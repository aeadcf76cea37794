"""The README's commands work as written, on a fresh directory, through the installed
`stockpipe` command: the first example (validate) and both typical chains, run twice (the
second time fetch has nothing new: 99, and the chain must go on)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stockpipe.models import DATASETS
from stockpipe.storage.lake import Lake

from helpers import environment_without_settings

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent  # the virtualenv's bin/, where pip put the `stockpipe` script


def shell(script: str, cwd: Path) -> subprocess.CompletedProcess:
    env = environment_without_settings(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="30",
                                       PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def chain_blocks() -> list[str]:
    """The ```sh blocks of the "typical chain" paragraph, as written."""
    text = README.read_text()
    part = text[text.index("A typical chain is `run`"):text.index("### Providers")]
    return re.findall(r"```sh\n(.*?)```", part, re.S)


@pytest.fixture(autouse=True)
def installed():
    if not (BIN / "stockpipe").exists():
        pytest.skip(f"no stockpipe script in {BIN}: pip install the package first")


def test_the_first_example_works_on_a_fresh_install_and_leaves_nothing(tmp_path):
    assert "`stockpipe validate --provider demo`" in README.read_text()
    done = shell("stockpipe validate --provider demo", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []  # no empty stockpipe.db, no data directory


@pytest.mark.parametrize("which", [0, 1], ids=["run", "stage-by-stage"])
def test_the_typical_chain_works_and_loads_what_was_fetched(tmp_path, which):
    block = chain_blocks()[which]
    for attempt in ("fresh", "again: nothing new"):
        done = shell(block, tmp_path)
        assert done.returncode == 0, (attempt, done.stdout[-3000:], done.stderr[-3000:])
    with sqlite3.connect(tmp_path / "stockpipe-data" / "stockpipe.db") as conn:
        loaded = conn.execute("SELECT COUNT(DISTINCT symbol) FROM prices_daily").fetchone()[0]
        rows = conn.execute("SELECT COUNT(*) FROM prices_daily").fetchone()[0]
    assert loaded == 4 and rows == Lake(tmp_path / "stockpipe-data" / "lake").count(DATASETS["prices_daily"])


def test_there_are_two_chains():
    blocks = chain_blocks()
    assert len(blocks) == 2 and "stockpipe run --all" in blocks[0] and "[ $rc -eq 99 ]" in blocks[1]
