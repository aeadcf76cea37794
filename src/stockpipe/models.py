"""Datasets (columns, keys, types) and the result objects stages hand to the renderer.

Column types are written as short names, not pyarrow objects, so that importing this
module (as `health-check` and `--help` do) costs nothing; `arrow_schema()` builds the
pyarrow schema on demand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

# (name, type). Types: date, float, int, str, ts (UTC timestamp, microseconds), json (str).
PRICES_DAILY = (
    ("symbol", "str"),
    ("date", "date"),
    ("open", "float"),
    ("high", "float"),
    ("low", "float"),
    ("close", "float"),
    ("adj_close", "float"),
    ("volume", "int"),
    ("provider", "str"),
    ("fetched_at", "ts"),
)
CORPORATE_ACTIONS = (
    ("symbol", "str"),
    ("date", "date"),
    ("kind", "str"),  # split | dividend
    ("value", "float"),  # split: new shares per old share; dividend: cash per share
    ("provider", "str"),
    ("fetched_at", "ts"),
)
INDICATOR_COLUMNS = (
    "sma_5", "sma_10", "sma_20", "sma_50", "sma_200", "ema_12", "ema_26", "ema_50",
    "macd", "macd_signal", "macd_hist", "rsi_14", "bb_middle", "bb_upper", "bb_lower", "atr_14",
    "stoch_k", "stoch_d", "adx_14", "plus_di_14", "minus_di_14", "cci_20", "willr_14", "mfi_14",
    "obv", "roc_10", "mom_10", "return_1d", "log_return_1d", "volatility_30d", "high_52w", "low_52w",
    "pct_from_high_52w", "drawdown",
)
INDICATORS_DAILY = (
    ("symbol", "str"),
    ("date", "date"),
    *((name, "float") for name in INDICATOR_COLUMNS),
    ("computed_at", "ts"),
)
# Backward adjustment (CRSP/zipline): bars with valid_from <= date < valid_to are
# multiplied by price_factor (prices) and volume_factor (volume); bars on or after a
# symbol's newest ex-date have no row (factor 1).
ADJUSTMENTS = (
    ("symbol", "str"),
    ("valid_to", "date"),  # the ex-date of the action that ends this span (exclusive)
    ("valid_from", "date"),  # the previous ex-date, or the first bar (inclusive)
    ("price_factor", "float"),
    ("volume_factor", "float"),
    ("computed_at", "ts"),
)
QUOTES = (
    ("symbol", "str"),
    ("ts", "ts"),
    ("price", "float"),
    ("open", "float"),
    ("high", "float"),
    ("low", "float"),
    ("prev_close", "float"),
    ("change", "float"),
    ("change_pct", "float"),
    ("volume", "int"),
    ("provider", "str"),
)
QUOTES_DAILY = (
    ("symbol", "str"),
    ("date", "date"),  # the exchange's session date of the quotes
    ("open", "float"),
    ("high", "float"),
    ("low", "float"),
    ("close", "float"),
    ("prev_close", "float"),
    ("change", "float"),
    ("change_pct", "float"),
    ("volume", "int"),  # the day's last cumulative volume
    ("quotes", "int"),  # how many quotes the day had
    ("avg_volume_per_quote", "float"),
    ("first_ts", "ts"),
    ("last_ts", "ts"),
    ("computed_at", "ts"),
)
PRICES_INTRADAY = (
    ("symbol", "str"),
    ("interval", "str"),  # 1m 5m 15m 30m 60m
    ("ts", "ts"),  # the bar's start, UTC
    ("open", "float"),
    ("high", "float"),
    ("low", "float"),
    ("close", "float"),
    ("volume", "int"),
    ("session_date", "date"),  # the exchange's trading date of the bar
    ("provider", "str"),
    ("fetched_at", "ts"),
)
REJECTS = (
    ("run_id", "str"),
    ("symbol", "str"),
    ("date", "str"),  # as the provider sent it: it may not even be a date
    ("reason", "str"),
    ("raw", "json"),
    ("provider", "str"),
    ("rejected_at", "ts"),
)


@dataclass(frozen=True)
class Dataset:
    """A dataset held in the lake and loaded into the warehouse table of the same name."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    # Columns that do not make a row "different" when a re-fetch restates it.
    volatile: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def value_columns(self) -> list[str]:
        return [n for n in self.column_names if n not in self.key and n not in self.volatile]


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("prices_daily", PRICES_DAILY, ("symbol", "date"), ("fetched_at",)),
        Dataset("corporate_actions", CORPORATE_ACTIONS, ("symbol", "date", "kind"), ("fetched_at",)),
        Dataset("indicators_daily", INDICATORS_DAILY, ("symbol", "date"), ("computed_at",)),
        Dataset("rejects", REJECTS, ("run_id", "symbol", "date", "reason"), ("rejected_at",)),
        Dataset("adjustments", ADJUSTMENTS, ("symbol", "valid_to"), ("computed_at",)),
        Dataset("quotes", QUOTES, ("symbol", "ts")),
        Dataset("prices_intraday", PRICES_INTRADAY, ("symbol", "interval", "ts"), ("fetched_at",)),
        Dataset("quotes_daily", QUOTES_DAILY, ("symbol", "date"), ("computed_at",)),
    )
}


def arrow_schema(dataset: Dataset):  # -> pyarrow.Schema (imported late on purpose)
    """The pyarrow schema of a dataset."""
    import pyarrow as pa

    types = {
        "str": pa.string(),
        "date": pa.date32(),
        "float": pa.float64(),
        "int": pa.int64(),
        "ts": pa.timestamp("us", tz="UTC"),
        "json": pa.string(),
    }
    return pa.schema([(name, types[kind]) for name, kind in dataset.columns])


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
