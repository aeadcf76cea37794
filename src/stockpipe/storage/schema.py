"""Warehouse tables (SQLAlchemy Core): the target of the alembic migrations.

A test checks that the migrations produce exactly these tables, so the two never drift.
Price tables are WITHOUT ROWID on SQLite: the primary key is the storage order.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..models import INDICATOR_COLUMNS

metadata = sa.MetaData()

_SYMBOL = sa.String(32)
_NO_ROWID = {"sqlite_with_rowid": False}


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


prices_daily = sa.Table(
    "prices_daily", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("open", sa.Double, nullable=False),
    sa.Column("high", sa.Double, nullable=False),
    sa.Column("low", sa.Double, nullable=False),
    sa.Column("close", sa.Double, nullable=False),
    sa.Column("adj_close", sa.Double),
    sa.Column("volume", sa.BigInteger, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    _ts("fetched_at", nullable=False),
    **_NO_ROWID,
)

corporate_actions = sa.Table(
    "corporate_actions", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    _ts("fetched_at", nullable=False),
    **_NO_ROWID,
)

indicators_daily = sa.Table(
    "indicators_daily", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    *(sa.Column(name, sa.Double) for name in INDICATOR_COLUMNS),
    _ts("computed_at", nullable=False),
    **_NO_ROWID,
)

adjustments = sa.Table(
    "adjustments", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("valid_to", sa.Date, primary_key=True),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("price_factor", sa.Double, nullable=False),
    sa.Column("volume_factor", sa.Double, nullable=False),
    _ts("computed_at", nullable=False),
    **_NO_ROWID,
)

quotes = sa.Table(
    "quotes", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("open", sa.Double),
    sa.Column("high", sa.Double),
    sa.Column("low", sa.Double),
    sa.Column("prev_close", sa.Double),
    sa.Column("change", sa.Double),
    sa.Column("change_pct", sa.Double),
    sa.Column("volume", sa.BigInteger),
    sa.Column("provider", sa.String(32), nullable=False),
    **_NO_ROWID,
)

quotes_daily = sa.Table(
    "quotes_daily", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("open", sa.Double, nullable=False),
    sa.Column("high", sa.Double, nullable=False),
    sa.Column("low", sa.Double, nullable=False),
    sa.Column("close", sa.Double, nullable=False),
    sa.Column("prev_close", sa.Double),
    sa.Column("change", sa.Double),
    sa.Column("change_pct", sa.Double),
    sa.Column("volume", sa.BigInteger),
    sa.Column("quotes", sa.Integer, nullable=False),
    sa.Column("avg_volume_per_quote", sa.Double),
    _ts("first_ts", nullable=False),
    _ts("last_ts", nullable=False),
    _ts("computed_at", nullable=False),
    **_NO_ROWID,
)

rejects = sa.Table(
    "rejects", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("date", sa.String(32), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    _ts("rejected_at", nullable=False),
    **_NO_ROWID,
)

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
    sa.Column("planned", sa.Integer, nullable=False, server_default="0"),
    sa.Column("ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_fetched", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.Integer, nullable=False, server_default="0"),
    sa.Column("api_calls", sa.Integer, nullable=False, server_default="0"),
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
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("needs_reprocess", sa.Boolean, nullable=False, server_default=sa.false()),
    # The lake's rows for (symbol, dataset) changed `lake_version` times; the warehouse
    # holds them as of `loaded_version`. load takes the symbols where the two differ.
    sa.Column("lake_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("loaded_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("provider", sa.String(32)),
    # The earliest session the calendar found missing inside the held history: the next
    # plan refetches from there (one request), then clears it.
    sa.Column("refetch_from", sa.Date),
    # The currency the vendor states for the series (Yahoo's GBp is pence), never converted.
    sa.Column("currency", sa.String(8)),
)

run_events = sa.Table(
    "run_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("symbol", _SYMBOL, nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("api_calls", sa.Integer, nullable=False, server_default="0"),
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

prices_intraday = sa.Table(
    "prices_intraday", metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("interval", sa.String(8), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),  # the bar's start, UTC
    sa.Column("open", sa.Double, nullable=False),
    sa.Column("high", sa.Double, nullable=False),
    sa.Column("low", sa.Double, nullable=False),
    sa.Column("close", sa.Double, nullable=False),
    sa.Column("volume", sa.BigInteger),
    sa.Column("session_date", sa.Date, nullable=False),  # the exchange's trading date
    sa.Column("provider", sa.String(32), nullable=False),
    _ts("fetched_at", nullable=False),
    **_NO_ROWID,
)

DATA_TABLES = {t.name: t for t in (prices_daily, corporate_actions, indicators_daily, rejects, adjustments,
                                   quotes, quotes_daily, prices_intraday)}

# Calls spent per provider per quota day (providers/ledger.py). window_start is the start
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
