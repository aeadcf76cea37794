"""The `csv` provider: daily bars from CSV files the user already has.

`--path` is one CSV file or a folder of `*.csv` files (not recursive). A file holds one
symbol named by its stem (`AAPL.csv`) or, with a `symbol` column (also spelled `Ticker` or
`Code`, as exports name it), any number of them. Headers match case-insensitively with
the usual aliases (Yahoo, Alpha Vantage, Stooq and EODHD exports read as they are); the
first column for a name wins.

Decisions:
    * The stdlib `csv` module reads rows (exact line numbers for messages); pandas then
      converts numbers and dates a column at a time.
    * A missing-value cell (empty, null, NaN, N/A, NA, -) rejects its row; any other
      non-number fails the file. Thousands separators (a quoted `1,234`) are not guessed
      at, since `1,234` may mean 1.234; an unquoted one gives a row too many fields, which
      fails too. A row with too few fields reads the rest as empty.
    * adj_close is optional, so an empty one leaves NaN in the bar instead of a reject.
    * Rejects are reported when their date is in [start, end], or when it is unreadable.
    * Dates are YYYY-MM-DD (or YYYY/MM/DD, a time of day ignored), or what the setting
      `csv_date_format` says (a strptime format, e.g. %d-%m-%Y). A file of which not one
      date can be read is refused (exit 65) naming that setting, never imported as nothing.
    * A last line that is a lone whole number (EODHD's CSV ends with a row count) is that
      count, not a row: neither a bar nor a reject.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import normalize_symbol
from ..errors import BadInputError, ConfigError, SymbolNotFoundError
from .base import ACTION_COLUMNS, BAR_COLUMNS, ParsedDaily, Payload, ProviderBase
from .rows import is_count_line

if TYPE_CHECKING:
    import pandas as pd

    from ..config import Settings

_ALIASES = {
    "date": ("date", "timestamp", "datetime", "time", "day"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "adj_close": ("adj close", "adj_close", "adjusted_close", "adjusted close", "adjclose"),
    "volume": ("volume", "vol", "v"),
    "symbol": ("symbol", "ticker", "code"),
}
_CANONICAL = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
_REQUIRED = ("date", "open", "high", "low", "close", "volume")
_NUMERIC = ("open", "high", "low", "close", "adj_close", "volume")
_MISSING = frozenset({"", "null", "nan", "n/a", "na", "-"})  # compared lower-cased
# YYYY-MM-DD or YYYY/MM/DD, optionally followed by a time of day that is ignored.
_DATE_RE = r"^(\d{4})([-/])(\d{2})\2(\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"


class CsvProvider(ProviderBase):
    """Reads daily bars from local CSV files; no key, no network."""

    name = "csv"

    def __init__(self, path: Path, date_format: str | None = None) -> None:
        self.path, self.date_format = Path(path), date_format

    @classmethod
    def from_settings(cls, settings: "Settings", clock: Any = None) -> "CsvProvider":
        """Build from `settings.csv_path`.

        Raises:
            ConfigError: no path was given.
        """
        if settings.csv_path is None:
            raise ConfigError("the csv provider needs --path: a CSV file or a folder of them")
        return cls(Path(settings.csv_path), settings.csv_date_format)

    def symbols(self) -> list[str]:
        """Symbols found in the file(s), sorted.

        Raises:
            ConfigError: the path does not exist.
            BadInputError: two files hold the same symbol, or a file is not UTF-8.
        """
        return sorted(self._files)

    def fetch_daily(self, symbol: str, start: dt.date, end: dt.date) -> Payload:
        """The bytes of the file holding `symbol` (the whole file; parsing filters).

        Raises:
            SymbolNotFoundError: no file holds the symbol.
        """
        key = symbol.strip().upper()
        file = self._files.get(key)
        if file is None:
            raise SymbolNotFoundError(
                f"{symbol} is not in {self.path}: add {key}.csv or rows with symbol {key}"
            )
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise _unreadable(file, exc) from None
        return Payload(self.name, key, content, "text/csv", api_calls=0, source=str(file))

    def parse_daily(self, payload: Payload, start: dt.date, end: dt.date) -> ParsedDaily:
        """Pure: the CSV bytes in, bars within [start, end] sorted by date out.

        Raises:
            BadInputError: no header, a required column is missing, a row has too many
                fields, a cell is neither a number nor a missing-value token, or not one
                date can be read (names the setting csv_date_format).
        """
        where = payload.source or f"{payload.symbol}.csv"
        header, frame = _read_table(payload.content, where)
        if "symbol" in frame:  # a multi-symbol file: keep this symbol's rows
            frame = frame[frame["symbol"].str.upper() == payload.symbol.strip().upper()]
        return _build(payload.symbol, header, frame, start, end, where, self.date_format)

    @cached_property
    def _files(self) -> dict[str, Path]:
        """Symbol -> file, found on first use so construction never touches the disk."""
        return _discover(self.path)


def _discover(path: Path) -> dict[str, Path]:
    """Map each symbol to the one file that holds it."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    else:
        raise ConfigError(f"{path}: no such file or folder: check --path")
    found: dict[str, Path] = {}
    for file in files:
        for symbol in _symbols_in(file):
            if symbol in found:
                raise BadInputError(
                    f"{file}: symbol {symbol} is also in {found[symbol]}: keep it in one file"
                )
            found[symbol] = file
    return found


