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

Quotes (`fetch_quote`/`parse_quote`) come from the vendor module's quote endpoint (finnhub,
alphavantage, eodhd); Yahoo has none in yahoo.py, so its quote is read here from the chart
answer's `meta` (regularMarketPrice/Time, day high/low, volume, previous close), which is
what Yahoo's own quote widgets show. Intraday bars (`fetch_intraday`/`parse_intraday`) come
in as many calls as the vendor's per-request limit needs (`IntradayLimits`); stockpipe's
interval names are 1m 5m 15m 30m 60m whatever each vendor calls them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import quote as _quote_path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from ..errors import ConfigError, SymbolNotFoundError, UsageError
from . import http
from .base import ACTION_COLUMNS, BAR_COLUMNS, ParsedDaily, Payload
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
        request = self._request(symbol, lambda spelled: self._daily_request(spelled, start, end))
        parse = lambda wire: self.module.parse_daily(wire, start, end)  # noqa: E731
        response = self.client.call(request, classify=_error_sized(parse))
        try:
            self._raise_if_terminal(response, f"{symbol} daily", parse)
        except http.NotEntitledError as exc:
            if request.endpoint != "daily:full" or "outputsize" not in str(exc):
                raise  # a premium endpoint, not a premium output size
            # Alpha Vantage: outputsize=full is premium-only on free keys; the last 100 rows
            # (compact) are not. Retry once (PROVIDERS.md premium_outputsize_full).
            request = self._request(symbol, lambda spelled: self._daily_request(spelled, start, end, "compact"))
            response = self.client.call(request, classify=_error_sized(parse))
            self._raise_if_terminal(response, f"{symbol} daily", parse)
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
        response = self.client.call(request, classify=_error_sized(self._read_quote))
        self._raise_if_terminal(response, f"{symbol} quote", self._read_quote)
        return self._payload(symbol, request, response)

    def parse_quote(self, payload: Payload) -> Parsed:
        """Pure: the quote (Parsed.quotes, one row or none), or the error its outcome means."""
        parsed = self._read_quote(Response(payload.status, payload.headers, payload.content))
        return _accepted(parsed, self.name, f"{payload.symbol} quote")

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
            response = self.client.call(request, classify=_error_sized(self.module.parse_intraday))
            self._raise_if_terminal(response, f"{symbol} intraday {interval}", self.module.parse_intraday)
            payloads.append(self._payload(symbol, request, response))
        return payloads

    def parse_intraday(self, payload: Payload) -> Parsed:
        """Pure: Parsed.intraday (ts UTC, open..volume, session_date), or the error its outcome means."""
        parsed = self.module.parse_intraday(Response(payload.status, payload.headers, payload.content))
        return _accepted(parsed, self.name, f"{payload.symbol} intraday")

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

    def _raise_if_terminal(self, response, what: str, parse: Callable[[Response], Parsed]) -> None:
        """Judge error-sized answers here, in the calling thread, so a refused key or a spent
        quota stops the other workers before they make another call."""
        if response.status < 400 and len(response.body) > 4096:
            return  # a body this size is data; the parse judges it later
        parsed = parse(Response(response.status, response.headers, response.body))
        error = http.error_for(parsed.outcome, self.name, what, parsed.message)
        if getattr(error, "stops_provider", False):  # refused key, spent quota, not entitled
            raise error

    def _quote_request(self, spelled: str) -> Request:
        if self.name == "eodhd":  # eodhd.quote_request spells the symbol again (AAPL.US -> ValueError)
            return Request("/api/real-time/" + _quote_path(spelled, safe="-."), {"fmt": "json"},
                           dict(self.module.DEFAULT_HEADERS), "quote")
        if hasattr(self.module, "quote_request"):
            return self.module.quote_request(spelled)
        return yahoo_quote_request(spelled)

    def _read_quote(self, response: Response) -> Parsed:
        if hasattr(self.module, "parse_quote"):
            return self.module.parse_quote(response)
        return parse_yahoo_quote(self.module, response)

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
        _accepted(parsed, self.name, f"{payload.symbol} daily")
        bars = parsed.bars if parsed.bars is not None else pd.DataFrame(columns=BAR_COLUMNS)
        actions = parsed.actions if parsed.actions is not None else pd.DataFrame(columns=ACTION_COLUMNS)
        if getattr(self.module, "PRICES_SPLIT_ADJUSTED", False):
            bars = unadjust_splits(bars, actions)
        return ParsedDaily(payload.symbol, bars, actions, tuple(parsed.rejected), parsed.currency)

    def close(self) -> None:
        self.client.close()


def _accepted(parsed: Parsed, provider: str, what: str) -> Parsed:
    """`parsed` when its outcome is OK or EMPTY; else raise the error the outcome means."""
    if parsed.outcome not in (Outcome.OK, Outcome.EMPTY):
        raise http.error_for(parsed.outcome, provider, what, parsed.message)
    return parsed


