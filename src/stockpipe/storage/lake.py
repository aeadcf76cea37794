"""The Parquet lake: one directory per dataset, one file per calendar month.

Layout: `<data dir>/lake/<dataset>/month=YYYY-MM/data.parquet` (the month of the
dataset's `partition` column, models.py), each file sorted by the dataset's key, zstd-compressed. Partitioning by time, never by symbol (PERFORMANCE.md §3):
a daily run rewrites one small month file, and a one-symbol read skips row groups by
their statistics. Files are replaced atomically (temp file in the same directory, fsync,
rename), so a crash leaves either the old file or the new one, never half of one.

`merge` is idempotent: rows identical (on the key and value columns) to what a partition
already holds are not rewritten and keep their original `fetched_at`, so fetching the
same data twice changes nothing.

`replace` is for derived datasets whose rows for a symbol form one whole (adjustment
spans: a new split changes every earlier span and may remove some): it makes the given
rows the symbol's only rows, deleting the ones that are gone, with the same idempotence.
"""

from __future__ import annotations

import fcntl
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import UnavailableError
from ..models import Dataset, arrow_schema

FILE_NAME = "data.parquet"
_MONTH_WRITERS = 2  # month partitions merged at once (their Arrow work releases the GIL)


@dataclass(frozen=True)
class MergeResult:
    """Rows written per symbol (new or changed); symbols absent changed nothing."""

    changed: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.changed.values())


