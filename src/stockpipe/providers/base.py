"""The provider interface and registry.

A provider does the I/O (`fetch_daily` returns the raw payload exactly as received) and
has a pure `parse_daily` that turns that payload into a `ParsedDaily`. The pipeline
archives the payload before parsing, so what a vendor sent is never lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from ..errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from ..config import Settings

# Columns of ParsedDaily.bars, in this order. `date` is datetime64 (midnight, naive) =
# the exchange's trading date. Prices are float64 as traded; adj_close may be NaN;
# volume float64 (NaN when the vendor sent none; validation rejects it).
BAR_COLUMNS = ("date", "open", "high", "low", "close", "adj_close", "volume")
# Columns of ParsedDaily.actions: date (datetime64), kind ("split" | "dividend"), value (float).
ACTION_COLUMNS = ("date", "kind", "value")


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


class Provider(Protocol):
    """What the pipeline needs from a market-data source."""

    name: str
    needs_key: bool

    def symbols(self) -> list[str] | None:
        """Symbols the source itself lists (CSV files), or None to use the universe."""

    def fetch_daily(self, symbol: str, start: dt.date, end: dt.date) -> Payload:
        """Raw daily bars for `symbol` between `start` and `end` inclusive.

        Raises:
            SymbolNotFoundError: the source does not know the symbol.
            BadInputError: the source's data cannot be read (names the file/line and fix).
        """

    def parse_daily(self, payload: Payload, start: dt.date, end: dt.date) -> ParsedDaily:
        """Pure: payload in, bars and actions within [start, end] out."""

    def close(self) -> None:
        """Release connections and files."""


# A factory takes the settings and the pipeline's clock (so "now" is the same everywhere).
Factory = Callable[["Settings", Callable[[], dt.datetime]], Provider]
_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make a provider available under `name` (tests register fakes this way)."""
    _REGISTRY[name] = factory


def provider_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def create(name: str, settings: "Settings", clock: Callable[[], dt.datetime] | None = None) -> Provider:
    """Build the provider called `name`.

    Raises:
        ConfigError: no provider has that name.
    """
    _load_builtins()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown provider {name!r}: choose one of {known} (--provider)") from None
    from ..calendars import utcnow

    return factory(settings, clock or utcnow)


def _load_builtins() -> None:
    if "demo" in _REGISTRY:
        return
    from . import csvfile, demo

    _REGISTRY.setdefault("demo", demo.DemoProvider.from_settings)
    _REGISTRY.setdefault("csv", csvfile.CsvProvider.from_settings)
    from .vendors import VENDORS, HttpProvider

    for name in VENDORS:
        _REGISTRY.setdefault(name, lambda settings, clock, name=name: HttpProvider.from_settings(name, settings, clock))
