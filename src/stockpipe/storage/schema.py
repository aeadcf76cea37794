"""Warehouse tables (SQLAlchemy Core): the target of the alembic migrations.

The data tables are built from the datasets `models.py` declares (one table per dataset, its
key the primary key); the run metadata tables are declared here. A test checks that the
migrations produce exactly these tables, so the two never drift. Data tables are WITHOUT
ROWID on SQLite: the primary key is the storage order.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ..models import DATASETS, Dataset, Type

metadata = sa.MetaData()

_SYMBOL = sa.String(32)
_SQL_TYPES = {"date": sa.Date(), "float": sa.Double(), "ts": sa.DateTime(timezone=True), "json": sa.Text()}
# The counters of an invocation (pipeline_runs), each 0 until the run finishes.
RUN_COUNTS = ("planned", "ok", "failed", "skipped", "rows_fetched", "rows_rejected", "rows_loaded", "api_calls")


def _sql_type(type_: Type) -> sa.types.TypeEngine:
    if type_.kind == "str":
        return sa.String(type_.size)
    if type_.kind == "int":
        return sa.Integer() if type_.size == 4 else sa.BigInteger()
    return _SQL_TYPES[type_.kind]


def _data_table(dataset: Dataset) -> sa.Table:
    columns = (sa.Column(name, _sql_type(type_), nullable=type_.nullable and name not in dataset.key)
               for name, type_ in dataset.columns)
    return sa.Table(dataset.name, metadata, *columns, sa.PrimaryKeyConstraint(*dataset.key),
                    sqlite_with_rowid=False)


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _counter(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


DATA_TABLES: dict[str, sa.Table] = {name: _data_table(dataset) for name, dataset in DATASETS.items()}
prices_daily = DATA_TABLES["prices_daily"]
corporate_actions = DATA_TABLES["corporate_actions"]
adjustments = DATA_TABLES["adjustments"]
indicators_daily = DATA_TABLES["indicators_daily"]
rejects = DATA_TABLES["rejects"]
quotes = DATA_TABLES["quotes"]
quotes_daily = DATA_TABLES["quotes_daily"]
prices_intraday = DATA_TABLES["prices_intraday"]

# One row per invocation (`id`). `run_id` names the run: the scheduler's (`--run-id`), which
# one Airflow DAG run shares between its tasks, shards and retries, else a fresh one.
pipeline_runs = sa.Table(
    "pipeline_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("arguments", sa.Text, nullable=False),
    sa.Column("provider", sa.String(32)),
    sa.Column("shard", sa.String(16)),
    _ts("started_at", nullable=False),
    _ts("finished_at"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.Integer),
    *(_counter(name) for name in RUN_COUNTS),
    sa.Column("error", sa.Text),
)

symbol_state = sa.Table(
    "symbol_state", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("dataset", sa.String(32), primary_key=True),
    sa.Column("first_date", sa.Date),
    sa.Column("last_date", sa.Date),
    _ts("last_attempt_at"),
    _ts("last_success_at"),
    _counter("consecutive_failures"),
    sa.Column("last_error", sa.Text),
    sa.Column("needs_reprocess", sa.Boolean, nullable=False, server_default=sa.false()),
    # The lake's rows for (symbol, dataset) changed `lake_version` times; the warehouse
    # holds them as of `loaded_version`. load takes the symbols where the two differ.
    _counter("lake_version"),
    _counter("loaded_version"),
    sa.Column("provider", sa.String(32)),
    # The earliest session the calendar found missing inside the held history: the next
    # plan refetches from there (one request), then clears it.
    sa.Column("refetch_from", sa.Date),
    # The currency the vendor states for the series (Yahoo's GBp is pence), never converted.
    sa.Column("currency", sa.String(8)),
    # The warehouse's rows of the dataset for the symbol, kept by load in the transaction of
    # those rows (pipeline/revisions.py), so `status` never counts the price table.
    _counter("rows_held"),
)

run_events = sa.Table(
    "run_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("symbol", _SYMBOL, nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    _counter("rows"),
    _counter("api_calls"),
    sa.Column("provider", sa.String(32)),
    sa.Column("message", sa.Text),
    _ts("created_at", nullable=False),
)

quality_results = sa.Table(
    "quality_results", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("check_name", sa.String(48), nullable=False),
    sa.Column("symbol", _SYMBOL, nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("observed", sa.Double),
    sa.Column("threshold", sa.Double),
    sa.Column("detail", sa.Text),
    _ts("checked_at", nullable=False),
)

# A restated bar's old values (pipeline/revisions.py): one row per changed column, from the
# lake's change feed, written by load in the transaction of the new values. `column` is one
# of REVISED_COLUMNS; seen_at is when the new value was fetched; run_id the run that fetched it.
REVISED_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")
price_revisions = sa.Table(
    "price_revisions", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("column", sa.String(16), primary_key=True),
    sa.Column("seen_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("old", sa.Double),
    sa.Column("new", sa.Double),
    sa.Column("provider", sa.String(32)),
    sa.Column("run_id", sa.String(64)),
    sa.Index("ix_price_revisions_seen_at", "seen_at"),
    sqlite_with_rowid=False,
)

# Calls spent per provider per quota day (storage/ledger.py). window_start is the start
# of the vendor's quota day (midnight in its reset zone) as a UTC instant; call_limit is
# the daily limit in force for that window (NULL: none known).
quota_ledger = sa.Table(
    "quota_ledger", metadata,
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("calls", sa.Integer, nullable=False),
    sa.Column("call_limit", sa.Integer),
    _ts("resets_at", nullable=False),
    _ts("updated_at", nullable=False),
)

# What of each lake table a consumer has applied (storage/applied.py): the warehouse load
# ("load", or "load:<i>/<n>" per shard) and the planner's symbol_state ("plan..."). Written in
# the same transaction as the rows or state it describes; table_id tells a recreated lake
# table (a new Delta table id) from the one the version counts in.
lake_applied = sa.Table(
    "lake_applied", metadata,
    sa.Column("consumer", sa.String(32), primary_key=True),
    sa.Column("dataset", sa.String(32), primary_key=True),
    sa.Column("table_id", sa.String(64), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    _ts("applied_at", nullable=False),
)

# The universe as the exchanges list it (pipeline/universe.py, migration 0011): `exchange` is
# the list's code (US, LSE), `venue` the listing's own (NASDAQ); a symbol gone from its list
# keeps its row with `delisted_at` set and is no longer fetched.
assets = sa.Table(
    "assets", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("exchange", sa.String(16), nullable=False, index=True),
    sa.Column("venue", sa.String(32)),
    sa.Column("country", sa.String(64)),
    sa.Column("currency", sa.String(8)),
    sa.Column("type", sa.String(32)),
    sa.Column("isin", sa.String(16)),
    _ts("first_seen", nullable=False),
    _ts("last_seen", nullable=False),
    _ts("delisted_at"),
)


def read_utc(value: dt.datetime | str | None) -> dt.datetime | None:
    """A timestamp as read back, made aware UTC: SQLite returns naive UTC, and text from an aggregate."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value
