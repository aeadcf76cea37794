"""Issue 15, item 5: the csv provider honours a `Ticker`/`Symbol`/`Code` column (a file of
AMD rows named tick.csv is AMD, not TICK), refuses a file whose every date is unreadable
(exit 65, naming the setting `csv_date_format`, which reads them), and takes EODHD's trailing
row count for what it is, not a reject."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from stockpipe import errors
from stockpipe.errors import ExitCode
from stockpipe.providers.csvfile import CsvProvider

from helpers import db, fixture_bytes

START, END = dt.date(2000, 1, 1), dt.date(2100, 1, 1)
AMD = ("{column},Date,Open,High,Low,Close,Volume\n"
       "AMD,2024-06-03,166.51,167.9,163.4,164.55,39582000\n"
       "AMD,2024-06-04,164.0,165.78,161.21,163.15,33420000\n")
DAY_FIRST = ("Date,Open,High,Low,Close,Volume\n"
             "19-11-2026,101.2,103.0,100.8,102.5,1200000\n"
             "20-11-2026,102.5,104.1,101.9,103.8,1100000\n")


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode())
    return path


def parse(provider: CsvProvider, symbol: str):
    return provider.parse_daily(provider.fetch_daily(symbol, START, END), START, END)


@pytest.mark.parametrize("column", ["Ticker", "Symbol", "Code", "ticker"])
def test_a_ticker_symbol_or_code_column_names_the_rows(tmp_path, column):
    write(tmp_path, "tick.csv", AMD.format(column=column))
    provider = CsvProvider(tmp_path)
    assert provider.symbols() == ["AMD"]  # not TICK, the file's name
    assert parse(provider, "AMD").bars["close"].tolist() == [164.55, 163.15]


def test_every_date_unreadable_is_refused_naming_the_setting(tmp_path):
    write(tmp_path, "ACME.csv", DAY_FIRST)
    with pytest.raises(errors.BadInputError) as caught:
        parse(CsvProvider(tmp_path), "ACME")
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert "line 2: '19-11-2026'" in message and "csv_date_format" in message and "%d-%m-%Y" in message


def test_csv_date_format_reads_them(tmp_path):
    write(tmp_path, "ACME.csv", DAY_FIRST)
    parsed = parse(CsvProvider(tmp_path, date_format="%d-%m-%Y"), "ACME")
    assert parsed.bars["date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-11-19", "2026-11-20"]


def test_some_unreadable_dates_are_rejects_not_a_refusal(tmp_path):
    write(tmp_path, "ACME.csv", DAY_FIRST.replace("19-11-2026", "2026-11-19"))
    parsed = parse(CsvProvider(tmp_path), "ACME")
    assert len(parsed.bars) == 1 and [r["reason"] for r in parsed.rejected] == ["bad_date"]


def test_eodhds_trailing_count_line_is_not_a_reject(tmp_path):
    (tmp_path / "AAPL.csv").write_bytes(fixture_bytes("eodhd", "eod_success_count_line.csv"))
    parsed = parse(CsvProvider(tmp_path), "AAPL")
    assert len(parsed.bars) == 5 and parsed.rejected == ()


def test_a_count_line_under_a_symbol_column_is_no_symbol(tmp_path):
    write(tmp_path, "export.csv", AMD.format(column="Code") + "2\n")
    assert CsvProvider(tmp_path).symbols() == ["AMD"]


def test_the_cli_exits_65_and_names_the_setting_then_imports_with_it(make_cli, tmp_path):
    write(tmp_path / "prices", "ACME.csv", DAY_FIRST)
    cli = make_cli()
    code, out, err = cli("fetch", "--provider", "csv", "--path", "prices", "--json")
    assert code == ExitCode.BAD_INPUT and "csv_date_format" in err
    cli = make_cli(STOCKPIPE_CSV_DATE_FORMAT="%d-%m-%Y")
    code, out, err = cli("fetch", "--provider", "csv", "--path", "prices", "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out)["counts"]["rows_fetched"] == 2


def test_the_cli_stores_a_ticker_columns_rows_under_that_ticker(make_cli, tmp_path):
    write(tmp_path / "prices", "tick.csv", AMD.format(column="Ticker"))
    code, out, err = make_cli()("run", "--provider", "csv", "--path", "prices", "--json")
    assert code == ExitCode.OK, err
    assert db(tmp_path, "SELECT DISTINCT symbol FROM prices_daily") == [("AMD",)]