def _check_interval(interval: str) -> None:
    if interval not in INTERVALS:
        raise UsageError(f"intraday interval {interval!r}: use one of {', '.join(INTERVALS)}")


# ------------------------------------------------------------------ Yahoo's quote


def yahoo_quote_request(spelled: str) -> Request:
    """Today's chart of one symbol: its `meta` carries the quote."""
    from . import yahoo

    params = {"range": "1d", "interval": "1d", "includePrePost": "false"}
    return Request("/v8/finance/chart/" + _quote_path(spelled, safe="-.="), params, dict(yahoo.DEFAULT_HEADERS),
                   endpoint="quote")


def parse_yahoo_quote(module: Any, response: Response) -> Parsed:
    """One `quotes` row from a chart answer's meta, or the outcome the answer means.

    price = regularMarketPrice at regularMarketTime (UTC); high/low/volume = the session's
    regularMarketDayHigh/Low/Volume; prev_close = previousClose, else chartPreviousClose
    (equal for range=1d); open = the session bar's open when the chart holds it; change
    and change_pct (percent) computed. No price or time: EMPTY with a reject, never a 0.
    """
    import pandas as pd

    envelope = module.parse_intraday(response)  # the chart's own error reading (404, 401, 429, ...)
    if envelope.outcome not in (Outcome.OK, Outcome.EMPTY):
        return envelope
    try:
        result = json.loads(response.body)["chart"]["result"][0]
        meta = result["meta"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Parsed(Outcome.PROTOCOL_ERROR, message="chart answer without meta")
    price, stamp = _positive(meta.get("regularMarketPrice")), _positive(meta.get("regularMarketTime"))
    if price is None or stamp is None:
        shown = {k: meta.get(k) for k in ("symbol", "regularMarketPrice", "regularMarketTime")}
        reason = "missing_value:price" if price is None else "missing_value:ts"
        return Parsed(Outcome.EMPTY, rejected=({"date": str(meta.get("regularMarketTime")), "reason": reason,
                                                "raw": shown},), message="no quote in the chart meta")
    digits = min(max(int(_positive(meta.get("priceHint")) or 4), 2), 8)
    prev = _positive(meta.get("previousClose")) or _positive(meta.get("chartPreviousClose"))
    ts = dt.datetime.fromtimestamp(stamp, dt.timezone.utc)
    row = {"ts": ts, "price": round(price, digits), "open": _session_open(result, meta, ts),
           "high": _positive(meta.get("regularMarketDayHigh")), "low": _positive(meta.get("regularMarketDayLow")),
           "prev_close": prev, "change": price - prev if prev else None,
           "change_pct": (price - prev) / prev * 100 if prev else None, "volume": meta.get("regularMarketVolume")}
    for name in ("open", "high", "low", "prev_close", "change"):
        row[name] = math.nan if row[name] is None else round(row[name], digits)
    row["change_pct"] = math.nan if row["change_pct"] is None else round(row["change_pct"], 4)
    row["volume"] = float(row["volume"]) if _positive(row["volume"]) is not None or row["volume"] == 0 else math.nan
    frame = pd.DataFrame([row]).astype({"ts": "datetime64[us, UTC]", **{k: "float64" for k in row if k != "ts"}})
    return Parsed(Outcome.OK, quotes=frame, currency=meta.get("currency"))


def _positive(value: Any) -> float | None:
    """A finite number above zero, else None (Yahoo's 0 and null both mean "unknown")."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return float(value) if ok else None


def _session_open(result: dict, meta: dict, ts: dt.datetime) -> float | None:
    """The open of the chart's bar of the quote's session (the exchange's date), if any."""
    try:
        zone = ZoneInfo(meta["exchangeTimezoneName"])
        stamps = result["timestamp"]
        opens = result["indicators"]["quote"][0]["open"]
        day = ts.astimezone(zone).date()
        found = [o for t, o in zip(stamps, opens) if dt.datetime.fromtimestamp(t, zone).date() == day]
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, OSError, ZoneInfoNotFoundError):
        return None
    return _positive(found[-1]) if found else None


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


def _error_sized(parse: Callable[[Response], Parsed]) -> Callable[[Response], Outcome | Parsed]:
    """The client's classifier: lets it retry a 200 that means "slow down" (Alpha Vantage)
    and stop on a 429 that means "quota spent" (Tiingo's monthly allocation). Bodies the
    size of data are not parsed twice: parse_daily judges them later."""
    def classify(response: Response) -> Outcome | Parsed:
        if response.status < 400 and len(response.body) > 4096:
            return Outcome.OK
        return parse(response)
    return classify
