"""The Parquet lake: one directory per dataset, one file per calendar month.

Layout: `<data dir>/lake/<dataset>/month=YYYY-MM/data.parquet`, each file sorted by the
dataset's key, zstd-compressed. Partitioning by time, never by symbol (PERFORMANCE.md §3):
a daily run rewrites one small month file, and a one-symbol read skips row groups by
their statistics. Files are replaced atomically (temp file in the same directory, fsync,
rename), so a crash leaves either the old file or the new one, never half of one.

`merge` is idempotent: rows identical (on the key and value columns) to what a partition
already holds are not rewritten and keep their original `fetched_at`, so fetching the
same data twice changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import UnavailableError
from ..models import Dataset, arrow_schema

FILE_NAME = "data.parquet"
# The column that decides a row's month partition.
_PARTITION_COLUMN = {"rejects": "rejected_at", "quotes": "ts", "quotes_daily": "date"}


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
        if rows.empty:
            return MergeResult({})
        rows = rows.drop_duplicates(list(dataset.key), keep="last")
        months = pd.to_datetime(rows[_PARTITION_COLUMN.get(dataset.name, "date")]).dt.strftime("%Y-%m")
        changed: dict[str, int] = {}
        for month, part in rows.groupby(months.to_numpy(), sort=True):
            for symbol, count in self._merge_month(dataset, month, part).items():
                changed[symbol] = changed.get(symbol, 0) + count
        return MergeResult(changed)

    def _merge_month(self, dataset: Dataset, month: str, incoming: pd.DataFrame) -> dict[str, int]:
        path = self.root / dataset.name / f"month={month}" / FILE_NAME
        existing = _to_frame(pq.read_table(path, schema=arrow_schema(dataset))) if path.exists() else None
        fresh = _changed_rows(dataset, incoming, existing)
        if fresh.empty:
            return {}
        if existing is not None and not existing.empty:
            key = list(dataset.key)
            keep = existing.merge(fresh[key], on=key, how="left", indicator=True)["_merge"].eq("left_only").to_numpy()
            merged = pd.concat([existing[keep], fresh], ignore_index=True)
        else:
            merged = fresh
        merged = merged.sort_values(list(dataset.key), kind="stable")
        _write_atomic(path, pa.Table.from_pandas(merged, schema=arrow_schema(dataset), preserve_index=False))
        return fresh.groupby("symbol").size().to_dict()


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


def _write_atomic(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=128 * 1024)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UnavailableError(f"cannot write {path}: {exc.strerror}: free disk space or fix permissions") from None
