"""The provider interface: what the pipeline asks of every market-data source.

A provider does the I/O (`fetch_daily` returns the raw payload exactly as received) and
has a pure `parse_daily` that turns that payload into a `ParsedDaily`. The pipeline
archives the payload before parsing, so what a vendor sent is never lost.

Every provider (demo, csv, each HTTP vendor, a test's fake) answers the same members, so
the pipeline asks instead of probing: `supports(kind)` says which of KINDS it serves, and
`concurrency` how many calls may run at once. `ProviderBase` holds the answers of a
provider that serves daily bars only, one call at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from ..errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from .wire import Parsed

# Columns of ParsedDaily.bars, in this order. `date` is datetime64 (midnight, naive) =
# the exchange's trading date. Prices are float64 as traded; adj_close may be NaN;
# volume float64 (NaN when the vendor sent none; validation rejects it).
BAR_COLUMNS = ("date", "open", "high", "low", "close", "adj_close", "volume")
# Columns of ParsedDaily.actions: date (datetime64), kind ("split" | "dividend"), value (float).
ACTION_COLUMNS = ("date", "kind", "value")
KINDS = ("daily", "quotes", "intraday")  # what a provider may serve
INTERVALS = ("1m", "5m", "15m", "30m", "60m")  # stockpipe's names for intraday bar sizes, every vendor's


@dataclass(frozen=True)
class Payload:
    """One response, as received, for one symbol."""

    provider: str
    symbol: str
    content: bytes
    media_type: str  # "application/json", "text/csv", ...
    api_calls: int = 1
    source: str = ""  # where it came from (a file path, an endpoint without secrets)
    status: int = 200  # HTTP providers: the response status and headers, for the parser
    headers: Mapping[str, str] = field(default_factory=dict)
    # True for a slice of an exchange-wide answer that was archived whole (EODHD's bulk
    # day): the fetch loop does not archive it again per symbol
    archived: bool = False


@dataclass(frozen=True)
class ParsedDaily:
    """Daily bars and corporate actions parsed from one payload.

    `rejected` holds rows the parser could not even read as a bar (for example a CSV line
    with a missing value), each a dict with keys `date`, `reason`, `raw`.
    """

    symbol: str
    bars: "pd.DataFrame"
    actions: "pd.DataFrame"
    rejected: tuple[dict[str, Any], ...] = ()
    currency: str | None = None
    # A split-adjusting vendor's basis (providers/basis.py): the last day its answer covered;
    # None when the bars came as traded.
    split_basis: dt.date | None = None


@dataclass(frozen=True)
class IntradayLimits:
    """What a provider serves of one intraday interval.

    span: the longest window one request may cover (None: one request returns the
        vendor's latest bars whatever the window, as Alpha Vantage's does).
    retention: how far back from now the vendor keeps bars of that interval.
    """

    span: dt.timedelta | None
    retention: dt.timedelta


class QuotaLedger(Protocol):
    """The daily call count a provider spends before each call (storage/ledger.py)."""

    def try_spend(self, cost: int = 1) -> bool:
        """Count `cost` calls if the day's limit allows them; False (nothing counted) if not."""

    def mark_exhausted(self) -> None:
        """The vendor said the quota is spent."""

    def describe(self) -> str:
        """One line for messages: what is spent and when it resets."""

    def resets_at(self) -> dt.datetime:
        """When the current quota day ends."""


# (provider name, calls per day or None, IANA zone the vendor's day resets in) -> its ledger;
# storage.ledger.opener(engine) makes one on the pipeline's engine.
LedgerOpener = Callable[[str, "int | None", str], QuotaLedger]


class Provider(Protocol):
    """What the pipeline needs from a market-data source."""

    name: str
    needs_key: bool
    concurrency: int  # calls the pipeline may run at once (the provider's client keeps its limits)

    def symbols(self) -> list[str] | None:
        """Symbols the source itself lists (CSV files), or None to use the universe."""

    def supports(self, kind: str) -> bool:
        """Whether this provider serves `kind`, one of KINDS ("daily" always)."""

    def fetch_daily(self, symbol: str, start: dt.date, end: dt.date) -> Payload:
        """Raw daily bars for `symbol` between `start` and `end` inclusive.

        Raises:
            SymbolNotFoundError: the source does not know the symbol.
            BadInputError: the source's data cannot be read (names the file/line and fix).
        """

    def parse_daily(self, payload: Payload, start: dt.date, end: dt.date) -> ParsedDaily:
        """Pure: payload in, bars and actions within [start, end] out."""

    def fetch_quote(self, symbol: str) -> Payload:
        """One quote call (when `supports("quotes")`)."""

    def parse_quote(self, payload: Payload) -> "Parsed":
        """Pure: the quote (Parsed.quotes, one row or none), or the error its outcome means."""

    def intraday_limits(self, interval: str) -> IntradayLimits:
        """Per-request span and retention of `interval` bars (when `supports("intraday")`)."""

    def fetch_intraday(self, symbol: str, interval: str, start: dt.datetime, end: dt.datetime,
                       now: dt.datetime) -> list[Payload]:
        """Intraday bars of `interval` in [start, end), one payload per window the vendor allows."""

    def parse_intraday(self, payloads: Sequence[Payload]) -> "Parsed":
        """Pure: one symbol's intraday payloads as one Parsed (Parsed.intraday)."""

    def close(self) -> None:
        """Release connections and files."""


class ProviderBase:
    """A provider of daily bars only, one call at a time: the defaults of `Provider`.

    Subclasses set `name` and implement `fetch_daily` and `parse_daily`; a provider that
    serves more overrides `kinds` and the methods of those kinds.
    """

    name = "provider"
    needs_key = False
    concurrency = 1
    kinds: frozenset[str] = frozenset({"daily"})

    def symbols(self) -> list[str] | None:
        return None

    def supports(self, kind: str) -> bool:
        return kind in self.kinds

    def fetch_quote(self, symbol: str) -> Payload:
        raise self._unsupported("quotes")

    def parse_quote(self, payload: Payload) -> "Parsed":
        raise self._unsupported("quotes")

    def intraday_limits(self, interval: str) -> IntradayLimits:
        raise self._unsupported("intraday")

    def fetch_intraday(self, symbol: str, interval: str, start: dt.datetime, end: dt.datetime,
                       now: dt.datetime) -> list[Payload]:
        raise self._unsupported("intraday")

    def parse_intraday(self, payloads: Sequence[Payload]) -> "Parsed":
        raise self._unsupported("intraday")

    def close(self) -> None:
        """Nothing to release."""

    def _unsupported(self, kind: str) -> ConfigError:
        return ConfigError(f"provider {self.name} has no {kind} endpoint: see --help for who serves {kind}")
