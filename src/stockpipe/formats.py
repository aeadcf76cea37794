"""Rows as the bytes of a file format: csv, parquet or json (`stockpipe export`). Pure.

- csv: a header line, then one line per row; dates and UTC timestamps in ISO 8601
  (`2026-11-23`, `2026-11-23T21:00:00+00:00`), floats as Python writes them (they read
  back to the same double), NULL as an empty field.
- json: one JSON array of objects (one document, so `jq` and `json.load` take it whole);
  NULL and NaN as null, dates and timestamps as in csv.
- parquet: one file with the columns' own types (date32, timestamp[us, UTC], float64,
  int64, string), zstd-compressed: what pandas, DuckDB or Polars read as they are.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from typing import Any, Mapping, Sequence

FORMATS = ("csv", "parquet", "json")
Columns = Sequence[tuple[str, str]]  # (name, kind): kind is date, ts, float, int, str or bool


def encode(rows: Sequence[Mapping[str, Any]], columns: Columns, fmt: str) -> bytes:
    """`rows` (each a mapping holding every column) as `fmt` bytes, columns in order."""
    if fmt == "csv":
        return _csv(rows, columns)
    if fmt == "json":
        return _json(rows, columns)
    if fmt == "parquet":
        return _parquet(rows, columns)
    raise ValueError(f"unknown format {fmt!r}")


def _text(value: Any) -> Any:
    """A value as csv and json carry it: ISO dates/timestamps (UTC), None for NULL and NaN."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv(rows: Sequence[Mapping[str, Any]], columns: Columns) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [name for name, _ in columns]
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if (v := _text(row[name])) is None else (repr(v) if isinstance(v, float) else v)
                         for name in names])
    return buffer.getvalue().encode("utf-8")


def _json(rows: Sequence[Mapping[str, Any]], columns: Columns) -> bytes:
    names = [name for name, _ in columns]
    body = [{name: _text(row[name]) for name in names} for row in rows]
    return (json.dumps(body, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def _parquet(rows: Sequence[Mapping[str, Any]], columns: Columns) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"date": pa.date32(), "ts": pa.timestamp("us", tz="UTC"), "float": pa.float64(), "int": pa.int64(),
             "str": pa.string(), "bool": pa.bool_()}
    schema = pa.schema([(name, types[kind]) for name, kind in columns])
    data = {name: [_utc(row[name]) if kind == "ts" else row[name] for row in rows] for name, kind in columns}
    table = pa.Table.from_pydict(data, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)  # SQLite hands back naive UTC
