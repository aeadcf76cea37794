"""Arrow -> PostgreSQL binary COPY: a numpy-vectorised encoder, streamed in chunks over the
caller's own psycopg2 connection, so the rows commit (or roll back) with whatever else the
caller writes in that transaction (the load's watermark row).

Why this and not a faster-looking driver (bench/bench_pg_load.py, bench/README.md): binary
COPY is the server's fastest way in (no float parsing); `adbc-driver-postgresql`'s
`adbc_ingest` and psycopg 3's `cursor.copy()` also speak it, but each needs a connection
of its own, and a second PostgreSQL session cannot join the first one's transaction (no
shared transactions; two-phase commit needs `max_prepared_transactions` > 0, which the
stock configuration does not have). Streamed from this encoder, psycopg2's `copy_expert`
ran at the server's own COPY speed in the benchmark (as fast as psycopg 3 from the same
encoder, faster than ADBC), so nothing is lost by staying on the SQLAlchemy connection.

The encoder converts a chunk of 64k rows column by column (Arrow -> numpy), then lays out
blocks of 4,096 rows (small enough to stay in the CPU cache) as one numpy structured array,
every field big-endian at its widest, and drops the bytes of NULLs and of strings shorter
than the longest with one boolean mask; a block without NULLs or ragged strings is the
array's bytes as they are. A thread encodes ahead while libpq sends (`_Stream`). About
0.5 s of CPU per million 36-column indicator rows, a sixth of the server's COPY time.
NaN in a float column is written as NULL, as SQLite stores it (models.py: "NaN (NULL)").
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from ..models import Dataset

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Connection

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
ROWS_PER_CHUNK = 65_536  # rows encoded at once: the server ingests one while the next is encoded
_PG_EPOCH_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days since 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000
# kind (models.Type) -> the big-endian numpy type of its binary wire format (str/json: text)
_WIRE = {"float": ">f8", "date": ">i4", "ts": ">i8"}


def wire_types(dataset: Dataset, columns: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(column, numpy wire type or "text") in COPY order: int columns by their SQL size."""
    types = dict(dataset.columns)
    out = []
    for name in columns or dataset.column_names:
        type_ = types[name]
        if type_.kind in ("str", "json"):
            out.append((name, "text"))
        elif type_.kind == "int":
            out.append((name, ">i4" if type_.size == 4 else ">i8"))
        else:
            out.append((name, _WIRE[type_.kind]))
    return out


