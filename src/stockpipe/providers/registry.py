"""Provider names, and the one way to build a provider by name.

The names are declared here once: VENDORS (HTTP, one module each, which ends with its
`VENDOR`) and OFFLINE (demo, csv); INTERVALS (stockpipe's intraday bar sizes, the same for
every vendor) is base.py's. The module imports nothing heavy, so `--help` can read these;
a provider's own module is imported when it is first asked for (importlib), and no
provider module imports this one: no import cycle.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from .base import LedgerOpener, Provider

VENDORS = ("yahoo", "alphavantage", "eodhd", "finnhub", "polygon", "tiingo", "stooq")
OFFLINE = ("demo", "csv")

# A registered factory takes the settings and the pipeline's clock (so "now" is the same everywhere).
Factory = Callable[["Settings", Callable[[], dt.datetime]], "Provider"]
_REGISTERED: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make a provider available under `name` (tests register fakes this way)."""
    _REGISTERED[name] = factory


def names() -> list[str]:
    """Every provider name `create` knows, built in first."""
    return [*VENDORS, *OFFLINE, *(n for n in _REGISTERED if n not in VENDORS + OFFLINE)]


def create(name: str, settings: "Settings", clock: Callable[[], dt.datetime] | None = None, *,
           ledger: "LedgerOpener | None" = None, kind: str = "daily") -> "Provider":
    """Build the provider called `name`, which must serve `kind` ("daily", "quotes", "intraday").

    Args:
        clock: the pipeline's clock (default: the system's, in UTC).
        ledger: opens the quota ledger of a vendor with a daily quota, on the caller's
            engine (`storage.ledger.opener(engine)`); without it the vendor's client keeps
            the day's count in memory, for this process only.
        kind: what the caller will ask for; a built-in provider that does not serve it is
            refused before its key is checked.

    Raises:
        ConfigError: no provider has that name, it does not serve `kind`, or it needs a key
            that is not set.
    """
    from ..calendars import utcnow

    if name not in _REGISTERED and not supports(name, kind):
        raise unsupported(name, kind)
    provider = _build(name, settings, clock or utcnow, ledger)
    if not provider.supports(kind):
        provider.close()
        raise unsupported(name, kind)
    return provider


def supports(name: str, kind: str) -> bool:
    """Whether the built-in provider `name` serves `kind`, without building it.

    Raises:
        ConfigError: `name` is not built in (nor registered).
    """
    if name in OFFLINE:
        return kind in _offline(name).kinds
    if name in VENDORS:
        return kind in _vendor(name).kinds
    if name in _REGISTERED:
        return True  # known once built: Provider.supports
    raise ConfigError(f"unknown provider {name!r}: choose one of {', '.join(sorted(names()))} (--provider)")


def unsupported(name: str, kind: str) -> ConfigError:
    """The error for asking `name` for what it does not serve, naming who does."""
    able = [n for n in VENDORS if supports(n, kind)]
    choices = f"{', '.join(able[:-1])} or {able[-1]}" if len(able) > 1 else "".join(able)
    return ConfigError(f"provider {name} has no {kind} endpoint: use {choices} (--provider)")


def _build(name: str, settings: "Settings", clock: Callable[[], dt.datetime],
           ledger: "LedgerOpener | None") -> "Provider":
    if name in _REGISTERED:
        return _REGISTERED[name](settings, clock)
    if name in OFFLINE:
        return _offline(name).from_settings(settings, clock)
    from .http_provider import HttpProvider

    return HttpProvider.from_settings(_vendor(name), settings, clock, ledger)


def _offline(name: str) -> Any:
    """The class of the offline provider `name`."""
    if name == "demo":
        from .demo import DemoProvider

        return DemoProvider
    from .csvfile import CsvProvider

    return CsvProvider


def _vendor(name: str) -> Any:
    """The vendor module's VENDOR (vendor.Vendor)."""
    return importlib.import_module(f"{__package__}.{name}").VENDOR