class Lake:
    """Read and merge datasets under one lake directory."""

    def __init__(self, root: Path):
        self.root = root

    def files(self, dataset: Dataset) -> list[Path]:
        return sorted((self.root / dataset.name).glob(f"month=*/{FILE_NAME}"))

    def read(self, dataset: Dataset, symbols: Iterable[str] | None = None) -> pa.Table:
        """All rows of `dataset`, or only those of `symbols`, sorted by key."""
        files = self.files(dataset)
        schema = arrow_schema(dataset)
        if not files:
            return schema.empty_table()
        source = pads.dataset([str(f) for f in files], schema=schema, format="parquet")
        flt = None if symbols is None else pads.field("symbol").isin(sorted(set(symbols)))
        try:
            table = source.to_table(filter=flt)
        except (OSError, pa.ArrowInvalid) as exc:
            raise UnavailableError(f"cannot read the lake's {dataset.name} under {self.root}: {exc}: "
                                   "restore the file from a backup or delete it and fetch again") from None
        return table.sort_by([(k, "ascending") for k in dataset.key])

    def read_frame(self, dataset: Dataset, symbols: Iterable[str] | None = None) -> pd.DataFrame:
        """`read` as a DataFrame with dates and timestamps as datetime64."""
        return _to_frame(self.read(dataset, symbols))

    def merge(self, dataset: Dataset, rows: pd.DataFrame) -> MergeResult:
        """Upsert `rows` (columns = the dataset's) into their month partitions."""
        with _writing(self.root / dataset.name):
            return self._merge_unlocked(dataset, rows)

    def replace(self, dataset: Dataset, symbols: Iterable[str], rows: pd.DataFrame) -> MergeResult:
        """Make `rows` all of `dataset`'s rows for `symbols` (see `_replace_unlocked`)."""
        with _writing(self.root / dataset.name):
            return self._replace_unlocked(dataset, symbols, rows)

    def _merge_unlocked(self, dataset: Dataset, rows: pd.DataFrame) -> MergeResult:
        if rows.empty:
            return MergeResult({})
        rows = rows.drop_duplicates(list(dataset.key), keep="last")
        labels, codes = _month_codes(rows[dataset.partition])
        table = pa.Table.from_pandas(rows[dataset.column_names], schema=arrow_schema(dataset), preserve_index=False)
        order = np.argsort(codes, kind="stable")  # rows without a date (-1) come first and are skipped,
        bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))  # as strftime's NaN key was
        parts = [(labels[i], table.take(order[bounds[i]:bounds[i + 1]])) for i in range(len(labels))]
        changed: dict[str, int] = {}
        with ThreadPoolExecutor(_MONTH_WRITERS, thread_name_prefix="lake") as pool:
            for counts in pool.map(lambda part: self._merge_month(dataset, *part), parts):
                for symbol, count in counts.items():
                    changed[symbol] = changed.get(symbol, 0) + count
        return MergeResult(changed)

    def _replace_unlocked(self, dataset: Dataset, symbols: Iterable[str], rows: pd.DataFrame) -> MergeResult:
        """Make `rows` all of `dataset`'s rows for `symbols`; rows of other symbols stay.

        A symbol's stored rows that `rows` lacks are deleted (a symbol absent from `rows`
        loses them all); rows identical on the key and value columns keep their stored
        version (volatile columns included), so replacing with the same rows writes nothing.

        Every partition that holds or will hold one of the symbols is rebuilt in memory,
        then all are written to temp files, and only then renamed into place one by one:
        each partition is replaced atomically; a crash between two renames leaves a mix
        that the caller's next run repairs, as long as the caller records its work as
        done only after `replace` returns (transform does).

        Returns:
            Rows added, changed or deleted per symbol; symbols absent changed nothing.

        Raises:
            ValueError: `rows` holds a symbol not in `symbols`.
        """
        symbols = sorted(set(symbols))
        if not symbols:
            return MergeResult({})
        stray = set(rows["symbol"]) - set(symbols) if len(rows) else set()
        if stray:
            raise ValueError(f"replace got rows of {sorted(stray)[:5]} outside the symbols it replaces")
        rows = rows.drop_duplicates(list(dataset.key), keep="last")
        months = pd.to_datetime(rows[dataset.partition]).dt.strftime("%Y-%m").to_numpy()
        paths = {path.parent.name.removeprefix("month="): path for path in self._files_holding(dataset, symbols)}
        paths.update({m: self.root / dataset.name / f"month={m}" / FILE_NAME for m in set(months)})
        changed: dict[str, int] = {}
        writes: list[tuple[Path, pa.Table | None]] = []
        for month in sorted(paths):
            path = paths[month]
            existing = _to_frame(pq.read_table(path, schema=arrow_schema(dataset))) if path.exists() else None
            rebuilt = _replaced_month(dataset, symbols, rows[months == month], existing)
            if rebuilt is not None:
                writes.append((path, rebuilt[0]))
                for symbol, count in rebuilt[1].items():
                    changed[symbol] = changed.get(symbol, 0) + count
        _write_all_atomic(writes)
        return MergeResult(changed)

    def _files_holding(self, dataset: Dataset, symbols: Sequence[str]) -> list[Path]:
        """The partition files that hold a row of one of `symbols`."""
        files = self.files(dataset)
        if not files:
            return []
        source = pads.dataset([str(f) for f in files], schema=arrow_schema(dataset), format="parquet")
        try:
            names = source.to_table(columns=["__filename"], filter=pads.field("symbol").isin(list(symbols)))
        except (OSError, pa.ArrowInvalid) as exc:
            raise UnavailableError(f"cannot read the lake's {dataset.name} under {self.root}: {exc}: "
                                   "restore the file from a backup or delete it and recompute") from None
        return sorted({Path(name) for name in names.column("__filename").to_pylist()})

    def _merge_month(self, dataset: Dataset, month: str, fresh: pa.Table) -> dict[str, int]:
        """Upsert `fresh` (the dataset's schema) into one partition, in Arrow: read, join,
        sort, encode and write run without the GIL, so `_merge_unlocked` does two at once."""
        path = self.root / dataset.name / f"month={month}" / FILE_NAME
        schema = arrow_schema(dataset)
        key = list(dataset.key)
        merged = fresh
        if path.exists():
            existing = pq.read_table(path, schema=schema)
            fresh = _fresh_rows(dataset, fresh, existing)
            if fresh.num_rows == 0:
                return {}
            kept = existing.join(fresh.select(key), keys=key, join_type="left anti")
            merged = pa.concat_tables([kept.select(schema.names).cast(fresh.schema), fresh])
        _write_atomic(path, merged.sort_by([(k, "ascending") for k in key]))
        counts = fresh.column("symbol").value_counts()
        return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))


def _fresh_rows(dataset: Dataset, incoming: pa.Table, existing: pa.Table) -> pa.Table:
    """The rows of `incoming` that are new or differ (on a value column) from the stored row
    with the same key, in their order: `_changed_rows` done by Arrow's hash join."""
    key, values = list(dataset.key), dataset.value_columns
    stored = existing.select(key + values).rename_columns(key + [f"{c}__old" for c in values])
    stored = stored.append_column("__stored", pa.array(np.ones(stored.num_rows, dtype=bool)))
    numbered = incoming.select(key + values).append_column("__row", pa.array(np.arange(incoming.num_rows)))
    joined = numbered.join(stored, keys=key, join_type="left outer")
    differs = pc.is_null(joined["__stored"])
    for column in values:
        new, old = joined[column], joined[f"{column}__old"]
        same = pc.or_(pc.fill_null(pc.equal(new, old), False),
                      pc.and_(pc.is_null(new, nan_is_null=True), pc.is_null(old, nan_is_null=True)))
        differs = pc.or_(differs, pc.invert(same))
    rows = np.sort(joined["__row"].filter(differs).to_numpy())
    return incoming.take(pa.array(rows, type=pa.int64()))


