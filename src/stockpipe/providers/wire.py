"""What every HTTP vendor module speaks: requests to build, responses to parse, outcomes.

A vendor module (alphavantage.py, yahoo.py, ...) is pure: it builds `Request`s and turns a
`Response` (status, headers, body bytes, exactly as received) into a `Parsed` with one
`Outcome` from PROVIDERS.md. The HTTP layer (http.py) does the I/O: it adds the key,
keeps the rate limits and the quota ledger, retries what is transient, and redacts
secrets. No vendor module ever sees or returns the API key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import pandas as pd


class Outcome(str, Enum):
    """What a client may conclude from one response (PROVIDERS.md)."""

    OK = "OK"
    EMPTY = "EMPTY"
    SYMBOL_NOT_FOUND = "SYMBOL_NOT_FOUND"
    AUTH_FAILED = "AUTH_FAILED"
    NOT_ENTITLED = "NOT_ENTITLED"
    RATE_LIMITED = "RATE_LIMITED"
    QUOTA_EXHAUSTED = "QUOTA_EXHAUSTED"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"  # a body that makes no sense: log it, store nothing

    @property
    def stops_provider(self) -> bool:
        """Terminal for the provider for the rest of the run (bad key, quota spent)."""
        return self in (Outcome.AUTH_FAILED, Outcome.QUOTA_EXHAUSTED)


@dataclass(frozen=True)
class Request:
    """One call, without the key: the HTTP layer adds it where `auth` says."""

    path: str  # relative to the provider's base URL, e.g. "/v8/finance/chart/AAPL"
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    endpoint: str = "daily"  # a name for logs, the ledger and NOT_ENTITLED bookkeeping
    cost: int = 1  # calls this request spends from the quota (EODHD bulk costs 100)


@dataclass(frozen=True)
class Response:
    """A response exactly as received (header names lower-cased)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Parsed:
    """What one response said.

    bars: columns base.BAR_COLUMNS (date = the exchange's trading date, datetime64, naive).
    actions: columns base.ACTION_COLUMNS (date, kind "split"/"dividend", value).
    quotes: columns symbol-less models.QUOTES: ts (UTC), price, open, high, low, prev_close,
        change, change_pct, volume.
    intraday: columns ts (UTC), open, high, low, close, volume, session_date.
    rejected: rows that could not be bars, each {"date", "reason", "raw"}.
    """

    outcome: Outcome
    bars: "pd.DataFrame | None" = None
    actions: "pd.DataFrame | None" = None
    quotes: "pd.DataFrame | None" = None
    intraday: "pd.DataFrame | None" = None
    rejected: tuple[dict[str, Any], ...] = ()
    currency: str | None = None
    message: str = ""  # the vendor's own words, short, never a secret
    retry_after: float | None = None  # seconds, when the vendor said