def _symbols_in(file: Path) -> set[str]:
    """The file's symbol column values, or its stem when it has no symbol column, each
    checked like a --symbol (a path is later built from it: see storage/archive.py).

    Raises:
        BadInputError: a value is not a well-formed ticker (names the file and line).
    """
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            rows = csv.reader(handle)
            header = _canonical_header(next((row for row in rows if row), []))
            if "symbol" not in header:
                where = f"{file} (a file without a symbol column is named after its symbol)"
                return {normalize_symbol(file.stem, where)}
            at, found = header.index("symbol"), []
            for row in rows:
                if len(row) > at and row[at].strip():
                    found.append((row, rows.line_num))
            if found and is_count_line(found[-1][0]):
                found.pop()
            return {normalize_symbol(row[at], f"{file} line {line}") for row, line in found}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _unreadable(file, exc) from None


def _unreadable(where: object, exc: Exception) -> BadInputError:
    """The error for a file that cannot be opened or decoded."""
    if isinstance(exc, UnicodeDecodeError):
        return BadInputError(f"{where}: not UTF-8 text: save it as UTF-8")
    if isinstance(exc, csv.Error):  # e.g. a field over the csv module's 128 kB limit
        return BadInputError(f"{where}: not a readable CSV ({exc}): check the file")
    reason = (exc.strerror if isinstance(exc, OSError) else None) or exc
    return BadInputError(f"{where}: cannot read it ({reason}): check the file's permissions")


def _canonical_header(header: list[str]) -> list[str]:
    """Header cells as canonical names; unknown columns keep their cleaned name."""
    cleaned = (" ".join(cell.split()).lower() for cell in header)
    return [_CANONICAL.get(cell, cell) for cell in cleaned]


def _read_table(content: bytes, where: str) -> tuple[list[str], "pd.DataFrame"]:
    """Parse CSV bytes into (raw header, a str frame with canonical columns and `_line`)."""
    import pandas as pd

    try:
        text = content.decode("utf-8-sig")  # strips a BOM if there is one
    except UnicodeDecodeError as exc:
        raise _unreadable(where, exc) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((row for row in reader if row), None)
    if header is None:
        raise BadInputError(
            f"{where}: empty file, no header: add the line date,open,high,low,close,volume"
        )
    names = _check_header(header, where)
    try:
        rows, lines = _rows(reader, len(header), where)
    except csv.Error as exc:
        raise _unreadable(f"{where} line {reader.line_num}", exc) from None
    if rows and is_count_line(rows[-1]):  # EODHD's trailing row count
        rows, lines = rows[:-1], lines[:-1]
    frame = pd.DataFrame(rows, columns=names, dtype=object).astype(str)
    frame = pd.DataFrame({c: frame[c].str.strip() for c in frame})  # spaces are not data
    frame["_line"] = lines
    return [cell.strip() for cell in header], frame


def _rows(reader, width: int, where: str) -> tuple[list[list[str]], list[int]]:
    """The data rows padded to `width`, and the line each starts on."""
    rows, lines, last = [], [], reader.line_num
    for row in reader:
        first, last = last + 1, reader.line_num  # a quoted field may span lines
        if not row:
            continue  # a blank line is not a row
        if len(row) > width:
            raise BadInputError(
                f"{where} line {first}: {len(row)} fields but the header has {width}: "
                "quote fields that contain commas or remove the row"
            )
        rows.append(row + [""] * (width - len(row)))
        lines.append(first)
    return rows, lines


def _check_header(header: list[str], where: str) -> list[str]:
    """Canonical column names, after checking that every required column is there."""
    names = _canonical_header(header)
    shown = ", ".join(cell.strip() for cell in header)
    for name in _REQUIRED:
        if name not in names:
            raise BadInputError(
                f"{where}: missing column {name!r} (header has: {shown}): "
                "add it or rename the column"
            )
    # Unknown columns, and a second column for a name (`time` after `date`), are kept
    # under private names so they can neither clash with ours nor fail the file.
    return [
        name if name in _ALIASES and name not in names[:i] else f"_extra{i}"
        for i, name in enumerate(names)
    ]


