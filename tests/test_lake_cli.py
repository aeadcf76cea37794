"""`stockpipe lake optimize` through the CLI: exit code and JSON, the warehouse untouched."""

from __future__ import annotations

import contextlib
import io
import json

from helpers import clean_environment

from stockpipe.cli import main
from stockpipe.errors import ExitCode


def run_cli(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--json"])
    return code, json.loads(out.getvalue())


def test_lake_optimize_compacts_and_vacuums_and_a_load_after_it_writes_nothing(monkeypatch, tmp_path):
    clean_environment(monkeypatch, STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="60")
    monkeypatch.chdir(tmp_path)
    for symbol in ("AAA", "BBB"):  # two runs: two files per table and month
        assert run_cli("run", "--symbol", symbol)[0] == ExitCode.OK

    code, doc = run_cli("lake", "optimize", "--vacuum-hours", "0")

    assert code == ExitCode.OK, doc
    prices = doc["tables"]["prices_daily"]
    assert prices == {"files_removed": 6, "files_added": 3, "files_vacuumed": 6}  # 3 months, 2 files each, merged
    assert "compacted into" in doc["message"] and "older than 0 h vacuumed" in doc["message"]
    code, doc = run_cli("load")
    assert code == ExitCode.OK and doc["counts"]["rows_written"] == 0  # compaction changed no row