@contextmanager
def _writing(directory: Path) -> Iterator[None]:
    """Hold the dataset's write lock (flock on `<dataset>/.write.lock`) while a merge or
    replace reads, rebuilds and renames its month files.

    A month file holds every symbol, so shards running side by side (`--shard i/n`, one
    data directory) write the same files; each write is a read-modify-rename that must
    not interleave with another's or one shard's rows would vanish. The lock is held only
    for the write itself (not while fetching), released by the kernel if the holder dies,
    and blocks rather than fails: the other shard's write takes a fraction of a second.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".write.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _month_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(labels, codes): the distinct "YYYY-MM" months of `column`, sorted, and each row's
    index into them (-1 for no date). Months of a zoned column are its own zone's, as
    strftime gave; computed on datetime64[M], not by formatting every row."""
    stamps = pd.to_datetime(column)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)  # the wall time in its zone
    months = stamps.to_numpy().astype("datetime64[M]")
    missing = np.isnat(months)
    distinct, codes = np.unique(months[~missing], return_inverse=True)
    out = np.full(len(months), -1, dtype=np.int64)
    out[~missing] = codes
    return np.datetime_as_string(distinct, unit="M"), out


def _to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(timestamp_as_object=False, date_as_object=False)


def _changed_rows(dataset: Dataset, incoming: pd.DataFrame, existing: pd.DataFrame | None) -> pd.DataFrame:
    """The incoming rows that are new or differ from the stored row with the same key."""
    incoming = _to_frame(pa.Table.from_pandas(incoming[dataset.column_names], schema=arrow_schema(dataset), preserve_index=False))
    if existing is None or existing.empty:
        return incoming
    key = list(dataset.key)
    joined = incoming.merge(existing, on=key, how="left", suffixes=("", "__old"), indicator=True)
    differs = joined["_merge"].eq("left_only").to_numpy()
    for column in dataset.value_columns:
        new, old = joined[column], joined[f"{column}__old"]
        differs = differs | ~((new == old) | (new.isna() & old.isna())).to_numpy()
    return incoming[differs].reset_index(drop=True)


def _replaced_month(dataset: Dataset, symbols: Sequence[str], incoming: pd.DataFrame,
                    existing: pd.DataFrame | None) -> tuple[pa.Table | None, dict[str, int]] | None:
    """One partition with `symbols`' rows replaced by `incoming`: (table, rows changed per
    symbol), the table None when the partition ends up empty; None when nothing changes."""
    key = list(dataset.key)
    schema = arrow_schema(dataset)
    incoming = _to_frame(pa.Table.from_pandas(incoming[dataset.column_names], schema=schema, preserve_index=False))
    if existing is None:
        existing = _to_frame(schema.empty_table())
    mine = existing["symbol"].isin(symbols).to_numpy()
    old, others = existing[mine], existing[~mine]
    fresh = _changed_rows(dataset, incoming, old)  # new rows, and new versions of changed ones

    def among(rows: pd.DataFrame) -> np.ndarray:  # which rows of `old` have a key in `rows`
        marks = rows[key].assign(_hit=True)
        return old[key].merge(marks, on=key, how="left")["_hit"].eq(True).to_numpy()

    removed = old[~among(incoming)]
    if fresh.empty and removed.empty:
        return None
    merged = pd.concat([others, old[among(incoming) & ~among(fresh)], fresh], ignore_index=True)
    merged = merged.sort_values(key, kind="stable")
    counts = pd.concat([fresh["symbol"], removed["symbol"]]).value_counts()
    table = pa.Table.from_pandas(merged, schema=schema, preserve_index=False) if len(merged) else None
    return table, {str(symbol): int(count) for symbol, count in counts.items()}


def _write_all_atomic(writes: list[tuple[Path, pa.Table | None]]) -> None:
    """Write every table to a temp file, then rename each into place (None: remove the file)."""
    staged: list[tuple[Path, Path | None]] = []
    try:
        for path, table in writes:
            staged.append((path, None if table is None else _write_temp(path, table)))
    except BaseException:
        for _, tmp in staged:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        raise
    for path, tmp in staged:
        try:
            if tmp is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(tmp, path)
        except OSError as exc:
            raise UnavailableError(f"cannot replace {path}: {exc.strerror}: "
                                   "free disk space or fix permissions") from None


def _write_temp(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=128 * 1024)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UnavailableError(f"cannot write {path}: {exc.strerror}: free disk space or fix permissions") from None
    return tmp


def _write_atomic(path: Path, table: pa.Table) -> None:
    tmp = _write_temp(path, table)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UnavailableError(f"cannot write {path}: {exc.strerror}: free disk space or fix permissions") from None
