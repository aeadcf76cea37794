"""`export`: csv, parquet and json read back equal to the warehouse rows, to a file or to
stdout; filters, --adjusted, and the usage errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from conftest import clock
from helpers import as_utc
from stockpipe import pipeline
from stockpipe.errors import ExitCode, UsageError
from stockpipe.pipeline.export import _columns, export
from stockpipe.storage import reads, warehouse

START, END = dt.date(2026, 9, 1), dt.date(2026, 10, 31)


def stored(url: str, name: str, symbols=(), start=None, end=None) -> list[dict]:
    """The warehouse's rows, typed by SQLAlchemy, timestamps aware UTC."""
    with warehouse.create(url).connect() as conn:
        rows = reads.rows(conn, name, symbols, start, end)
    return [{k: as_utc(v) if isinstance(v, dt.datetime) else v for k, v in row.items()} for row in rows]


def typed(text_rows: list[dict], name: str) -> list[dict]:
    """csv or json values converted back by each column's kind."""
    parse = {"date": dt.date.fromisoformat, "ts": dt.datetime.fromisoformat, "float": float, "int": int,
             "str": str, "bool": bool}
    kinds = dict(_columns(name))
    return [{k: None if v in ("", None) else parse[kinds[k]](v) for k, v in row.items()} for row in text_rows]


def read_back(payload: bytes, fmt: str, name: str) -> list[dict]:
    if fmt == "csv":
        return typed(list(csv.DictReader(io.StringIO(payload.decode()))), name)
    if fmt == "json":
        return typed(json.loads(payload), name)
    return pq.read_table(io.BytesIO(payload)).to_pylist()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
@pytest.mark.parametrize("name", ["prices_daily", "indicators_daily", "corporate_actions", "daily_analytics"])
def test_every_format_reads_back_equal_to_the_warehouse(demo_warehouse, fmt, name):
    result = export(demo_warehouse, name, fmt)
    expected = stored(demo_warehouse.database_url, name)
    assert len(expected) > 0
    assert read_back(b"".join(result.chunks), fmt, name) == expected


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_a_symbol_at_a_time_makes_the_same_file(demo_warehouse, monkeypatch, tmp_path, fmt):
    """The export streams in chunks of symbols; a chunk of one gives the same rows (parquet:
    a row group per symbol), and writing to a file counts them."""
    from stockpipe.pipeline import export as exporting

    whole = read_back(b"".join(export(demo_warehouse, "prices_daily", fmt).chunks), fmt, "prices_daily")
    monkeypatch.setattr(exporting, "SYMBOLS_PER_CHUNK", 1)
    pieces = list(export(demo_warehouse, "prices_daily", fmt).chunks)
    assert len(pieces) >= 2 and read_back(b"".join(pieces), fmt, "prices_daily") == whole
    written = export(demo_warehouse, "prices_daily", fmt, tmp_path / f"all.{fmt}")
    assert written.details["rows"] == len(whole)
    assert read_back((tmp_path / f"all.{fmt}").read_bytes(), fmt, "prices_daily") == whole
    if fmt == "parquet":
        assert pq.ParquetFile(tmp_path / "all.parquet").num_row_groups == 2  # AAPL, MSFT


def test_a_file_of_one_symbol_and_window_adjusted(make_cli, demo_warehouse, tmp_path):
    cli = make_cli(STOCKPIPE_DATA_DIR=str(demo_warehouse.data_dir))
    code, out, err = cli("export", "--dataset", "prices_daily", "--adjusted", "--symbol", "AAPL", "--start",
                         str(START), "--end", str(END), "--out", "aapl.parquet", "--json")
    doc = json.loads(out)
    expected = stored(demo_warehouse.database_url, "prices_daily_adjusted", ["AAPL"], START, END)
    assert code == 0 and doc["rows"] == len(expected) > 30 and doc["dataset"] == "prices_daily_adjusted", err
    assert doc["format"] == "parquet" and doc["symbols"] == ["AAPL"]
    assert pq.read_table(tmp_path / "aapl.parquet").to_pylist() == expected
    assert {r["symbol"] for r in expected} == {"AAPL"} and min(r["date"] for r in expected) >= START


def test_stdout_carries_the_rows_and_nothing_else(make_cli, demo_warehouse):
    cli = make_cli(STOCKPIPE_DATA_DIR=str(demo_warehouse.data_dir))
    code, out, err = cli("export", "-d", "daily_analytics", "-s", "MSFT", "--start", str(START), "-f", "json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert typed(rows, "daily_analytics") == stored(demo_warehouse.database_url, "daily_analytics", ["MSFT"], START)
    code, out, _ = cli("export", "-s", "MSFT", "--start", "2030-01-01")  # csv by default, no rows: just the header
    assert code == 0 and out.splitlines() == [",".join(name for name, _ in _columns("prices_daily"))]


def test_export_on_postgresql_round_trips_too(make_settings, postgres_url, tmp_path):
    settings = make_settings(database_url=postgres_url, symbols=("IBM",), history_days=60)
    assert pipeline.run(settings, clock=clock).exit_code == 0
    for fmt in ("csv", "parquet", "json"):
        for name in ("prices_daily", "daily_analytics"):
            result = export(settings, name, fmt)
            assert read_back(b"".join(result.chunks), fmt, name) == stored(postgres_url, name), (fmt, name)


@pytest.mark.parametrize("args,needle", [
    (("--dataset", "pipeline_runs"), "--dataset 'pipeline_runs': use one of prices_daily"),
    (("--dataset", "quotes", "--adjusted"), "--adjusted applies to prices_daily, not quotes"),
    (("--format", "xml"), "--format 'xml': use one of csv, parquet, json"),
    (("--json",), "--json describes a written file: give --out FILE"),
    (("--start", "2026-10-01", "--end", "2026-09-01"), "--start 2026-10-01 is after --end 2026-09-01"),
    (("--out", "nowhere/x.csv"), "the directory nowhere does not exist"),
])
def test_usage_errors(make_cli, demo_warehouse, args, needle):
    cli = make_cli(STOCKPIPE_DATA_DIR=str(demo_warehouse.data_dir))
    code, out, err = cli("export", *args)
    assert code == ExitCode.USAGE and needle in err and len(err.splitlines()) == 1
    assert out == "" or json.loads(out)["exit_name"] == "usage"


def test_the_library_refuses_an_unknown_dataset_before_reading(demo_warehouse):
    with pytest.raises(UsageError):
        export(demo_warehouse, "nosuch", "csv")


def test_a_fresh_machine_has_nothing_to_export_and_creates_no_database(make_cli, tmp_path):
    cli = make_cli()
    code, out, err = cli("export")
    assert code == ExitCode.BAD_INPUT and out == "" and "no warehouse yet" in err and "stockpipe run --all" in err
    assert not (tmp_path / "stockpipe-data").exists()


def test_every_exportable_name_is_a_table_or_view_of_the_migrated_warehouse(engine):
    names = set(sa.inspect(engine).get_table_names()) | set(sa.inspect(engine).get_view_names())
    assert set(reads.exportable()) <= names
