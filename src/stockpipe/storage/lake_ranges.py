"""The rows a lake write or read covers, named so delta-rs and pyarrow prune the rest: SQL
predicates over months, symbol ranges and dates, files chosen by the Delta log's statistics,
and the overwrite that declares what it covers (storage/lake.py uses them)."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from ..models import Dataset

MONTH = "month"  # the partition column Delta adds to every table
# Files of about 1 MB (some 100 symbols x a month of indicators), written in key order: a
# split rewrites only the files holding its symbol (6 splits in 2,000 symbols x 2 years:
# 4.4 s instead of 22.5 s with one file per month and chunk), and a chunk's reads prune the rest.
FILE_BYTES = 1 << 20


def files_between(table, data, low: str, high: str):
    """`data` (the table's pyarrow dataset) without the files whose symbols, by the Delta
    log's statistics, all lie outside [low, high]: a chunk of symbols reads the files that
    may hold them, not every file of the table (10M-row prices: 0.16 s instead of 1.1 s)."""
    import pyarrow.dataset as ds

    adds = pa.table(table.get_add_actions(flatten=True))
    if "min.symbol" not in adds.column_names or "max.symbol" not in adds.column_names:
        return data
    below, above = pc.less_equal(adds["min.symbol"].cast(pa.string()), high), pc.greater_equal(
        adds["max.symbol"].cast(pa.string()), low)
    keep = set(adds["path"].filter(pc.fill_null(pc.and_kleene(below, above), True)).to_pylist())
    fragments = [f for f in data.get_fragments() if f.path in keep]
    if len(fragments) != len(keep):  # paths spelled differently: read every file rather than guess
        return data
    return ds.FileSystemDataset(fragments, data.schema, data.format, data.filesystem)


def holds_any(table, months: pa.Array, symbols: pa.Array, within: tuple[str, str, str] | None = None) -> bool:
    """Whether the Delta table holds a row of one of `symbols` in one of `months` (and
    between the dates of `within`): read a batch at a time, the symbol column of the files
    of those months whose symbols (by the Delta log) and dates may hold one."""
    wanted = pc.field(MONTH).isin(months)
    if within is not None:
        column, low, high = within
        wanted &= (pc.field(column) >= dt.date.fromisoformat(low)) & (pc.field(column) <= dt.date.fromisoformat(high))
    names = pc.min_max(symbols.cast(pa.string())).values()
    files = files_between(table, table.to_pyarrow_dataset(), *(n.as_py() for n in names))
    scanner = files.scanner(columns=["symbol"], filter=wanted)
    return any(pc.any(pc.is_in(batch.column(0).cast(pa.string()), symbols)).as_py()
               for batch in scanner.to_batches() if batch.num_rows)


def overwrite(table, source: pa.Table, predicate: str, properties) -> None:
    """Replace the rows matching `predicate` with `source` in one commit. delta-rs fails the
    commit (CommitFailedError) when another writer added rows matching it since `table`'s
    version: what was read is declared, unlike a blind append."""
    from deltalake import write_deltalake

    write_deltalake(table, source, mode="overwrite", partition_by=[MONTH], schema_mode="merge", predicate=predicate,
                    target_file_size=FILE_BYTES, commit_properties=properties)


def span(dataset: Dataset, source: pa.Table) -> tuple[str, str, str] | None:
    """(column, first, last) of the source's dates, for a dataset keyed by symbol and date
    (one new session: a single day), else None."""
    if dataset.key != ("symbol", dataset.partition) or not pa.types.is_date32(source.schema.field(dataset.partition).type):
        return None
    low, high = pc.min_max(source[dataset.partition]).values()
    return dataset.partition, low.as_py().isoformat(), high.as_py().isoformat()


def rows_of(months: pa.Array, symbols: pa.Array, within: tuple[str, str, str] | None = None) -> str:
    """A predicate naming the rows of `symbols` in `months` (and between the dates of
    `within`); its ranges let delta-rs prune files by their statistics (it does not for a
    long IN list): a new session's write skips the files of the month's earlier days."""
    names = sorted(symbols.to_pylist())
    dates = "" if within is None else f"{within[0]} >= '{within[1]}' AND {within[0]} <= '{within[2]}' AND "
    return (f"{MONTH} IN ({sql_list(months.to_pylist())}) AND {dates}symbol >= {sql_list(names[:1])} "
            f"AND symbol <= {sql_list(names[-1:])} AND symbol IN ({sql_list(names)})")


def sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)