def _build(
    symbol: str, header: list[str], frame: "pd.DataFrame", start: dt.date, end: dt.date, where: str,
    date_format: str | None = None,
) -> ParsedDaily:
    """Convert, classify (bar or reject), range-filter and sort.

    Raises:
        BadInputError: a cell that is not a number, or not one readable date.
    """
    import pandas as pd

    columns = [c for c in _NUMERIC if c in frame]
    missing = pd.DataFrame({c: frame[c].str.lower().isin(_MISSING) for c in columns})
    values = _to_numbers(frame, missing, where)
    date = _to_dates(frame["date"], date_format)
    _some_dates(frame, date, where, date_format)
    reason = _reasons(frame["date"], date, missing)
    in_range = (date >= pd.Timestamp(start)) & (date <= pd.Timestamp(end))
    keep = reason.isna() & in_range
    bars = values[keep].reindex(columns=list(_NUMERIC)).astype("float64")  # adds adj_close
    bars.insert(0, "date", date[keep].astype("datetime64[us]"))
    bars = bars.sort_values("date", kind="stable").reset_index(drop=True)
    shown = reason.notna() & (in_range | date.isna())
    rejected = tuple(  # raw: header names to cell text; zip() leaves `_line` out
        {"date": frame.at[i, "date"], "reason": reason[i], "raw": dict(zip(header, frame.loc[i]))}
        for i in frame.index[shown]
    )
    return ParsedDaily(symbol, bars[list(BAR_COLUMNS)], _no_actions(), rejected)


def _to_numbers(frame: "pd.DataFrame", missing: "pd.DataFrame", where: str) -> "pd.DataFrame":
    """Prices and volume as float64, NaN where a cell is a missing-value token.

    Raises:
        BadInputError: naming the first line with a cell that is not a number.
    """
    import pandas as pd

    numbers = frame[missing.columns].apply(pd.to_numeric, errors="coerce").astype("float64")
    bad = numbers.isna() & ~missing
    if bad.to_numpy().any():
        at = bad.any(axis=1).idxmax()  # rows are in file order, so this is the first line
        column = bad.loc[at].idxmax()
        raise BadInputError(
            f"{where} line {frame.at[at, '_line']}: {column} is not a number "
            f"({frame.at[at, column]!r}): fix or remove the row"
        )
    return numbers


def _to_dates(raw: "pd.Series", date_format: str | None = None) -> "pd.Series":
    """Trading dates at midnight; NaT where the text is not a supported date (YYYY-MM-DD, or
    `date_format` when set)."""
    import pandas as pd

    if date_format:
        return pd.to_datetime(raw, format=date_format, errors="coerce").dt.normalize()
    parts = raw.str.extract(_DATE_RE)
    iso = parts[0] + "-" + parts[2] + "-" + parts[3]
    return pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")  # NaT for 2024-02-30 too


def _some_dates(frame: "pd.DataFrame", date: "pd.Series", where: str, date_format: str | None) -> None:
    """Refuse a file none of whose dates can be read: importing nothing would pass for success.

    Raises:
        BadInputError: naming the first date, its line and the setting that reads it.
    """
    given = ~frame["date"].str.lower().isin(_MISSING)
    if not given.any() or date[given].notna().any():
        return
    first = given.idxmax()
    shown = f"as {date_format!r}" if date_format else "as YYYY-MM-DD"
    raise BadInputError(
        f"{where}: no date could be read {shown} (line {frame.at[first, '_line']}: {frame.at[first, 'date']!r}): "
        "set csv_date_format to the file's format, a strptime pattern such as %d-%m-%Y "
        "(STOCKPIPE_CSV_DATE_FORMAT or csv_date_format in stockpipe.toml)"
    )


def _reasons(raw_date: "pd.Series", date: "pd.Series", missing: "pd.DataFrame") -> "pd.Series":
    """Why each row is not a bar (None when it is one); the first reason that applies wins."""
    import numpy as np
    import pandas as pd

    required = _REQUIRED[1:]  # not adj_close: it is optional, so empty is fine
    conditions = [raw_date.str.lower().isin(_MISSING), date.isna(), missing.all(axis=1)]
    conditions += [missing[column] for column in required]
    choices = ["missing_value:date", "bad_date", "all_null"]
    choices += [f"missing_value:{column}" for column in required]
    picked = np.select(conditions, choices, default="")
    return pd.Series(picked, index=raw_date.index).replace("", None)


def _no_actions() -> "pd.DataFrame":
    """An empty actions frame: CSV exports carry no splits or dividends."""
    import pandas as pd

    types = ("datetime64[us]", "str", "float64")
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(ACTION_COLUMNS, types)})

