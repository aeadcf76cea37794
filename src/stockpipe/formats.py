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
from typing import Any, Iterable, Iterator, Mapping, Sequence

FORMATS = ("csv", "parquet", "json")
Columns = Sequence[tuple[str, str]]  # (name, kind): kind is date, ts, float, int, str or bool


def encode(rows: Sequence[Mapping[str, Any]], columns: Columns, fmt: str) -> bytes:
    """`rows` (each a mapping holding every column) as `fmt` bytes, columns in order."""
    return b"".join(encode_chunks([rows], columns, fmt))


def encode_chunks(chunks: Iterable[Sequence[Mapping[str, Any]]], columns: Columns, fmt: str) -> Iterator[bytes]:
    """The same file as `encode` of all the chunks' rows, produced a chunk at a time (memory
    holds one chunk): csv and json as text pieces, parquet as one row group per chunk."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    return {"csv": _csv, "json": _json, "parquet": _parquet}[fmt](chunks, columns)


def _text(value: Any) -> Any:
    """A value as csv and json carry it: ISO dates/timestamps (UTC), None for NULL and NaN."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv(chunks: Iterable[Sequence[Mapping[str, Any]]], columns: Columns) -> Iterator[bytes]:
    names = [name for name, _ in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for rows in chunks:
        for row in rows:
            writer.writerow(["" if (v := _text(row[name])) is None else (repr(v) if isinstance(v, float) else v)
                             for name in names])
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # the header, when there was no chunk at all
        yield buffer.getvalue().encode("utf-8")


def _json(chunks: Iterable[Sequence[Mapping[str, Any]]], columns: Columns) -> Iterator[bytes]:
    names = [name for name, _ in columns]
    opening = "["
    for rows in chunks:
        if rows:
            body = ",".join(json.dumps({n: _text(row[n]) for n in names}, separators=(",", ":"), allow_nan=False)
                            for row in rows)
            yield (opening + body).encode("utf-8")
            opening = ","
    yield ("[]\n" if opening == "[" else "]\n").encode("utf-8")


class _Sink:
    """A write-only file for pyarrow that hands out what was written so far (`take`), while
    its position keeps counting (the Parquet footer records absolute offsets)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _parquet(chunks: Iterable[Sequence[Mapping[str, Any]]], columns: Columns) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"date": pa.date32(), "ts": pa.timestamp("us", tz="UTC"), "float": pa.float64(), "int": pa.int64(),
             "str": pa.string(), "bool": pa.bool_()}
    schema = pa.schema([(name, types[kind]) for name, kind in columns])
    sink = _Sink()
    with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd") as writer:
        for rows in chunks:
            if rows:
                data = {name: [_utc(row[name]) if kind == "ts" else row[name] for row in rows] for name, kind in columns}
                writer.write_table(pa.Table.from_pydict(data, schema=schema))
                yield sink.take()
    yield sink.take()


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)  # SQLite hands back naive UTC
