"""Tests for the csv provider: discovery, header aliases, rejects and error messages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from stockpipe import errors
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS, Payload
from stockpipe.providers.csvfile import CsvProvider

START, END = dt.date(2000, 1, 1), dt.date(2100, 1, 1)

YAHOO = (
    "Date,Open,High,Low,Close,Adj Close,Volume\n"
    "2024-06-03,192.9,194.99,192.52,194.03,193.5,50080539\n"
    "2024-06-04,194.64,195.32,193.0342,194.35,193.8,47471445\n"
    "2024-06-05,195.4,196.9,194.87,195.87,195.3,54156785\n"
)
# Alpha Vantage's datatype=csv body: `timestamp` header, newest first, no adj close.
ALPHAVANTAGE = (
    "timestamp,open,high,low,close,volume\n"
    "2024-06-07,426.2000,426.2800,423.0000,423.8500,13621700\n"
    "2024-06-06,424.0100,425.3100,420.3500,424.5200,14861300\n"
    "2024-06-05,417.8100,424.0800,416.3000,424.0100,16988000\n"
)


def write(folder: Path, name: str, text: str, newline: str = "\n", bom: bool = False) -> Path:
    """Write `text` (LF line ends) with the given line ends, as bytes so nothing translates."""
    path = folder / name
    data = text.replace("\n", newline).encode("utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + data if bom else data)
    return path


def parse(path: Path, symbol: str | None = None, start=START, end=END):
    provider = CsvProvider(path)
    symbol = symbol or provider.symbols()[0]
    return provider.parse_daily(provider.fetch_daily(symbol, start, end), start, end)


def dates(parsed) -> list[str]:
    return parsed.bars["date"].dt.strftime("%Y-%m-%d").tolist()


# --- format: line ends, BOM, aliases, order, dates ---------------------------------


def test_lf_and_crlf_give_identical_bars(tmp_path):
    lf = parse(write(tmp_path, "LF.csv", YAHOO))
    crlf = parse(write(tmp_path, "CRLF.csv", YAHOO, newline="\r\n"))
    assert len(lf.bars) == 3
    pd.testing.assert_frame_equal(lf.bars, crlf.bars)
    assert crlf.rejected == ()


def test_utf8_bom_does_not_hide_the_first_column(tmp_path):
    parsed = parse(write(tmp_path, "AAPL.csv", YAHOO, newline="\r\n", bom=True))
    assert dates(parsed) == ["2024-06-03", "2024-06-04", "2024-06-05"]


def test_yahoo_header_maps_adj_close_and_bars_have_the_contract_types(tmp_path):
    bars = parse(write(tmp_path, "AAPL.csv", YAHOO)).bars
    assert tuple(bars.columns) == BAR_COLUMNS
    assert bars["date"].dtype == np.dtype("datetime64[us]")
    assert (bars["date"] == bars["date"].dt.normalize()).all()  # midnight
    assert all(bars[c].dtype == np.float64 for c in BAR_COLUMNS[1:])
    first = bars.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        192.9, 194.99, 192.52, 194.03,
    )
    assert first["adj_close"] == 193.5
    assert first["volume"] == 50080539.0


def test_alphavantage_csv_reads_and_its_newest_first_rows_get_sorted(tmp_path):
    bars = parse(write(tmp_path, "MSFT.csv", ALPHAVANTAGE, newline="\r\n")).bars
    assert bars["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-06-05", "2024-06-06", "2024-06-07",
    ]
    assert bars["close"].tolist() == [424.01, 424.52, 423.85]
    assert bars["adj_close"].isna().all()


def test_short_aliases_case_and_spaces_in_the_header(tmp_path):
    text = " DATE , O ,h,L,C, Adjusted_Close ,VOL\n2024-06-03,1,2,0.5,1.5,1.4,10\n"
    bars = parse(write(tmp_path, "X.csv", text)).bars
    assert bars.iloc[0][list(BAR_COLUMNS[1:])].tolist() == [1.0, 2.0, 0.5, 1.5, 1.4, 10.0]


def test_reverse_order_is_sorted_by_date(tmp_path):
    body = YAHOO.splitlines()
    text = "\n".join([body[0], *reversed(body[1:])]) + "\n"
    parsed = parse(write(tmp_path, "AAPL.csv", text))
    assert dates(parsed) == ["2024-06-03", "2024-06-04", "2024-06-05"]
    assert parsed.bars["volume"].tolist() == [50080539.0, 47471445.0, 54156785.0]


def test_datetime_and_slash_dates_keep_the_date(tmp_path):
    text = (
        "date,open,high,low,close,volume\n"
        "2024-06-04 16:00:00,2,2,2,2,2\n"
        "2024/06/03,1,1,1,1,1\n"
    )
    assert dates(parse(write(tmp_path, "X.csv", text))) == ["2024-06-03", "2024-06-04"]


def test_range_is_inclusive_at_both_ends(tmp_path):
    path = write(tmp_path, "MSFT.csv", ALPHAVANTAGE)
    start, end = dt.date(2024, 6, 5), dt.date(2024, 6, 6)
    assert dates(parse(path, start=start, end=end)) == ["2024-06-05", "2024-06-06"]
    assert len(parse(path, start=dt.date(2024, 6, 8), end=END).bars) == 0


def test_header_only_is_zero_bars_and_no_actions(tmp_path):
    parsed = parse(write(tmp_path, "X.csv", "date,open,high,low,close,volume\n"))
    assert parsed.bars.empty and tuple(parsed.bars.columns) == BAR_COLUMNS
    assert parsed.actions.empty and tuple(parsed.actions.columns) == ACTION_COLUMNS
    assert parsed.rejected == ()


def test_parse_is_pure_it_reads_only_the_payload():
    payload = Payload("csv", "AAPL", YAHOO.encode(), "text/csv", 0, "/nowhere/AAPL.csv")
    parsed = CsvProvider(Path("/nowhere")).parse_daily(payload, START, END)
    assert parsed.symbol == "AAPL" and len(parsed.bars) == 3


# --- discovery and fetch -------------------------------------------------------------


def test_folder_with_symbol_files_and_a_multi_symbol_file(tmp_path):
    write(tmp_path, "aapl.csv", YAHOO)
    write(tmp_path, "MSFT.CSV", ALPHAVANTAGE)  # the extension is matched case-insensitively
    multi = "Symbol,Date,Open,High,Low,Close,Volume\n"
    multi += "ibm,2024-06-03,1,1,1,1,100\nSPY,2024-06-03,2,2,2,2,200\nIBM,2024-06-04,3,3,3,3,300\n"
    write(tmp_path, "portfolio.csv", multi)
    write(tmp_path, "notes.txt", "not a csv")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "QQQ.csv", YAHOO)  # not recursive
    provider = CsvProvider(tmp_path)
    assert provider.symbols() == ["AAPL", "IBM", "MSFT", "SPY"]

    payload = provider.fetch_daily("ibm", START, END)
    assert payload == Payload(
        provider="csv", symbol="IBM", content=multi.encode(), media_type="text/csv",
        api_calls=0, source=str(tmp_path / "portfolio.csv"),
    )
    ibm = provider.parse_daily(payload, START, END)
    assert dates(ibm) == ["2024-06-03", "2024-06-04"]
    assert ibm.bars["volume"].tolist() == [100.0, 300.0]
    assert len(parse(tmp_path, "MSFT").bars) == 3
    provider.close()


def test_a_single_file_path_works(tmp_path):
    provider = CsvProvider(write(tmp_path, "spy.csv", YAHOO))
    assert provider.symbols() == ["SPY"]
    assert provider.fetch_daily("SPY", START, END).content == YAHOO.encode()


def test_unknown_symbol_names_the_symbol_and_the_path(tmp_path):
    write(tmp_path, "AAPL.csv", YAHOO)
    with pytest.raises(errors.SymbolNotFoundError) as caught:
        CsvProvider(tmp_path).fetch_daily("TSLA", START, END)
    assert "TSLA" in str(caught.value) and str(tmp_path) in str(caught.value)


def test_same_symbol_in_two_files_is_bad_input(tmp_path):
    write(tmp_path, "AAPL.csv", YAHOO)
    multi = "symbol,date,open,high,low,close,volume\nAAPL,2024-06-03,1,1,1,1,1\n"
    write(tmp_path, "all.csv", multi)
    with pytest.raises(errors.BadInputError, match="symbol AAPL is also in"):
        CsvProvider(tmp_path).symbols()


def test_from_settings_without_a_path_is_a_config_error():
    with pytest.raises(errors.ConfigError, match="the csv provider needs --path"):
        CsvProvider.from_settings(SimpleNamespace(csv_path=None))


def test_from_settings_with_a_path(tmp_path):
    write(tmp_path, "AAPL.csv", YAHOO)
    provider = CsvProvider.from_settings(SimpleNamespace(csv_path=tmp_path, csv_date_format=None))
    assert (provider.name, provider.needs_key, provider.symbols()) == ("csv", False, ["AAPL"])


def test_a_path_that_does_not_exist_is_a_config_error(tmp_path):
    with pytest.raises(errors.ConfigError, match="no such file or folder"):
        CsvProvider(tmp_path / "missing").symbols()


# --- bad input: one-line messages ----------------------------------------------------


def test_missing_column_message(tmp_path):
    path = write(tmp_path, "AAPL.csv", "Date,Open,High,Low,Close\n2024-06-03,1,1,1,1\n")
    with pytest.raises(errors.BadInputError) as caught:
        parse(path)
    assert str(caught.value) == (
        f"{path}: missing column 'volume' (header has: Date, Open, High, Low, Close): "
        "add it or rename the column"
    )


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_non_numeric_cell_names_its_line(tmp_path, newline):
    text = (
        "date,open,high,low,close,volume\n"
        "2024-06-03,1,1,1,1,1\n"
        "\n"  # a blank line still counts as a line of the file
        "2024-06-04,2,2,2,abc,2\n"
        '2024-06-05,3,3,3,3,"12,5x"\n'
    )
    path = write(tmp_path, "AAPL.csv", text, newline=newline)
    with pytest.raises(errors.BadInputError) as caught:
        parse(path)
    expected = f"{path} line 4: close is not a number ('abc'): fix or remove the row"
    assert str(caught.value) == expected


def test_the_first_bad_line_is_named_whatever_the_column(tmp_path):
    text = "date,open,high,low,close,volume\n2024-06-03,1,1,1,1,1\n2024-06-04,2,2,2,2,9x\n"
    text += "2024-06-05,bad,3,3,3,3\n"
    with pytest.raises(errors.BadInputError, match=r"line 3: volume is not a number \('9x'\)"):
        parse(write(tmp_path, "AAPL.csv", text))


def test_line_numbers_count_other_symbols_rows(tmp_path):
    text = "symbol,date,open,high,low,close,volume\nA,2024-06-03,1,1,1,1,1\n"
    text += "B,2024-06-03,1,1,1,1,1\nA,2024-06-04,1,1,1,1,n/a?\n"
    path = write(tmp_path, "two.csv", text)
    with pytest.raises(errors.BadInputError, match=r"line 4: volume is not a number"):
        parse(path, "A")
    assert len(parse(path, "B").bars) == 1  # B's rows are fine


def test_quoted_thousands_separator_is_not_a_number(tmp_path):
    text = 'date,open,high,low,close,volume\n2024-06-03,1,1,1,1,"1,234"\n'
    with pytest.raises(errors.BadInputError, match=r"line 2: volume is not a number \('1,234'\)"):
        parse(write(tmp_path, "AAPL.csv", text))


def test_unquoted_thousands_separator_gives_too_many_fields(tmp_path):
    text = "date,open,high,low,close,volume\n2024-06-03,1,1,1,1,1,234\n"
    with pytest.raises(errors.BadInputError, match=r"line 2: 7 fields but the header has 6"):
        parse(write(tmp_path, "AAPL.csv", text))


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n", b"\xef\xbb\xbf"])
def test_a_file_without_header_is_bad_input(tmp_path, content):
    path = tmp_path / "AAPL.csv"
    path.write_bytes(content)
    with pytest.raises(errors.BadInputError, match="no header"):
        parse(path)


def test_a_file_that_is_not_utf8_is_bad_input(tmp_path):
    path = tmp_path / "AAPL.csv"
    text = "date,open,high,low,close,volume,note\n2024-06-03,1,1,1,1,1,é\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(errors.BadInputError, match="not UTF-8"):
        parse(path, "AAPL")


# --- rejects: nothing is silently dropped -------------------------------------------


@pytest.mark.parametrize("token", ["", "null", "NaN", "nan", "N/A", "NA", "-"])
def test_missing_value_rows_are_rejected_not_fatal(tmp_path, token):
    text = f"date,open,high,low,close,volume\n2024-06-03,1,1,1,1,1\n2024-06-04,2,2,2,{token},2\n"
    parsed = parse(write(tmp_path, "AAPL.csv", text))
    assert dates(parsed) == ["2024-06-03"]
    assert parsed.rejected == (
        {
            "date": "2024-06-04",
            "reason": "missing_value:close",
            "raw": {"date": "2024-06-04", "open": "2", "high": "2", "low": "2",
                    "close": token, "volume": "2"},
        },
    )


def test_all_null_and_bad_date_rows_are_rejected(tmp_path):
    text = YAHOO + (
        "2024-06-07,null,null,null,null,null,null\n"  # a Yahoo holiday row
        "2024-02-30,1,1,1,1,1,1\n"
        "06/10/2024,1,1,1,1,1,1\n"
        ",1,1,1,1,1,1\n"
        "2024-06-10,1,1,1,1,,1\n"  # an empty adj close is fine: it is optional
        "2024-06-11,1,1,1,1,1\n"  # a short row: volume is missing
    )
    parsed = parse(write(tmp_path, "AAPL.csv", text))
    assert dates(parsed)[-1] == "2024-06-10" and len(parsed.bars) == 4
    assert [(r["date"], r["reason"]) for r in parsed.rejected] == [
        ("2024-06-07", "all_null"),
        ("2024-02-30", "bad_date"),
        ("06/10/2024", "bad_date"),
        ("", "missing_value:date"),
        ("2024-06-11", "missing_value:volume"),
    ]
    assert parsed.rejected[0]["raw"]["Adj Close"] == "null"


def test_rejects_outside_the_range_are_not_repeated(tmp_path):
    text = "date,open,high,low,close,volume\n2024-06-03,,1,1,1,1\nnot-a-date,1,1,1,1,1\n"
    parsed = parse(write(tmp_path, "AAPL.csv", text), start=dt.date(2024, 7, 1), end=END)
    assert [r["reason"] for r in parsed.rejected] == ["bad_date"]
