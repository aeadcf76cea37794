"""What every HTTP vendor module speaks: requests to build, responses to parse, outcomes.

A vendor module (alphavantage.py, yahoo.py, ...) is pure: it builds `Request`s and turns a
`Response` (status, headers, body bytes, exactly as received) into a `Parsed` with one
`Outcome` from PROVIDERS.md. The HTTP layer (http/) does the I/O: it adds the key,
keeps the rate limits and the quota ledger, retries what is transient, and redacts
secrets. No vendor module ever sees or returns the API key. `error_for` names the error
each outcome means.

Retry-After has one reader, `Response.retry_after`: delta-seconds or an HTTP-date. The
client measures a date from its own clock and reads the header before the vendor's
verdict; a vendor module (no clock: pure) measures it from the answer's Date header.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Mapping

from .. import errors

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
    calls: int = 1  # calls spent on it, retries included (the client counts them)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str:
        """The header `name` (any case), stripped; "" when absent."""
        name = name.lower()
        return next((v.strip() for k, v in self.headers.items() if k.lower() == name), "")

    def retry_after(self, now: dt.datetime | None = None) -> float | None:
        """Seconds to wait from Retry-After: delta-seconds, or an HTTP-date measured from
        `now`, else from the Date header; None when absent or unreadable. Never negative."""
        value = self.header("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = _http_date(value)
            since = now or _http_date(self.header("date"))
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, (when - since).total_seconds())


def _http_date(value: str) -> dt.datetime:
    """An HTTP-date as an aware datetime (one without a zone is UTC)."""
    when = email.utils.parsedate_to_datetime(value)
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


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
    basis: dt.date | None = None  # the last day the answer covers (its newest bar): see basis.py


def error_for(outcome: Outcome, provider: str, what: str, message: str = "") -> errors.StockpipeError | None:
    """The error a vendor's `outcome` means (None for OK and EMPTY).

    `what` names the call ("AAPL daily"); `message` is the vendor's own short words.
    """
    said = f" ({message})" if message else ""
    env = f"STOCKPIPE_{provider.upper()}"
    return {
        Outcome.AUTH_FAILED: lambda: errors.AuthFailedError(f"{provider} refused the API key for {what}{said}: "
                                                            f"check {env}_API_KEY"),
        Outcome.QUOTA_EXHAUSTED: lambda: errors.QuotaExhaustedError(f"{provider} quota spent at {what}{said}: "
                                                                    "the next run takes the remaining symbols"),
        Outcome.RATE_LIMITED: lambda: errors.RateLimitedError(f"{provider} is throttling {what}{said}: "
                                                              f"lower {env}_CALLS_PER_MINUTE or retry later"),
        Outcome.NOT_ENTITLED: lambda: errors.NotEntitledError(f"{provider} plan does not cover {what}{said}: "
                                                              "use another endpoint or provider"),
        Outcome.SYMBOL_NOT_FOUND: lambda: errors.SymbolNotFoundError(f"{provider} does not know {what}{said}"),
        Outcome.PROTOCOL_ERROR: lambda: errors.ProtocolError(f"{provider} sent an unreadable answer for {what}{said}"),
    }.get(outcome, lambda: None)()
