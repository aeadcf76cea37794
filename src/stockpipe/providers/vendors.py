"""Real vendors over HTTP behind the `Provider` interface.

One `HttpProvider` joins a pure vendor module (request building and parsing) to a
`VendorClient` (keep-alive, rate limits, quota ledger, retries, redaction). The raw
response (status, headers, body) travels in the `Payload`, so the pipeline archives it
before the vendor module parses it. An outcome other than OK/EMPTY becomes the error the
HTTP layer names for it (`http.error_for`); `stops_provider` on that error tells the
fetch loop to make no further calls to this provider in the run.

Decisions:
    * Yahoo sends OHLC and volume already split-adjusted, daily and intraday; stockpipe
      stores prices as traded, so the adapter undoes the splits the same answer reports
      (for intraday: the splits of all of a symbol's windows together). Exact for windows
      that end at the latest session, which is what planning asks for; a window ending
      before a later split stays adjusted for it (the answer does not report it).
    * Yahoo's refused session (401 Invalid Crumb/Cookie): one new cookie and crumb and one
      retry per request (session.py); a second refusal is AUTH_FAILED (exit 4) with a
      message about the session and the block, not about a key Yahoo does not have.
    * A request stopped before the vendor answered it (the quota ledger's day is spent, or
      the client's own rate limit would wait past its cap) is not the symbol's failure:
      the error carries `not_asked = True`, and the fetch loop records the symbol as
      skipped (deferred to the next run), as it does for symbols after the stop.
    * The daily quota is counted by the ledger alone (the quota day, midnight to midnight
      in the vendor's reset zone, across runs): the client's limiter gets no sliding 24 h
      window, which would refuse calls after the reset and report a spent quota as a rate
      limit.

Quotes (`fetch_quote`/`parse_quote`) come from the vendor module's quote endpoint (finnhub,
alphavantage, eodhd), Yahoo's from its chart answer's `meta` (yahoo_quote.py). Intraday
bars (`fetch_intraday`/`parse_intraday`) come in as many calls as the vendor's per-request
limit needs (`IntradayLimits`); stockpipe's interval names are 1m 5m 15m 30m 60m whatever
each vendor calls them.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote as _quote_path

import numpy as np
import pandas as pd

from ..errors import ConfigError, StockpipeError, SymbolNotFoundError, UsageError
from . import http, yahoo_quote
from .base import ACTION_COLUMNS, BAR_COLUMNS, ParsedDaily, Payload
from .session import CrumbSession
from .wire import Outcome, Parsed, Request, Response

VENDORS = ("yahoo", "alphavantage", "eodhd", "finnhub", "polygon", "tiingo", "stooq")
LIMIT_KEYS = ("calls_per_second", "calls_per_minute", "calls_per_hour", "calls_per_day")
INTERVALS = ("1m", "5m", "15m", "30m", "60m")  # stockpipe's names for intraday bar sizes
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class IntradayLimits:
    """What a vendor serves of one intraday interval.

    span: the longest window one request may cover (None: one request returns the
        vendor's latest bars whatever the window, as Alpha Vantage's does).
    retention: how far back from now the vendor keeps bars of that interval.
    """

    span: dt.timedelta | None
    retention: dt.timedelta


# Vendors whose module has no table of its own (yahoo.INTRADAY_LIMITS is used as it is).
# Finnhub publishes no retention: a year is the most stockpipe asks for, a month a call.
# Polygon's free plan keeps 2 years; 30 days of 1-minute bars with extended hours stay
# under its 50,000-bar page. Alpha Vantage's TIME_SERIES_INTRADAY (no `month`) returns the
# trailing 30 days (outputsize=full) or the latest 100 bars (compact).
_INTRADAY = {
    "finnhub": IntradayLimits(30 * _DAY, 365 * _DAY),
    "polygon": IntradayLimits(30 * _DAY, 730 * _DAY),
    "alphavantage": IntradayLimits(None, 30 * _DAY),
}


def module_for(name: str):
    return importlib.import_module(f"{__package__}.{name}")


def supports(name: str, kind: str) -> bool:
    """Whether vendor `name` serves `kind` ("quotes" or "intraday"); False for non-vendors."""
    if name not in VENDORS:
        return False
    module = module_for(name)
    if kind == "quotes":
        return name == "yahoo" or (hasattr(module, "quote_request") and hasattr(module, "parse_quote"))
    return hasattr(module, "intraday_request") and hasattr(module, "parse_intraday")


def unsupported(name: str, kind: str) -> ConfigError:
    """The error for asking `name` for what it does not serve, naming who does."""
    able = [n for n in VENDORS if supports(n, kind)]
    choices = f"{', '.join(able[:-1])} or {able[-1]}" if len(able) > 1 else "".join(able)
    return ConfigError(f"provider {name} has no {kind} endpoint: use {choices} (--provider)")


class HttpProvider:
    """A market-data vendor reached over HTTP."""

    def __init__(self, module: Any, client: http.VendorClient, symbol_map: Mapping[str, str] | None = None,
                 clock: Callable[[], dt.datetime] | None = None, base_url: str | None = None) -> None:
        self.module, self.client = module, client
        self.name = module.NAME
        self.needs_key = module.KEY_PARAM is not None
        self._symbol_map = dict(symbol_map or {})
        self._clock = clock
        refreshable = hasattr(module, "crumb_request")  # Yahoo: a session it may refuse
        self._session = CrumbSession(module, client, base_url or module.BASE_URL) if refreshable else None

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
        base_url = options.get("base_url") or module.BASE_URL
        client = http.VendorClient(  # the ledger alone counts the quota day (module docstring)
            name, base_url, key=key, key_param=module.KEY_PARAM,
            default_headers=getattr(module, "DEFAULT_HEADERS", None),
            limits={**limits, "calls_per_day": None} if ledger else limits, ledger=ledger,
        )
        return cls(module, client, getattr(settings, "symbol_map", {}).get(name, {}), clock, base_url)

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
        request = self._request(symbol, lambda spelled: self._daily_request(spelled, start, end))
        parse = lambda wire: self.module.parse_daily(wire, start, end)  # noqa: E731
        try:
            response = self._call(request, parse, f"{symbol} daily")
        except http.NotEntitledError as exc:
            if request.endpoint != "daily:full" or "outputsize" not in str(exc):
                raise  # a premium endpoint, not a premium output size
            # Alpha Vantage: outputsize=full is premium-only on free keys; the last 100 rows
            # (compact) are not. Retry once (PROVIDERS.md premium_outputsize_full).
            request = self._request(symbol, lambda spelled: self._daily_request(spelled, start, end, "compact"))
            response = self._call(request, parse, f"{symbol} daily")
        return self._payload(symbol, request, response)

    def supports(self, kind: str) -> bool:
        """Whether this vendor serves `kind`: "quotes" or "intraday"."""
        return supports(self.name, kind)

    def fetch_quote(self, symbol: str) -> Payload:
        """One quote call.

        Raises:
            ConfigError: the vendor has no quotes endpoint.
            SymbolNotFoundError: the vendor has no spelling for the symbol.
        """
        self._require("quotes")
        request = self._request(symbol, self._quote_request)
        response = self._call(request, self._read_quote, f"{symbol} quote")
        return self._payload(symbol, request, response)

    def parse_quote(self, payload: Payload) -> Parsed:
        """Pure: the quote (Parsed.quotes, one row or none), or the error its outcome means."""
        parsed = self._read_quote(Response(payload.status, payload.headers, payload.content))
        return _accepted(parsed, self.module, f"{payload.symbol} quote")

    def intraday_limits(self, interval: str) -> IntradayLimits:
        """Per-request span and retention of `interval` bars at this vendor.

        Raises:
            UsageError: not one of INTERVALS.
        """
        _check_interval(interval)
        table = getattr(self.module, "INTRADAY_LIMITS", None)
        if table is not None:
            span, back = table[interval]
            return IntradayLimits(span, back)
        return _INTRADAY.get(self.name, IntradayLimits(30 * _DAY, 30 * _DAY))

    def fetch_intraday(self, symbol: str, interval: str, start: dt.datetime, end: dt.datetime,
                       now: dt.datetime) -> list[Payload]:
        """Intraday bars of `interval` in [start, end) (aware datetimes): one call per window
        the vendor allows, in time order.

        Raises:
            ConfigError: the vendor has no intraday endpoint.
            UsageError: a window the vendor cannot serve (older than it keeps bars).
            SymbolNotFoundError: the vendor has no spelling for the symbol.
        """
        self._require("intraday")
        payloads = []
        for make in self._intraday_requests(interval, start, end, now):
            request = self._request(symbol, make)
            response = self._call(request, self.module.parse_intraday, f"{symbol} intraday {interval}")
            payloads.append(self._payload(symbol, request, response))
        return payloads

    def parse_intraday(self, payloads: Sequence[Payload]) -> Parsed:
        """Pure: one symbol's intraday payloads (fetch_intraday's windows) as one Parsed:
        `intraday` (ts UTC, open..volume, session_date) as traded, `actions`, `rejected`;
        or the error the first refused payload's outcome means.

        Split-adjusted bars (Yahoo) are put back as traded with the splits of all the
        payloads together: a split reported by the newest window adjusts every older one.
        """
        parsed = [_accepted(self.module.parse_intraday(Response(p.status, p.headers, p.content)), self.module,
                            f"{p.symbol} intraday") for p in payloads]
        frames = [p.intraday for p in parsed if p.intraday is not None and len(p.intraday)]
        bars = (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame(columns=["ts", "open", "high", "low", "close", "volume", "session_date"]))
        found = [p.actions for p in parsed if p.actions is not None and len(p.actions)]
        actions = (pd.concat(found, ignore_index=True).drop_duplicates(["date", "kind"]) if found
                   else pd.DataFrame(columns=ACTION_COLUMNS))
        if getattr(self.module, "PRICES_SPLIT_ADJUSTED", False):
            bars = unadjust_splits(bars, actions, on="session_date")
        ok = any(p.outcome is Outcome.OK for p in parsed)
        return Parsed(Outcome.OK if ok else Outcome.EMPTY, intraday=bars, actions=actions,
                      rejected=tuple(r for p in parsed for r in p.rejected),
                      currency=next((p.currency for p in parsed if p.currency), None))

    # -- helpers

    def _require(self, kind: str) -> None:
        if not self.supports(kind):
            raise unsupported(self.name, kind)

    def _request(self, symbol: str, make: Callable[[str], Request]) -> Request:
        """The module's request for the vendor's spelling of `symbol`; its ValueError
        (no call made) means the vendor cannot spell the symbol."""
        try:
            return make(self.vendor_symbol(symbol))
        except ValueError as exc:
            raise SymbolNotFoundError(f"{self.name} cannot ask for {symbol} ({exc}): add it under "
                                      f"[symbol_map.{self.name}] in stockpipe.toml or use another provider") from None

    def _payload(self, symbol: str, request: Request, response: Response) -> Payload:
        return Payload(self.name, symbol, response.body, response.headers.get("content-type", ""),
                       api_calls=request.cost, source=f"{self.name} {request.endpoint}",
                       status=response.status, headers=dict(response.headers))

    def _call(self, request: Request, parse: Callable[[Response], Parsed], what: str) -> Response:
        """Send `request` and judge an error-sized answer here, in the calling thread, so a
        refused key or a spent quota stops the other workers before they make another call.

        Yahoo: a refused session gets a new cookie and crumb (shared with the concurrent
        refusals) and the request one more try; a second refusal is AUTH_FAILED.
        """
        signed, generation = self._session.sign(request) if self._session else (request, 0)
        response = self._send(signed, parse)
        verdict = _judged(response, parse)
        if self._session is not None and verdict.outcome is Outcome.AUTH_FAILED:
            self._session.refresh(generation, what)
            response = self._send(self._session.sign(request)[0], parse)
            verdict = _judged(response, parse)
            if verdict.outcome is Outcome.AUTH_FAILED:
                raise http.AuthFailedError(self.module.session_refused_message(
                    what, f"{verdict.message}, again with a new cookie and crumb"))
        error = _error(self.module, verdict.outcome, what, verdict.message)
        if getattr(error, "stops_provider", False):  # refused key, spent quota, not entitled
            raise error
        return response

    def _send(self, request: Request, parse: Callable[[Response], Parsed]) -> Response:
        """One client call (retried, rate-limited). A quota or rate-limit stop before the
        vendor answered anything comes out marked `not_asked` (module docstring)."""
        answered = False

        def classify(response: Response) -> Parsed:
            nonlocal answered
            answered = True
            return _judged(response, parse)

        try:
            return self.client.call(request, classify=classify)
        except (http.QuotaExhaustedError, http.RateLimitedError) as exc:
            if not answered:
                exc.not_asked = True  # read by steps.call_concurrently: defer, do not fail
            raise

    def _quote_request(self, spelled: str) -> Request:
        if self.name == "eodhd":  # eodhd.quote_request spells the symbol again (AAPL.US -> ValueError)
            return Request("/api/real-time/" + _quote_path(spelled, safe="-."), {"fmt": "json"},
                           dict(self.module.DEFAULT_HEADERS), "quote")
        if hasattr(self.module, "quote_request"):
            return self.module.quote_request(spelled)
        return yahoo_quote.quote_request(spelled)

    def _read_quote(self, response: Response) -> Parsed:
        if hasattr(self.module, "parse_quote"):
            return self.module.parse_quote(response)
        return yahoo_quote.parse_quote(response)

    def _intraday_requests(self, interval: str, start: dt.datetime, end: dt.datetime,
                           now: dt.datetime) -> list[Callable[[str], Request]]:
        """One request builder (vendor spelling -> Request) per window, oldest first."""
        limits, minutes = self.intraday_limits(interval), int(interval.removesuffix("m"))
        if hasattr(self.module, "intraday_windows"):  # Yahoo: instants, checked against its limits
            try:
                windows = self.module.intraday_windows(interval, start, end, now)
            except ValueError as exc:
                raise UsageError(f"{self.name} cannot serve {interval} bars from {start:%Y-%m-%d %H:%M}Z "
                                 f"to {end:%Y-%m-%d %H:%M}Z: {exc}") from None
            return [lambda s, lo=lo, hi=hi: self.module.intraday_request(s, interval, lo, hi, now=now)
                    for lo, hi in windows]
        if limits.span is None:  # Alpha Vantage: the latest bars; compact holds 100 of them
            wanted = (end - start).total_seconds() / 60 * (16 / 24) * (5 / 7) / minutes  # extended hours, weekdays
            size = "compact" if wanted <= 100 else "full"
            return [lambda s: self.module.intraday_request(s, f"{minutes}min", outputsize=size)]
        zone = getattr(self.module, "NEW_YORK", dt.timezone.utc)  # whole exchange days per request
        first, last = start.astimezone(zone).date(), (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
        days, step = (last - first).days + 1, max(1, limits.span.days)
        windows = [(first + dt.timedelta(days=i), min(first + dt.timedelta(days=i + step - 1), last))
                   for i in range(0, days, step)]
        return [lambda s, lo=lo, hi=hi: self.module.intraday_request(s, interval, lo, hi) for lo, hi in windows]

    def _daily_request(self, vendor_symbol: str, start: dt.date, end: dt.date, outputsize: str | None = None):
        if self.name == "alphavantage":  # it chooses compact/full from the pipeline's date
            today = self._clock().date() if self._clock is not None else None
            return self.module.daily_request(vendor_symbol, start, end, today=today, outputsize=outputsize)
        return self.module.daily_request(vendor_symbol, start, end)

    def parse_daily(self, payload: Payload, start: dt.date, end: dt.date) -> ParsedDaily:
        """Pure: the vendor module's outcome, as bars or as the error it means."""
        parsed = self.module.parse_daily(Response(payload.status, payload.headers, payload.content), start, end)
        _accepted(parsed, self.module, f"{payload.symbol} daily")
        bars = parsed.bars if parsed.bars is not None else pd.DataFrame(columns=BAR_COLUMNS)
        actions = parsed.actions if parsed.actions is not None else pd.DataFrame(columns=ACTION_COLUMNS)
        if getattr(self.module, "PRICES_SPLIT_ADJUSTED", False):
            bars = unadjust_splits(bars, actions)
        return ParsedDaily(payload.symbol, bars, actions, tuple(parsed.rejected), parsed.currency)

    def close(self) -> None:
        self.client.close()


