"""The lake: one Delta Lake table per dataset (delta-rs), partitioned by month.

Layout: `<data dir>/lake/<dataset>/` holds the table — Parquet files under
`month=YYYY-MM/` (the month of the dataset's `partition` column, models.py; never by
symbol, PERFORMANCE.md §3) and the transaction log `_delta_log/`. DuckDB, Polars, Spark and
pandas (through deltalake) read it as it is.

The lake is a log:
* every write is one atomic commit (a MERGE; a plain write when the table holds no row of
  the rows' symbols in their months, e.g. a backfill), carrying the run id and stage in its
  commit metadata; the table's version counts its changes;
* the change data feed is on, so `changes(dataset, since)` returns exactly the rows
  inserted, updated (with old and new values) and deleted after a version;
* a consumer's watermark — the input versions it has consumed — is written in the same
  commit as its output, as Delta application transactions (`Commit.watermarks`, read back
  with `watermark`), so a process killed at any point leaves each table at a committed
  version that says how far it got.

`merge` is idempotent: rows equal to the stored row on the key and value columns are not
rewritten (the MERGE updates only `IS DISTINCT FROM` rows) and keep their `fetched_at`; a
merge that changes nothing makes no commit. `replace` makes the given rows a symbol's only
rows (adjustment spans), deleting the rest in the same commit.

Writers side by side (shards) commit optimistically: a commit that lost a race is retried
on the new version, so no lock of our own is taken. A lake written by stockpipe 0.1
(`month=YYYY-MM/data.parquet` files without a log) is converted in place, losslessly, the
first time a table is opened (`upgrade`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UnavailableError
from ..models import Dataset, arrow_schema
from .lake_ranges import MONTH, files_between, holds_any, overwrite, rows_of, span, sql_list
from .lake_rows import conform, source_rows, to_frame
from .lake_tables import OpenTables

_CONFIG = {"delta.enableChangeDataFeed": "true"}
_RETRIES = 12  # commits lost to a concurrent writer before giving up


@dataclass(frozen=True)
class Commit:
    """What a write records in its commit: who wrote it, and the consumer watermarks
    (application id -> input version) that hold once it is committed."""

    run_id: str = ""
    stage: str = ""
    watermarks: Mapping[str, int] = field(default_factory=dict)

    def properties(self):
        """delta-rs's CommitProperties: run id and stage as commit metadata, the watermarks as
        application transactions."""
        from deltalake import CommitProperties, Transaction

        return CommitProperties(custom_metadata={"stockpipe.run_id": self.run_id, "stockpipe.stage": self.stage},
                                app_transactions=[Transaction(a, int(v)) for a, v in self.watermarks.items()])


@dataclass(frozen=True)
class MergeResult:
    """Rows written per symbol (new, changed or deleted); the table's version after."""

    changed: dict[str, int]
    version: int | None = None

    @property
    def rows(self) -> int:
        return sum(self.changed.values())