def encode(dataset: Dataset, table: "pa.Table", columns: Sequence[str] | None = None,
           rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[bytes]:
    """`table`'s rows (the named columns, default all of the dataset's) as a binary COPY
    stream: the header, then one bytes object per block of rows, then the trailer."""
    wire = wire_types(dataset, columns)
    table = table.select([name for name, _ in wire])
    yield HEADER
    for batch in table.to_batches(max_chunksize=rows_per_chunk):
        if batch.num_rows:
            yield from encode_batch(batch, wire)
    yield TRAILER


def encode_batch(batch: "pa.RecordBatch", wire: Sequence[tuple[str, str]]) -> Iterator[bytes]:
    """The batch's rows as binary COPY tuples (no header or trailer), a few thousand at a time."""
    n = batch.num_rows
    fields: list[tuple[str, str]] = [("n", ">i2")]
    values: dict[str, object] = {"n": len(wire)}
    # value field -> (bytes kept per row, width, whether a row keeps all `width` bytes or none)
    ragged: dict[str, tuple[np.ndarray, int, bool]] = {}
    for j, (name, kind) in enumerate(wire):
        data, lengths, width, valid = _column(batch.column(j), kind)
        fields.append((f"l{j}", ">i4"))
        if valid is None and lengths is None:
            values[f"l{j}"] = width
        else:
            kept = np.full(n, width, np.int32) if lengths is None else lengths
            values[f"l{j}"] = kept if valid is None else np.where(valid, kept, -1)
            if width:
                ragged[f"v{j}"] = (kept if valid is None else np.where(valid, kept, 0), width, kind != "text")
        if width:
            fields.append((f"v{j}", kind if kind != "text" else f"S{width}"))
            values[f"v{j}"] = data
    layout = np.dtype(fields)
    mask = _mask_layout(layout, ragged)
    for start in range(0, n, _BLOCK):  # a block's rows fit the CPU cache while filled field by field
        rows = np.empty(min(_BLOCK, n - start), layout)
        for field, value in values.items():
            rows[field] = value if np.isscalar(value) else value[start:start + len(rows)]
        yield _compact(rows, mask, ragged, start) if ragged else rows.tobytes()


_BLOCK = 4_096
_ONES = np.uint64(0x0101010101010101)  # an 8-byte field kept whole: eight True bytes at once


def _mask_layout(layout: np.dtype, ragged: dict[str, tuple[np.ndarray, int, bool]]) -> np.dtype:
    """The rows' layout with each ragged field as one mask byte per value byte (one u8 for
    an 8-byte field kept whole or not at all: a float, an int8, a timestamp, never text,
    whose values may keep any number of bytes up to the widest)."""
    return np.dtype({"names": list(ragged), "itemsize": layout.itemsize,
                     "formats": ["<u8" if _whole8(w, whole) else ("u1", (w,)) for _, w, whole in ragged.values()],
                     "offsets": [layout.fields[f][1] for f in ragged]})


def _whole8(width: int, whole: bool) -> bool:
    return width == 8 and whole


def _compact(rows: np.ndarray, mask: np.dtype, ragged: dict[str, tuple[np.ndarray, int, bool]],
             start: int) -> bytes:
    """The rows' bytes without the unused bytes of NULLs and of strings shorter than the widest."""
    keep = np.ones(len(rows) * mask.itemsize, np.uint8)
    fields = keep.view(mask)
    for field, (kept, width, whole) in ragged.items():
        kept = kept[start:start + len(rows)]
        fields[field] = (kept != 0) * _ONES if _whole8(width, whole) else np.arange(width) < kept[:, None]
    return rows.view(np.uint8)[keep.view(bool)].tobytes()


def _column(column: "pa.Array", kind: str):
    """(values, bytes per row or None when all `width`, width, valid rows or None when all)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "text":
        return _text(column)
    valid = None
    if kind == ">f8":
        data = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        nulls = np.isnan(data)
        if nulls.any():
            valid = ~nulls
    else:
        if kind == ">i4" and pa.types.is_date(column.type):
            data = np.asarray(column.cast(pa.date32()).fill_null(0).view(pa.int32())) - _PG_EPOCH_DAYS
        elif pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.timestamp("us", tz="UTC"))
            data = np.asarray(column.fill_null(0).view(pa.int64())) - _PG_EPOCH_US
        else:
            data = column.cast(pa.int64()).fill_null(0).to_numpy()
        if column.null_count:
            valid = np.asarray(column.is_valid())
    width = np.dtype(kind).itemsize
    if valid is not None and not valid.any():
        return None, None, 0, valid
    return data, None, width, valid


def _text(column: "pa.Array"):
    """UTF-8 bytes padded to the longest value in the chunk (or zero-copy when all equal)."""
    import pyarrow as pa

    if column.type != pa.string():
        column = column.cast(pa.string())
    n = len(column)
    offsets = np.frombuffer(column.buffers()[1], np.int32, n + 1, column.offset * 4)
    lengths = np.diff(offsets)
    width = int(lengths.max()) if n else 0
    valid = np.asarray(column.is_valid()) if column.null_count else None
    if width == 0:
        return None, None if valid is None else lengths, 0, valid
    buffer = column.buffers()[2]
    if (lengths == width).all():
        return np.frombuffer(buffer, f"S{width}", n, int(offsets[0])), None, width, valid
    padded = np.zeros((n, width), np.uint8)
    padded[np.arange(width) < lengths[:, None]] = np.frombuffer(buffer, np.uint8, int(offsets[-1] - offsets[0]),
                                                                int(offsets[0]))
    return padded.view(f"S{width}").ravel(), lengths, width, valid


class _Stream:
    """A file psycopg2's copy_expert reads, filled by a thread that encodes ahead: while
    copy_expert waits in libpq (GIL released) for the server to take a chunk, the next ones
    are being encoded, so the client's work overlaps the server's. Without the thread the
    two take turns (libpq blocks until the socket has room) and the times add up."""

    _END = object()

    def __init__(self, chunks: Iterator[bytes], ahead: int = 8):
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._encode, args=(chunks,), name="pgcopy-encoder", daemon=True)
        self._thread.start()

    def _encode(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if not self._put(chunk):
                    return
            self._put(self._END)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read(self, _size: int = -1) -> bytes:
        item = self._queue.get()
        if item is self._END:
            return b""
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the encoder (the COPY finished or failed) and wait for it."""
        self._stop.set()
        self._thread.join()


def copy_rows(conn: "Connection", target: str, dataset: Dataset, table: "pa.Table",
              columns: Sequence[str] | None = None) -> int:
    """COPY `table` into `target` (a table name, quoted as needed) with binary COPY over the
    SQLAlchemy connection's own psycopg2 connection: inside the caller's transaction.

    Returns:
        rows copied (`table.num_rows`: COPY writes every row or fails).
    """
    names = columns or dataset.column_names
    quoted = ", ".join(f'"{name}"' for name in names)
    sql = f"COPY {target} ({quoted}) FROM STDIN (FORMAT binary)"
    cursor, stream = conn.connection.driver_connection.cursor(), _Stream(encode(dataset, table, names))
    try:
        cursor.copy_expert(sql, stream)
    finally:
        stream.close()
        cursor.close()
    return table.num_rows