def _accepted(parsed: Parsed, module: Any, what: str) -> Parsed:
    """`parsed` when its outcome is OK or EMPTY; else raise the error the outcome means."""
    if parsed.outcome not in (Outcome.OK, Outcome.EMPTY):
        raise _error(module, parsed.outcome, what, parsed.message)
    return parsed


def _error(module: Any, outcome: Outcome, what: str, message: str) -> StockpipeError | None:
    """The error `outcome` means (None for OK/EMPTY). A vendor without keys (Yahoo) words
    AUTH_FAILED itself: it refused the session, there is no key to check."""
    if outcome is Outcome.AUTH_FAILED and hasattr(module, "session_refused_message"):
        return http.AuthFailedError(module.session_refused_message(what, message))
    return http.error_for(outcome, module.NAME, what, message)


def _judged(response: Response, parse: Callable[[Response], Parsed]) -> Parsed:
    """What an error-sized answer means. Also the client's classifier: it lets the client
    retry a 200 that means "slow down" (Alpha Vantage) and stop on a 429 that means "quota
    spent" (Tiingo's monthly allocation). A body the size of data is OK here: it is not
    parsed twice, the stage's parse judges it later."""
    if response.status < 400 and len(response.body) > 4096:
        return Parsed(Outcome.OK)
    return parse(Response(response.status, response.headers, response.body))


def _check_interval(interval: str) -> None:
    if interval not in INTERVALS:
        raise UsageError(f"intraday interval {interval!r}: use one of {', '.join(INTERVALS)}")


def unadjust_splits(bars: pd.DataFrame, actions: pd.DataFrame, on: str = "date") -> pd.DataFrame:
    """Bars as traded from split-adjusted bars: prices of the sessions (column `on`) before
    a split's date x its ratio, volume / ratio."""
    splits = actions[actions["kind"] == "split"] if len(actions) else actions
    if bars.empty or splits.empty:
        return bars
    dates = bars[on].to_numpy()
    factor = np.ones(len(bars))
    for when, ratio in zip(splits["date"].to_numpy(), splits["value"].to_numpy(dtype=float)):
        factor[dates < when] *= ratio
    out = bars.copy()
    for column in ("open", "high", "low", "close"):
        out[column] = np.round(out[column].to_numpy(dtype=float) * factor, 4)
    out["volume"] = np.round(out["volume"].to_numpy(dtype=float) / factor)
    return out