class Lake:
    """The Delta tables under one lake directory."""

    def __init__(self, root: Path):
        self.root = root
        self._opened = OpenTables()  # kept and caught up on each use (lake_tables.py)

    # ------------------------------------------------------------------ reading

    def path(self, dataset: Dataset) -> Path:
        return self.root / dataset.name

    def exists(self, dataset: Dataset) -> bool:
        return (self.path(dataset) / "_delta_log").is_dir() or _old_files(self.path(dataset))

    def files(self, dataset: Dataset) -> list[Path]:
        """The data files of the table's current version, sorted."""
        table = self.table(dataset)
        if table is None:
            return []
        return sorted(Path(uri.removeprefix("file://")) for uri in table.file_uris())

    def version(self, dataset: Dataset) -> int | None:
        """The table's current version; None when it was never written."""
        table = self.table(dataset)
        return None if table is None else table.version()

    def identity(self, dataset: Dataset) -> str | None:
        """The table's id (a new one when the table is deleted and written again)."""
        table = self.table(dataset)
        return None if table is None else table.metadata().id

    def watermark(self, dataset: Dataset, app_id: str) -> int | None:
        """The input version a consumer recorded in its last commit to `dataset`."""
        table = self.table(dataset)
        return None if table is None else table.transaction_version(app_id)

    def count(self, dataset: Dataset) -> int:
        """Rows in the table (from the log's statistics)."""
        table = self.table(dataset)
        return 0 if table is None else int(table.count())

    def read(self, dataset: Dataset, symbols: Iterable[str] | None = None, version: int | None = None,
             columns: list[str] | None = None) -> pa.Table:
        """All rows of `dataset` (at `version`, default the latest), or only those of
        `symbols` (pushed down to the files' statistics), sorted by key, with the dataset's
        own columns (or `columns`) and types."""
        schema = arrow_schema(dataset)
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        table = self.table(dataset, version)
        if table is None:
            return schema.empty_table()
        try:
            # Files written by different writers hold `symbol` as string or string_view, which
            # pyarrow's statistics pruning cannot compare: the filter runs on the cast column,
            # over the files whose symbol range in the Delta log may hold one of `symbols`.
            data, wanted = table.to_pyarrow_dataset(), None
            if symbols is not None:
                wanted = sorted(set(symbols))
                if not wanted:
                    return schema.empty_table()
                data = files_between(table, data, wanted)
                wanted = pc.field("symbol").cast(pa.string()).isin(wanted)
            rows = data.to_table(columns=[c for c in schema.names if c in data.schema.names], filter=wanted)
        except (OSError, pa.ArrowInvalid) as exc:
            raise UnavailableError(f"cannot read the lake's {dataset.name} under {self.root}: {exc}: "
                                   "run `stockpipe verify`, or delete the table and fetch again") from None
        keys = [k for k in dataset.key if k in schema.names]
        return conform(rows, schema).sort_by([(k, "ascending") for k in keys])

    def scan(self, dataset: Dataset, version: int | None = None, rows: int = 100_000) -> Iterator[pa.Table]:
        """All rows of `dataset` (at `version`, default the latest) in tables of about `rows`
        rows each, in no particular order, with the dataset's columns and types: a whole
        table streamed in bounded memory (a 10M-row snapshot load)."""
        schema = arrow_schema(dataset)
        table = self.table(dataset, version)
        if table is None:
            return
        try:
            data = table.to_pyarrow_dataset()
            columns = [c for c in schema.names if c in data.schema.names]
            # One file at a time, read when the consumer asks: a dataset scanner reads ahead
            # of a slow consumer (SQLite's executemany) whatever its readahead settings, and
            # held 1.8 GB of a 10M-row indicators table (bench_nightly, 20,000 symbols).
            held: list[pa.Table] = []
            for fragment in data.get_fragments():
                held.append(fragment.to_table(schema=data.schema, columns=columns))
                if sum(t.num_rows for t in held) >= rows:
                    yield conform(pa.concat_tables(held), schema)
                    held = []
            if held:
                yield conform(pa.concat_tables(held), schema)
        except (OSError, pa.ArrowInvalid) as exc:
            raise UnavailableError(f"cannot read the lake's {dataset.name} under {self.root}: {exc}: "
                                   "run `stockpipe verify`, or delete the table and fetch again") from None

    def read_frame(self, dataset: Dataset, symbols: Iterable[str] | None = None,
                   columns: list[str] | None = None) -> pd.DataFrame:
        """`read` as a DataFrame with dates and timestamps as datetime64."""
        return to_frame(self.read(dataset, symbols, columns=columns))

    def changes(self, dataset: Dataset, since: int, until: int | None = None) -> pa.Table:
        """The change feed after version `since` up to `until` (default the latest): the
        dataset's columns plus `_change_type` (insert, update_preimage, update_postimage,
        delete) and `_commit_version`. Empty when nothing changed."""
        table = self.table(dataset)
        schema = arrow_schema(dataset)
        extra = pa.schema([("_change_type", pa.string()), ("_commit_version", pa.int64())])
        empty = pa.schema(list(schema) + list(extra)).empty_table()
        if table is None:
            return empty
        until = table.version() if until is None else until
        if until <= since:
            return empty
        try:
            feed = pa.table(table.load_cdf(starting_version=since + 1, ending_version=until))
        except Exception as exc:  # noqa: BLE001 - delta-rs raises its own types for a vacuumed feed
            raise ChangesUnavailableError(f"{dataset.name}: changes after version {since}: {exc}") from None
        return conform(feed, pa.schema(list(schema) + list(extra)))

    # ------------------------------------------------------------------ writing

    def merge(self, dataset: Dataset, rows: pd.DataFrame | pa.Table, commit: Commit = Commit()) -> MergeResult:
        """Upsert `rows` (the dataset's columns) in one commit; rows equal to the stored
        ones on the key and value columns are left as they are."""
        return self._write(dataset, rows, None, commit)

    def replace(self, dataset: Dataset, symbols: Iterable[str], rows: pd.DataFrame | pa.Table,
                commit: Commit = Commit()) -> MergeResult:
        """Make `rows` all of `dataset`'s rows for `symbols`, in one commit: a symbol's
        stored rows that `rows` lacks are deleted; rows of other symbols stay.

        Raises:
            ValueError: `rows` holds a symbol not in `symbols`.
        """
        return self._write_symbols(dataset, symbols, rows, commit, whole=False)

    def rewrite(self, dataset: Dataset, symbols: Iterable[str], rows: pd.DataFrame | pa.Table,
                commit: Commit = Commit()) -> MergeResult:
        """Make `rows` all of `dataset`'s rows for `symbols` by writing them anew, in one
        commit, without comparing them with the stored ones: for rows that all differ (a
        split restates every indicator row of its symbol), where a MERGE's join would update
        each of them anyway at several times the cost. The change feed shows the old rows
        deleted and the new ones inserted; `changed` counts the rows written.

        Raises:
            ValueError: `rows` holds a symbol not in `symbols`.
        """
        return self._write_symbols(dataset, symbols, rows, commit, whole=True)

    def _write_symbols(self, dataset: Dataset, symbols: Iterable[str], rows, commit: Commit,
                       whole: bool) -> MergeResult:
        """`replace` (whole=False: merged, a missing row deleted) or `rewrite` (written anew)."""
        symbols = sorted(set(symbols))
        table = source_rows(dataset, rows)
        stray = set(table["symbol"].to_pylist()) - set(symbols)
        if stray:
            raise ValueError(f"{'rewrite' if whole else 'replace'} got rows of {sorted(stray)[:5]} outside "
                             "the symbols it was given")
        if not symbols:
            return MergeResult({}, self.version(dataset))
        return self._write(dataset, table, symbols, commit, whole=whole)

    def _write(self, dataset: Dataset, rows, replacing: list[str] | None, commit: Commit,
               whole: bool = False) -> MergeResult:
        from deltalake.exceptions import CommitFailedError

        source = source_rows(dataset, rows)
        if source.num_rows == 0 and not replacing:
            if commit.watermarks:  # nothing to write, but the consumer got this far
                return MergeResult({}, self.mark(dataset, commit))
            return MergeResult({}, self.version(dataset))
        properties = commit.properties()
        for attempt in range(_RETRIES):
            table = self.table(dataset) or self._create(dataset)
            before = table.version()
            try:
                if whole:
                    overwrite(table, source, f"symbol IN ({sql_list(replacing)})", properties)
                else:
                    self._merge(dataset, table, source, replacing, properties)
            except CommitFailedError:
                self._opened.forget(self.path(dataset))  # the retry reads the winner's version afresh
                time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))  # another writer won: retry on its version
                continue
            except OSError as exc:
                raise UnavailableError(f"cannot write the lake's {dataset.name} under {self.root}: {exc}: "
                                       "free disk space or fix permissions") from None
            table = self.table(dataset)
            after = table.version()
            if after == before and commit.watermarks:  # nothing to write, but the consumer got this far
                self.mark(dataset, commit)
            return MergeResult(self._changed(dataset, table, before, after, whole), after)
        raise UnavailableError(f"the lake's {dataset.name} kept changing under this write ({_RETRIES} tries): "
                               "too many writers at once; run again")

    def mark(self, dataset: Dataset, commit: Commit) -> int:
        """Commit nothing but `commit`'s watermarks (a consumer that consumed changes and had
        nothing to write); returns the new version."""
        table = self.table(dataset) or self._create(dataset)
        table.create_write_transaction([], mode="append", schema=table.schema(), partition_by=[MONTH],
                                       commit_properties=commit.properties())
        return self.table(dataset).version()

    def _merge(self, dataset: Dataset, table, source: pa.Table, replacing: list[str] | None, properties) -> None:
        key = [MONTH, *dataset.key]
        on = " AND ".join(f"t.{c} = s.{c}" for c in key)
        if replacing is None:
            months = pc.unique(source[MONTH])
            symbols = pc.unique(source["symbol"])
            within = span(dataset, source)
            if not holds_any(table, months, symbols, within):
                # No row of these symbols in these months (a backfill, a new symbol): the
                # MERGE could only insert, and a write is that commit without the join (1M
                # indicator rows: ~2 s instead of ~12 s, 1.3 GB less memory). Not a blind
                # append: an overwrite of exactly these symbols' rows in these months, which
                # deletes nothing (there are none) but declares what it read, so delta-rs
                # fails the commit when another writer added rows there since (CommitFailedError:
                # retried, then merged) instead of committing a second copy of the keys.
                overwrite(table, source, rows_of(months, symbols, within), properties)
                return
            # delta-rs does not prune the target by the source on its own. Named as literals,
            # the source's months prune partitions (one new session scans and rewrites its
            # month's files only: 1M-row indicators, 0.1 s instead of 1.4 s) and its symbols'
            # range prunes files by their statistics (a chunk of symbols reads the files its
            # own chunk wrote, not all of them). Not for `replace`, whose delete must see every
            # row of the symbols it replaces.
            low, high = (sql_list([v.as_py()]) for v in pc.min_max(source["symbol"]).values())
            on = f"t.{MONTH} IN ({sql_list(months.to_pylist())}) AND t.symbol >= {low} AND t.symbol <= {high} AND {on}"
        merger = table.merge(source, predicate=on, source_alias="s", target_alias="t", merge_schema=True,
                             commit_properties=properties)  # new columns join
        differs = " OR ".join(f"(t.{c} IS DISTINCT FROM s.{c})" for c in dataset.value_columns)
        merger = merger.when_matched_update_all(predicate=differs or None).when_not_matched_insert_all()
        if replacing is not None:
            merger = merger.when_not_matched_by_source_delete(predicate=f"t.symbol IN ({sql_list(replacing)})")
        merger.execute()

    def _changed(self, dataset: Dataset, table, before: int, after: int, whole: bool = False) -> dict[str, int]:
        """Rows written per symbol by the commits after `before` (one, unless retried); of a
        rewrite, the rows inserted (its deletions are the old copies of the same keys)."""
        if after <= before:
            return {}
        feed = pa.table(table.load_cdf(starting_version=before + 1, ending_version=after, columns=["symbol", "_change_type"]))
        kinds, symbols = feed["_change_type"].cast(pa.string()), feed["symbol"].cast(pa.string())
        written = pc.equal(kinds, "insert") if whole else pc.not_equal(kinds, "update_preimage")
        counts = pc.value_counts(symbols.filter(written))
        return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))

    # ------------------------------------------------------------------ tables

    def table(self, dataset: Dataset, version: int | None = None):
        """The dataset's DeltaTable, converting a 0.1 lake first; None when there is none."""
        from deltalake import DeltaTable

        path = self.path(dataset)
        if not (path / "_delta_log").is_dir():
            self._opened.forget(path)
            _drop_leftovers(path)
            if not _old_files(path):
                return None
            upgrade(path, dataset)
        if version is not None:
            return DeltaTable(str(path), version=version)
        return self._opened.latest(path)

    def _create(self, dataset: Dataset):
        from deltalake import DeltaTable

        schema = pa.schema([*arrow_schema(dataset), pa.field(MONTH, pa.string())])
        try:
            return DeltaTable.create(str(self.path(dataset)), schema, partition_by=[MONTH], configuration=_CONFIG,
                                     mode="ignore")
        except OSError as exc:
            raise UnavailableError(f"cannot create the lake's {dataset.name} under {self.root}: {exc}: "
                                   "fix the data directory's permissions") from None


class ChangesUnavailableError(UnavailableError):
    """The change feed between two versions is gone (vacuumed) or unreadable; the consumer
    falls back to the table's snapshot."""


def upgrade(path: Path, dataset: Dataset) -> None:
    """Convert a stockpipe 0.1 table (`month=YYYY-MM/data.parquet`, no log) into a Delta
    table in place: the files stay, a log is written over them, nothing is rewritten."""
    from deltalake import Field, Schema, convert_to_deltalake

    _drop_leftovers(path)
    convert_to_deltalake(str(path), partition_by=Schema([Field(MONTH, "string")]),
                         partition_strategy="hive", configuration=_CONFIG, mode="ignore")


def _drop_leftovers(path: Path) -> None:
    """0.1's own lock file and the temp files a kill left behind (`.data.parquet.<pid>.tmp`)."""
    for leftover in [*path.glob(".write.lock"), *path.glob("month=*/.*.tmp")]:
        leftover.unlink(missing_ok=True)


def _old_files(path: Path) -> bool:
    return not (path / "_delta_log").is_dir() and any(path.glob("month=*/*.parquet"))
