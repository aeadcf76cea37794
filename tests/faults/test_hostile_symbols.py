"""Hostile symbols and run ids, through every source the CLI reads them from.

Each must be refused with exit 65 (a symbol) or 2 (a run id) and a message naming where it
came from, or normalised (case) — and no file may appear outside the data directory, no
raw archive may be named after it, and no table may hold it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stockpipe.errors import BadInputError, ExitCode
from stockpipe.storage import archive

HOSTILE = [
    "AAPL'; DROP TABLE prices_daily;--",
    "../../../../OUTSIDE",
    "ok/../../..",
    "..",
    "A" * 10_000,
    "AA\x00PL",
    "AAPL\U0001F4C8",
    "BRK B",
    "AAPL\\..\\X",
]
GOOD_ROWS = "2024-01-02,9.5,10.2,9.1,10,9.9,1200\n2024-01-03,10,11,9,10.5,10.4,1000\n"
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


def files_outside(root: Path, data: Path) -> list[Path]:
    """Every file under `root` that is not in the data directory or an input we wrote."""
    return [p for p in root.rglob("*") if p.is_file() and data not in p.parents and "inputs" not in p.parts]


def warehouse_symbols(data: Path) -> set[str]:
    db = data / "stockpipe.db"
    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {r[0] for r in conn.execute("SELECT symbol FROM prices_daily")} if "prices_daily" in tables else set()


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    return folder


def _assert_refused(code: int, err: str, tmp_path: Path, needle: str) -> None:
    assert code == ExitCode.BAD_INPUT, err
    assert "malformed symbol" in err and needle in err, err
    assert len(err.strip().splitlines()) == 1, err
    data = tmp_path / "stockpipe-data"
    assert files_outside(tmp_path, data) == []
    assert warehouse_symbols(data) == set()


@pytest.mark.parametrize("bad", HOSTILE)
def test_flag(cli, tmp_path, bad):
    code, _, err = cli("run", "--symbol", bad)
    _assert_refused(code, err, tmp_path, "--symbol")


@pytest.mark.parametrize("bad", HOSTILE)
def test_symbols_file(cli, tmp_path, inputs, bad):
    (inputs / "tickers.txt").write_text(f"IBM\n{bad}\n", encoding="utf-8")
    code, _, err = cli("run", "--symbols-file", str(inputs / "tickers.txt"))
    _assert_refused(code, err, tmp_path, "line 2")


@pytest.mark.parametrize("bad", HOSTILE)
def test_csv_symbol_column(cli, tmp_path, inputs, bad):
    """The hole of issue 15: symbols from a CSV's symbol column skipped validation."""
    quoted = '"' + bad.replace('"', '""') + '"'
    body = "".join(f"{sym},{row}\n" for sym in ("IBM", quoted) for row in GOOD_ROWS.splitlines())
    (inputs / "many.csv").write_text(f"Symbol,{HEADER}\n{body}", encoding="utf-8")
    code, _, err = cli("run", "--provider", "csv", "--path", str(inputs / "many.csv"))
    _assert_refused(code, err, tmp_path, "many.csv line 4")


@pytest.mark.parametrize("stem", ["my data", "AAPL;X", "-rf"])
def test_csv_file_name(cli, tmp_path, inputs, stem):
    (inputs / f"{stem}.csv").write_text(f"{HEADER}\n{GOOD_ROWS}", encoding="utf-8")
    code, _, err = cli("fetch", "--provider", "csv", "--path", str(inputs))
    _assert_refused(code, err, tmp_path, "named after its symbol")


def test_lower_case_is_normalised_through_every_source(cli, tmp_path, inputs):
    (inputs / "tickers.txt").write_text("ibm\n", encoding="utf-8")
    assert cli("run", "--symbols-file", str(inputs / "tickers.txt"))[0] == 0
    (inputs / "csv").mkdir()
    (inputs / "csv" / "acme.csv").write_text(f"{HEADER}\n{GOOD_ROWS}", encoding="utf-8")
    (inputs / "csv" / "more.csv").write_text(f"symbol,{HEADER}\n" + "".join(f"beta,{r}\n" for r in GOOD_ROWS.splitlines()),
                                             encoding="utf-8")
    code, _, err = cli("run", "--provider", "csv", "--path", str(inputs / "csv"))
    assert code == 0, err
    assert warehouse_symbols(tmp_path / "stockpipe-data") == {"IBM", "ACME", "BETA"}
    assert files_outside(tmp_path, tmp_path / "stockpipe-data") == []


@pytest.mark.parametrize("bad", ["x/../y", "../../escape", "a\\b", "..", "has space", "nul\x00", "ünï"])
def test_run_id(cli, tmp_path, bad):
    code, _, err = cli("fetch", "--symbol", "IBM", "--run-id", bad)
    assert code == ExitCode.USAGE and "--run-id" in err, err
    assert files_outside(tmp_path, tmp_path / "stockpipe-data") == []
    assert not (tmp_path / "stockpipe-data" / "raw").exists()


@pytest.mark.parametrize("run_id", ["scheduled__2026-11-20T03:30:00+00:00", "manual__2026-11-20T03:30:00.123456+00:00",
                                    "0f3c9a4e5b6d4c2e8a1b7c9d0e2f4a6b", "nightly~1@host=a"])
def test_real_run_ids_name_archive_files(cli, tmp_path, run_id):
    code, _, err = cli("fetch", "--symbol", "IBM", "--run-id", run_id)
    assert code == 0, err
    archived = list((tmp_path / "stockpipe-data" / "raw").rglob("*.gz"))
    assert [p.name for p in archived] == [f"IBM.{run_id}.json.gz"]


# ------------------------------------------------------------- the archive's own guard


@pytest.mark.parametrize("symbol, run_id", [("../x", "r1"), ("AAPL", "../../r"), ("..", "r1"), ("A\x00", "r1"),
                                            ("AAPL", "a/b"), ("AAPL", ".")])
def test_archive_path_refuses_pieces_that_leave_the_folder(tmp_path, symbol, run_id):
    import datetime as dt

    with pytest.raises(BadInputError, match="cannot name a file"):
        archive.archive_path(tmp_path / "raw", "demo", dt.date(2026, 11, 23), symbol, run_id, "application/json")


@pytest.mark.parametrize("media_type, suffix", [("application/json", "json"), ("application/json; charset=utf-8", "json"),
                                                ("text/csv;charset=UTF-8", "csv"), ("Text/CSV", "csv"),
                                                ("text/html", "bin"), ("", "bin")])
def test_archive_suffix_ignores_media_type_parameters(media_type, suffix):
    assert archive.suffix_for(media_type) == suffix
