"""The results of the commands that look at the data (show, plot, report, export).

Like models.CommandResult they are frozen and printed only by render.py; `document()` is
their `--json` body (render adds schema, command, exit_code and exit_name). Light on
purpose: importing this costs nothing (`--help`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import ExitCode

Row = dict[str, Any]


def _plain(value: Any) -> Any:
    """A JSON-ready value: dates and times as ISO text, NaN as None, paths as text."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class ShowResult:
    """`show SYMBOL`: its newest bars with the main indicators, corporate actions and state."""

    symbol: str
    provider: str
    bars: tuple[Row, ...]  # oldest first: date, open, high, low, close, volume, provider, indicators
    indicators: tuple[str, ...]
    sparkline: tuple[float, ...]  # closes, oldest first (more than the bars shown)
    actions: tuple[Row, ...]
    states: tuple[Row, ...]  # symbol_state rows
    failures: tuple[Row, ...]  # open quality failures
    command: str = "show"
    exit_code: int = ExitCode.OK
    message: str = ""

    def document(self) -> dict[str, Any]:
        return _plain({"symbol": self.symbol, "provider": self.provider, "bars": list(self.bars),
                       "indicators": list(self.indicators), "closes": list(self.sparkline),
                       "corporate_actions": list(self.actions), "state": list(self.states),
                       "quality_failures": list(self.failures)})


@dataclass(frozen=True)
class WrittenResult:
    """A file a command wrote (`plot`, `report`, `export --out`): what, where, how much."""

    command: str
    path: Path
    what: str  # one line for people: "AAPL 2025-12-01..2026-11-23, 248 bars, as traded"
    details: dict[str, Any] = field(default_factory=dict)
    exit_code: int = ExitCode.OK
    message: str = ""

    def document(self) -> dict[str, Any]:
        return _plain({"path": self.path, "what": self.what, **self.details})


@dataclass(frozen=True)
class ExportResult:
    """`export` to stdout: the encoded rows themselves (csv, parquet or json), in pieces as
    they are read, so memory holds one chunk of symbols whatever the table's size."""

    dataset: str
    format: str
    chunks: Iterable[bytes]
    command: str = "export"
    exit_code: int = ExitCode.OK
    message: str = ""
