"""Real vendors over HTTP behind the `Provider` interface.

One `HttpProvider` joins a pure vendor module (request building and parsing) to a
`VendorClient` (keep-alive, rate limits, quota ledger, retries, redaction). The raw
response (status, headers, body) travels in the `Payload`, so the pipeline archives it
before the vendor module parses it. An outcome other than OK/EMPTY becomes the error the
HTTP layer names for it (`http.error_for`); `stops_provider` on that error tells the
fetch loop to make no further calls to this provider in the run.

Yahoo sends OHLC and volume already split-adjusted; stockpipe stores prices as traded, so
the adapter undoes the splits the same response reports (exact for windows that end at
the latest session, which is what planning asks for).
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError, SymbolNotFoundError
from . import http
from .base import ACTION_COLUMNS, BAR_COLUMNS, ParsedDaily, Payload
from .wire import Outcome, Response

VENDORS = ("yahoo", "alphavantage", "eodhd", "finnhub", "polygon", "tiingo", "stooq")
LIMIT_KEYS = ("calls_per_second", "calls_per_minute", "calls_per_hour", "calls_per_day")


def module_for(name: str):
    return importlib.import_module(f"{__package__}.{name}")


class HttpProvider:
    """A market-data vendor reached over HTTP."""

    def __init__(self, module: Any, client: http.VendorClient, symbol_map: Mapping[str, str] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.module, self.client = module, client
        self.name = module.NAME
        self.needs_key = module.KEY_PARAM is not None
        self._symbol_map = dict(symbol_map or {})
        self._clock = clock

    @classmethod
    def from_settings(cls, name: str, settings: Any, clock: Callable[[], dt.datetime]) -> "HttpProvider":
        """Build the provider `name` from settings (base URL, limits, key, symbol map).

        Raises:
            ConfigError: the provider needs a key and none is set.
        """
        module = module_for(name)
        options = dict(getattr(settings, "provider_options", {}).get(name, {}))
        key = settings.api_key(name)
        if module.KEY_PARAM is not None and not key:
            env = f"STOCKPIPE_{name.upper()}_API_KEY"
            raise ConfigError(f"{name} needs an API key: set {env} or {env}_FILE (see the README)")
        limits = {k: options.get(k, module.DEFAULT_LIMITS.get(k)) for k in LIMIT_KEYS}
        ledger = None
        if limits["calls_per_day"]:  # a daily quota is counted in the warehouse, across runs
            from ..storage import warehouse
            from .ledger import Ledger

            engine = warehouse.create(settings.database_url)
            ledger = Ledger(engine, name, limits["calls_per_day"], getattr(module, "QUOTA_RESET_ZONE", "UTC"))
        client = http.VendorClient(
            name, options.get("base_url") or module.BASE_URL, key=key, key_param=module.KEY_PARAM,
            default_headers=getattr(module, "DEFAULT_HEADERS", None), limits=limits, ledger=ledger,
        )
        return cls(module, client, getattr(settings, "symbol_map", {}).get(name, {}), clock)

    @property
    def concurrency(self) -> int:
        return self.client.concurrency

    def symbols(self) -> None:
        return None

    def vendor_symbol(self, symbol: str) -> str:
        """The vendor's spelling: the config's [symbol_map.<provider>] first, then the rule."""
        return self._symbol_map.get(symbol) or self.module.vendor_symbol(symbol)

    def fetch_daily(self, symbol: str, start: dt.date, end: dt.date) -> Payload:
        """One daily-bars call (retried and rate-limited by the client).

        Raises:
            SymbolNotFoundError: the vendor has no spelling for the symbol (add a symbol map).
        """
        try:
            request = self._daily_request(self.vendor_symbol(symbol), start, end)
        except ValueError as exc:  # the module's own validation: no call was made
            raise SymbolNotFoundError(f"{self.name} cannot ask for {symbol} ({exc}): add it under "
                                      f"[symbol_map.{self.name}] in stockpipe.toml or use another provider") from None
        response = self.client.call(request)
        self._raise_if_terminal(response, symbol, start, end)
        return Payload(self.name, symbol, response.body, response.headers.get("content-type", ""),
                       api_calls=request.cost, source=f"{self.name} {request.endpoint}",
                       status=response.status, headers=dict(response.headers))

    def _raise_if_terminal(self, response, symbol: str, start: dt.date, end: dt.date) -> None:
        """Judge error-sized answers here, in the calling thread, so a refused key or a spent
        quota stops the other workers before they make another call."""
        if response.status < 400 and len(response.body) > 4096:
            return  # a body this size is data; parse_daily judges it later
        parsed = self.module.parse_daily(Response(response.status, response.headers, response.body), start, end)
        if parsed.outcome.stops_provider:
            raise http.error_for(parsed.outcome, self.name, f"{symbol} daily", parsed.message)

    def _daily_request(self, vendor_symbol: str, start: dt.date, end: dt.date):
        if self.name == "alphavantage" and self._clock is not None:
            return self.module.daily_request(vendor_symbol, start, end, today=self._clock().date())
        return self.module.daily_request(vendor_symbol, start, end)

    def parse_daily(self, payload: Payload, start: dt.date, end: dt.date) -> ParsedDaily:
        """Pure: the vendor module's outcome, as bars or as the error it means."""
        parsed = self.module.parse_daily(Response(payload.status, payload.headers, payload.content), start, end)
        if parsed.outcome not in (Outcome.OK, Outcome.EMPTY):
            raise http.error_for(parsed.outcome, self.name, f"{payload.symbol} daily", parsed.message)
        bars = parsed.bars if parsed.bars is not None else pd.DataFrame(columns=BAR_COLUMNS)
        actions = parsed.actions if parsed.actions is not None else pd.DataFrame(columns=ACTION_COLUMNS)
        if getattr(self.module, "PRICES_SPLIT_ADJUSTED", False):
            bars = unadjust_splits(bars, actions)
        return ParsedDaily(payload.symbol, bars, actions, tuple(parsed.rejected), parsed.currency)

    def close(self) -> None:
        self.client.close()


def unadjust_splits(bars: pd.DataFrame, actions: pd.DataFrame) -> pd.DataFrame:
    """Bars as traded from split-adjusted bars: prices before a split x ratio, volume / ratio."""
    splits = actions[actions["kind"] == "split"] if len(actions) else actions
    if bars.empty or splits.empty:
        return bars
    dates = bars["date"].to_numpy()
    factor = np.ones(len(bars))
    for when, ratio in zip(splits["date"].to_numpy(), splits["value"].to_numpy(dtype=float)):
        factor[dates < when] *= ratio
    out = bars.copy()
    for column in ("open", "high", "low", "close"):
        out[column] = np.round(out[column].to_numpy(dtype=float) * factor, 4)
    out["volume"] = np.round(out["volume"].to_numpy(dtype=float) / factor)
    return out
