"""Every dataset declared once, and the result objects stages hand to the renderer.

A dataset's declaration here (its columns with their types, key, partition column, volatile
columns) is the only one: `storage/schema.py` builds its warehouse table from it,
`storage/lake.py` partitions it by month of its `partition` column, and load applies the
datasets in `LOAD_ORDER`, the order they are declared in. The migrations still create the
tables explicitly (they are history), and a test checks that the migrated database holds
exactly the tables, columns, types and keys declared here, on SQLite and PostgreSQL.

Column types are small values (`Type`), not pyarrow or SQLAlchemy objects, so that importing
this module (as `health-check` and `--help` do) costs nothing; `arrow_schema()` builds the
pyarrow schema on demand, `storage/schema.py` the SQL types.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Type:
    """A column's type in the lake and the warehouse.

    kind: date, float, int, str, ts (UTC timestamp, microseconds) or json (text).
    nullable: whether the warehouse column takes NULL (every lake column does).
    size: for str, the warehouse's VARCHAR length; for int, 4 makes a 32-bit INTEGER
        column, else BIGINT (the lake holds every int as int64).
    """

    kind: str
    nullable: bool = False
    size: int | None = None


def string(size: int) -> Type:
    """A text column of at most `size` characters (VARCHAR in the warehouse), NOT NULL."""
    return Type("str", size=size)


NAME = string(32)  # a symbol or a provider's name
DATE, TS, JSON = Type("date"), Type("ts"), Type("json")
FLOAT, NULLABLE_FLOAT = Type("float"), Type("float", nullable=True)
INT, NULLABLE_INT = Type("int"), Type("int", nullable=True)
COUNT = Type("int", size=4)

PRICES_DAILY = (
    ("symbol", NAME),
    ("date", DATE),
    ("open", FLOAT),
    ("high", FLOAT),
    ("low", FLOAT),
    ("close", FLOAT),
    ("adj_close", NULLABLE_FLOAT),  # the provider's, as it sent it
    ("volume", INT),
    ("provider", NAME),
    ("fetched_at", TS),
    # The split basis the bar was fetched on, for a vendor that sends split-adjusted bars
    # (Yahoo): the last day its answer covered, so every split the answer reported up to
    # then was undone. NULL: the vendor sent the bar as traded. See the README's providers.
    ("split_basis", Type("date", nullable=True)),
)
CORPORATE_ACTIONS = (
    ("symbol", NAME),
    ("date", DATE),
    ("kind", string(16)),  # split | dividend
    ("value", FLOAT),  # split: new shares per old share; dividend: cash per share
    ("provider", NAME),
    ("fetched_at", TS),
)
INDICATOR_COLUMNS = (
    "sma_5", "sma_10", "sma_20", "sma_50", "sma_200", "ema_12", "ema_26", "ema_50",
    "macd", "macd_signal", "macd_hist", "rsi_14", "bb_middle", "bb_upper", "bb_lower", "atr_14",
    "stoch_k", "stoch_d", "adx_14", "plus_di_14", "minus_di_14", "cci_20", "willr_14", "mfi_14",
    "obv", "roc_10", "mom_10", "return_1d", "log_return_1d", "volatility_30d", "high_52w", "low_52w",
    "pct_from_high_52w", "drawdown",
)
INDICATORS_DAILY = (
    ("symbol", NAME),
    ("date", DATE),
    *((name, NULLABLE_FLOAT) for name in INDICATOR_COLUMNS),  # NaN (NULL) on each one's warm-up bars
    ("computed_at", TS),
)
# Backward adjustment (CRSP/zipline): bars with valid_from <= date < valid_to are
# multiplied by price_factor (prices) and volume_factor (volume); bars on or after a
# symbol's newest ex-date have no row (factor 1).
ADJUSTMENTS = (
    ("symbol", NAME),
    ("valid_to", DATE),  # the ex-date of the action that ends this span (exclusive)
    ("valid_from", DATE),  # the previous ex-date, or the first bar (inclusive)
    ("price_factor", FLOAT),
    ("volume_factor", FLOAT),
    ("computed_at", TS),
)
QUOTES = (
    ("symbol", NAME),
    ("ts", TS),
    ("price", FLOAT),
    ("open", NULLABLE_FLOAT),
    ("high", NULLABLE_FLOAT),
    ("low", NULLABLE_FLOAT),
    ("prev_close", NULLABLE_FLOAT),
    ("change", NULLABLE_FLOAT),
    ("change_pct", NULLABLE_FLOAT),
    ("volume", NULLABLE_INT),
    ("provider", NAME),
)
QUOTES_DAILY = (
    ("symbol", NAME),
    ("date", DATE),  # the exchange's session date of the quotes
    ("open", FLOAT),
    ("high", FLOAT),
    ("low", FLOAT),
    ("close", FLOAT),
    ("prev_close", NULLABLE_FLOAT),
    ("change", NULLABLE_FLOAT),
    ("change_pct", NULLABLE_FLOAT),
    ("volume", NULLABLE_INT),  # the day's last cumulative volume
    ("quotes", COUNT),  # how many quotes the day had
    ("avg_volume_per_quote", NULLABLE_FLOAT),
    ("first_ts", TS),
    ("last_ts", TS),
    ("computed_at", TS),
)
PRICES_INTRADAY = (
    ("symbol", NAME),
    ("interval", string(8)),  # 1m 5m 15m 30m 60m
    ("ts", TS),  # the bar's start, UTC
    ("open", FLOAT),
    ("high", FLOAT),
    ("low", FLOAT),
    ("close", FLOAT),
    ("volume", NULLABLE_INT),
    ("session_date", DATE),  # the exchange's trading date of the bar
    ("provider", NAME),
    ("fetched_at", TS),
)
REJECTS = (
    ("run_id", string(64)),
    ("symbol", NAME),
    ("date", string(32)),  # as the provider sent it: it may not even be a date
    ("reason", string(64)),
    ("raw", JSON),
    ("provider", NAME),
    ("rejected_at", TS),
)


@dataclass(frozen=True)
class Dataset:
    """A dataset held in the lake and loaded into the warehouse table of the same name.

    Attributes:
        name: the lake directory and the warehouse table.
        columns: (name, type) pairs, in the lake schema's order (a migrated table may order
            them otherwise: 0002 appended indicators; loads name every column).
        key: the columns that identify a row (the table's primary key, in this order).
        partition: the column whose month decides a row's lake partition.
        volatile: columns that do not make a row "different" when a re-fetch restates it.
        replaced: a symbol's rows form one whole (adjustment spans: a new split changes
            every earlier span and may remove some), so transform and load replace them
            as a whole rather than merging row by row.
    """

    name: str
    columns: tuple[tuple[str, Type], ...]
    key: tuple[str, ...]
    partition: str = "date"
    volatile: tuple[str, ...] = ()
    replaced: bool = False

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def value_columns(self) -> list[str]:
        return [n for n in self.column_names if n not in self.key and n not in self.volatile]


# In load order: load applies the datasets in the order they are declared here (adjustment
# spans right after the corporate actions they derive from).
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        # split_basis is volatile: a refetch giving the same prices keeps the basis they were
        # first fetched on, beside their fetched_at
        Dataset("prices_daily", PRICES_DAILY, ("symbol", "date"), volatile=("fetched_at", "split_basis")),
        Dataset("corporate_actions", CORPORATE_ACTIONS, ("symbol", "date", "kind"), volatile=("fetched_at",)),
        Dataset("adjustments", ADJUSTMENTS, ("symbol", "valid_to"), partition="valid_to",  # the ex-date's month
                volatile=("computed_at",), replaced=True),
        Dataset("indicators_daily", INDICATORS_DAILY, ("symbol", "date"), volatile=("computed_at",)),
        Dataset("rejects", REJECTS, ("run_id", "symbol", "date", "reason"), partition="rejected_at",
                volatile=("rejected_at",)),
        Dataset("quotes", QUOTES, ("symbol", "ts"), partition="ts"),
        Dataset("quotes_daily", QUOTES_DAILY, ("symbol", "date"), volatile=("computed_at",)),
        Dataset("prices_intraday", PRICES_INTRADAY, ("symbol", "interval", "ts"), partition="ts",
                volatile=("fetched_at",)),
    )
}
LOAD_ORDER: tuple[Dataset, ...] = tuple(DATASETS.values())


def arrow_schema(dataset: Dataset):  # -> pyarrow.Schema (imported late on purpose)
    """The pyarrow schema of a dataset (every field nullable, every int an int64)."""
    import pyarrow as pa

    types = {
        "str": pa.string(),
        "date": pa.date32(),
        "float": pa.float64(),
        "int": pa.int64(),
        "ts": pa.timestamp("us", tz="UTC"),
        "json": pa.string(),
    }
    return pa.schema([(name, types[type_.kind]) for name, type_ in dataset.columns])


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SymbolOutcome:
    """What one stage did for one symbol; one `run_events` row."""

    symbol: str
    stage: str
    status: str  # ok | no_data | throttled | failed | skipped (deferred: not asked this run, no failure counted)
    rows: int = 0
    api_calls: int = 0
    message: str = ""
    provider: str = ""
    exit_code: int = 0  # for a failure: the exit code its error class carries
    rejected: int = 0  # rows the provider sent that went to `rejects`


@dataclass(frozen=True)
class Check:
    """One line of `validate`, `quality-check` or `health-check`."""

    name: str
    ok: bool
    detail: str
    severity: str = "error"  # error | warn
    symbol: str = ""
    observed: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class StageResult:
    """The result of one stage (a subcommand, or a link of `run`)."""

    stage: str
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    outcomes: tuple[SymbolOutcome, ...] = ()
    checks: tuple[Check, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class CommandResult:
    """What a subcommand returns to the CLI: one run, its stages, its exit code."""

    command: str
    run_id: str
    exit_code: int
    stages: tuple[StageResult, ...]
    started_at: dt.datetime
    finished_at: dt.datetime
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
