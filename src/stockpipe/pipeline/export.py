"""`export`: a warehouse dataset or view as csv, parquet or json, to a file or to stdout.

Reads the warehouse (the stable interface, whatever the lake becomes). `--adjusted` on
prices_daily reads the view prices_daily_adjusted (splits and dividends applied, the
vendor's own adjusted close as vendor_adj_close). Zero rows is not an error: the output
is then a header (csv), an empty array (json) or an empty file with the schema (parquet).
The rows stream: SYMBOLS_PER_CHUNK symbols are read, encoded and written at a time, so an
export of a 20,000-symbol warehouse holds one chunk in memory, not the table.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator, Sequence

from .. import files, formats
from ..config import Settings
from ..errors import UsageError
from ..outputs import ExportResult, WrittenResult
from ..storage import reads
from .reading import named_symbols, open_reader

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".json": "json"}
SYMBOLS_PER_CHUNK = 100  # rows read, encoded and written per step: ~50,000 for two years of daily bars


def export(settings: Settings, dataset: str, fmt: str | None = None, out: Path | None = None,
           start: dt.date | None = None, end: dt.date | None = None,
           adjusted: bool = False) -> ExportResult | WrittenResult:
    """Rows of `dataset` for the symbols named on the command line (all without one) in
    [start, end], encoded as `fmt` (default: from `out`'s suffix, else csv); written to
    `out`, or returned for stdout.

    Raises:
        UsageError: an unknown dataset or format, --adjusted on another dataset than
            prices_daily, an output path that cannot be written.
        NoDataError: the warehouse does not exist or was never migrated.
    """
    name = _source(dataset, adjusted)
    fmt = _format(fmt, out)
    if out is not None:
        files.check_output(out, "--out")
    named = named_symbols(settings)
    engine = open_reader(settings)
    counted = [0]
    chunks = formats.encode_chunks(_chunks(engine, name, named, start, end, counted), _columns(name), fmt)
    if out is None:
        return ExportResult(name, fmt, chunks)
    files.write_atomic(out, chunks)
    what = f"{counted[0]} row(s) of {name} as {fmt}"
    return WrittenResult("export", out, what, {"dataset": name, "format": fmt, "rows": counted[0],
                                               "symbols": list(named), "start": start, "end": end})


def _chunks(engine, name: str, named: Sequence[str], start: dt.date | None, end: dt.date | None,
            counted: list[int]) -> Iterator[list[dict]]:
    """The rows, SYMBOLS_PER_CHUNK symbols at a time, in symbol order; `counted[0]` sums them."""
    with engine.connect() as conn:
        symbols = sorted(set(named)) if named else reads.symbols_in(conn, name)
        for first in range(0, len(symbols), SYMBOLS_PER_CHUNK):
            rows = reads.rows(conn, name, symbols[first:first + SYMBOLS_PER_CHUNK], start, end)
            counted[0] += len(rows)
            yield rows


def _source(dataset: str, adjusted: bool) -> str:
    known = reads.exportable()
    if dataset not in known:
        raise UsageError(f"--dataset {dataset!r}: use one of {', '.join(known)}")
    if adjusted:
        if dataset not in ("prices_daily", "prices_daily_adjusted"):
            raise UsageError(f"--adjusted applies to prices_daily, not {dataset}")
        return "prices_daily_adjusted"
    return dataset


def _format(fmt: str | None, out: Path | None) -> str:
    if fmt is None:
        return SUFFIXES.get(out.suffix.lower(), "csv") if out is not None else "csv"
    if fmt not in formats.FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(formats.FORMATS)}")
    return fmt


def _columns(name: str) -> Sequence[tuple[str, str]]:
    """(column, kind) of a table or view, from its SQL types."""
    import sqlalchemy as sa

    kinds = ((sa.DateTime, "ts"), (sa.Date, "date"), (sa.Boolean, "bool"), (sa.Integer, "int"), (sa.Float, "float"),
             (sa.String, "str"), (sa.Text, "str"))
    out = []
    for column in reads.table(name).columns:
        kind = next((k for t, k in kinds if isinstance(column.type, t)), "str")
        out.append((column.name, kind))
    return out
