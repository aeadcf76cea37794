"""Real vendors over HTTP behind the `Provider` interface.

One `HttpProvider` joins a vendor module's `VENDOR` (vendor.py: pure requests, parsing and
hooks) to a `VendorClient` (http/client.py: keep-alive, rate limits, quota ledger, retries,
redaction). The raw response (status, headers, body) travels in the `Payload`, so the
pipeline archives it before the vendor parses it. An outcome other than OK/EMPTY becomes
the error the vendor names for it (`Vendor.error`); an error that is a `StopsProvider`
tells the fetch loop to make no further calls to this provider in the run.

Decisions:
    * A request stopped before the vendor answered it (the quota ledger's day is spent, or
      the client's own rate limit would wait past its cap) is not the symbol's failure: it
      comes out as a `NotAsked` error (QuotaNotAskedError, RateLimitNotAskedError), and the
      fetch loop records the symbol as skipped (deferred to the next run), as it does for
      symbols after the stop.
    * The daily quota is counted by the ledger alone (the quota day, midnight to midnight
      in the vendor's reset zone, across runs): the client's limiter gets no sliding 24 h
      window, which would refuse calls after the reset and report a spent quota as a rate
      limit. The ledger is the caller's (`ledger=`, on the pipeline's engine); without one
      (a library caller, `validate`) the limiter keeps the day for this process only.
    * Quotes and intraday bars come from the vendor's own endpoints (Vendor.quotes,
      Vendor.intraday); intraday bars come in as many calls as the vendor's per-request
      limit needs; stockpipe's interval names (base.INTERVALS) are the same for every
      vendor, whatever each calls them.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Callable, Mapping, Sequence

from .. import calendars
from ..errors import (ConfigError, NotEntitledError, QuotaExhaustedError, RateLimitedError, StopsProvider,
                      SymbolNotFoundError, UsageError)
from .base import (ACTION_COLUMNS, BAR_COLUMNS, INTERVALS, IntradayLimits, LedgerOpener, ParsedDaily, Payload,
                   ProviderBase)
from .http.client import VendorClient
from .vendor import Vendor
from .wire import Outcome, Parsed, Request, Response

LIMIT_KEYS = ("calls_per_second", "calls_per_minute", "calls_per_hour", "calls_per_day")


class HttpProvider(ProviderBase):
    """A market-data vendor reached over HTTP."""

    def __init__(self, vendor: Vendor, client: VendorClient, symbol_map: dict[str, str] | None = None,
                 clock: Callable[[], dt.datetime] | None = None, base_url: str | None = None,
                 exchanges: Mapping[str, str] | None = None) -> None:
        """Args:
            exchanges: the config's [exchanges] table: a symbol's exchange, whose time zone
                dates a zoned vendor's bars (Vendor.zoned).
        """
        self.vendor, self.client = vendor, client
        self._exchange_of = calendars.exchange_resolver(exchanges)
        self.name, self.kinds = vendor.name, vendor.kinds
        self.needs_key = vendor.key_param is not None
        self.concurrency = client.concurrency
        self._symbol_map = dict(symbol_map or {})
        self._clock = clock
        self._session = vendor.session(client, base_url or vendor.base_url)

    @classmethod
    def from_settings(cls, vendor: Vendor, settings: Any, clock: Callable[[], dt.datetime],
                      ledger: LedgerOpener | None = None) -> "HttpProvider":
        """Build the provider of `vendor` from settings (base URL, limits, key, symbol map).

        Args:
            ledger: opens the quota ledger of a vendor with a daily quota.

        Raises:
            ConfigError: the provider needs a key and none is set.
        """
        name = vendor.name
        options = dict(settings.provider_options.get(name, {}))
        key = settings.api_key(name)
        if vendor.key_param is not None and not key:
            env = f"STOCKPIPE_{name.upper()}_API_KEY"
            raise ConfigError(f"{name} needs an API key: set {env} or {env}_FILE (see the README)")
        limits = {k: options.get(k, vendor.limits.get(k)) for k in LIMIT_KEYS}
        quota = None
        if limits["calls_per_day"] and ledger is not None:  # a daily quota is counted in the warehouse
            quota = ledger(name, limits["calls_per_day"], vendor.reset_zone)
            limits["calls_per_day"] = None  # the ledger alone counts the quota day (module docstring)
        base_url = options.get("base_url") or vendor.base_url
        client = VendorClient(name, base_url, key=key, key_param=vendor.key_param, default_headers=vendor.headers,
                              limits=limits, ledger=quota, timeout_connect=settings.http_timeout_connect,
                              timeout_read=settings.http_timeout_read, unreachable_after=settings.unreachable_after,
                              timeout_total=2 * settings.http_timeout_read,  # a whole answer: twice the silence
                              max_body_bytes=settings.http_max_response_bytes)
        return cls(vendor, client, settings.symbol_map.get(name, {}), clock, base_url, settings.exchanges)

    def vendor_symbol(self, symbol: str) -> str:
        """The vendor's spelling: the config's [symbol_map.<provider>] first, then the rule."""
        return self._symbol_map.get(symbol) or self.vendor.vendor_symbol(symbol)

    # -- daily bars

    def fetch_daily(self, symbol: str, start: dt.date, end: dt.date) -> Payload:
        """One daily-bars call (retried and rate-limited by the client), and at most one more
        when the vendor names one after a refusal (Vendor.daily_retry).

        Raises:
            SymbolNotFoundError: the vendor has no spelling for the symbol (add a symbol map).
        """
        today = self._clock().date() if self._clock is not None else None
        request = self._request(symbol, lambda spelled: self.vendor.daily_request(spelled, start, end, today))
        parse = lambda wire: self.vendor.parse_daily(wire, start, end)  # noqa: E731
        try:
            response = self._call(request, parse, f"{symbol} daily")
        except NotEntitledError as exc:
            retry = self.vendor.daily_retry(request, exc)
            if retry is None:
                raise
            request = retry
            response = self._call(request, parse, f"{symbol} daily")
        return self._payload(symbol, request, response)

    def fetch_exchange(self, venue: str, request: Request, parse: Callable[[Response], Parsed]) -> Payload:
        """One exchange-wide request the vendor module built (EODHD's bulk day, its symbol
        list), sent as the daily ones are: rate limits, the quota ledger at the request's
        cost, retries. The payload is named after the exchange (`venue`); its answer is the
        caller's to parse (a refusal that stops the provider is raised here).

        Raises:
            StopsProvider errors: a refused key, a spent quota, a plan not entitled.
        """
        response = self._call(request, parse, f"{venue} {request.endpoint}")
        return self._payload(venue, request, response)

    def parse_daily(self, payload: Payload, start: dt.date, end: dt.date) -> ParsedDaily:
        """Pure: the vendor's outcome, as bars as traded (basis.py) or as the error it means."""
        parsed = self.vendor.parse_daily(_response(payload), start, end, self.zone(payload.symbol))
        parsed = self.vendor.as_traded(self._accepted(parsed, f"{payload.symbol} daily"))
        bars = parsed.bars if parsed.bars is not None else _empty(BAR_COLUMNS)
        actions = parsed.actions if parsed.actions is not None else _empty(ACTION_COLUMNS)
        return ParsedDaily(payload.symbol, bars, actions, tuple(parsed.rejected), parsed.currency,
                           split_basis=parsed.basis if self.vendor.adjusted else None)

    # -- quotes

    def fetch_quote(self, symbol: str) -> Payload:
        """One quote call.

        Raises:
            ConfigError: the vendor has no quotes endpoint.
            SymbolNotFoundError: the vendor has no spelling for the symbol.
        """
        self._require("quotes")
        request = self._request(symbol, self.vendor.quote_request)
        response = self._call(request, self.vendor.parse_quote, f"{symbol} quote")
        return self._payload(symbol, request, response)

    def parse_quote(self, payload: Payload) -> Parsed:
        """Pure: the quote (Parsed.quotes, one row or none), or the error its outcome means."""
        return self._accepted(self.vendor.parse_quote(_response(payload)), f"{payload.symbol} quote")

    # -- intraday bars

    def intraday_limits(self, interval: str) -> IntradayLimits:
        """Per-request span and retention of `interval` bars at this vendor.

        Raises:
            UsageError: not one of INTERVALS.
        """
        if interval not in INTERVALS:
            raise UsageError(f"intraday interval {interval!r}: use one of {', '.join(INTERVALS)}")
        return self.vendor.intraday_limits(interval)

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
        self.intraday_limits(interval)
        payloads = []
        for make in self.vendor.intraday_requests(interval, start, end, now, self.zone(symbol)):
            request = self._request(symbol, make)
            response = self._call(request, self.vendor.parse_intraday, f"{symbol} intraday {interval}")
            payloads.append(self._payload(symbol, request, response))
        return payloads

    def parse_intraday(self, payloads: Sequence[Payload]) -> Parsed:
        """Pure: one symbol's intraday payloads (fetch_intraday's windows) as one Parsed:
        `intraday` (ts UTC, open..volume, session_date) as traded, `actions`, `rejected`;
        or the error the first refused payload's outcome means.

        Split-adjusted bars (Yahoo) are put back as traded with the splits of all the
        payloads together: a split reported by the newest window adjusts every older one.
        """
        import pandas as pd

        parsed = [self._accepted(self.vendor.parse_intraday(_response(p), self.zone(p.symbol)),
                                 f"{p.symbol} intraday") for p in payloads]
        frames = [p.intraday for p in parsed if p.intraday is not None and len(p.intraday)]
        bars = (pd.concat(frames, ignore_index=True) if frames
                else _empty(("ts", "open", "high", "low", "close", "volume", "session_date")))
        found = [p.actions for p in parsed if p.actions is not None and len(p.actions)]
        actions = (pd.concat(found, ignore_index=True).drop_duplicates(["date", "kind"]) if found
                   else _empty(ACTION_COLUMNS))
        ok = any(p.outcome is Outcome.OK for p in parsed)
        combined = Parsed(Outcome.OK if ok else Outcome.EMPTY, intraday=bars, actions=actions,
                          rejected=tuple(r for p in parsed for r in p.rejected),
                          currency=next((p.currency for p in parsed if p.currency), None))
        return self.vendor.as_traded(combined, "session_date")

    def close(self) -> None:
        self.client.close()

    # -- helpers

    def zone(self, symbol: str) -> dt.tzinfo | None:
        """The time zone of the symbol's exchange, for a zoned vendor (None for the others)."""
        return _exchange_zone(self._exchange_of(symbol)) if self.vendor.zoned else None

    def _require(self, kind: str) -> None:
        if not self.supports(kind):
            raise self._unsupported(kind)

    def _request(self, symbol: str, make: Callable[[str], Request]) -> Request:
        """The vendor's request for its spelling of `symbol`; its ValueError (no call made)
        means the vendor cannot spell the symbol."""
        try:
            return make(self.vendor_symbol(symbol))
        except ValueError as exc:
            raise SymbolNotFoundError(f"{self.name} cannot ask for {symbol} ({exc}): add it under "
                                      f"[symbol_map.{self.name}] in stockpipe.toml or use another provider") from None

    def _payload(self, symbol: str, request: Request, response: Response) -> Payload:
        return Payload(self.name, symbol, response.body, response.headers.get("content-type", ""),
                       api_calls=response.calls, source=f"{self.name} {request.endpoint}",
                       status=response.status, headers=dict(response.headers))

    def _accepted(self, parsed: Parsed, what: str) -> Parsed:
        """`parsed` when its outcome is OK or EMPTY; else raise the error the outcome means."""
        error = self.vendor.error(parsed.outcome, what, parsed.message)
        if error is not None:
            raise error
        return parsed

    def _call(self, request: Request, parse: Callable[[Response], Parsed], what: str) -> Response:
        """Send `request` (through the vendor's session) and judge an error-sized answer here,
        in the calling thread, so a refused key or a spent quota stops the other workers
        before they make another call."""
        response, verdict = self._session.call(request, lambda signed: self._send(signed, parse), what)
        error = self.vendor.error(verdict.outcome, what, verdict.message)
        if isinstance(error, StopsProvider):  # refused key, spent quota, not entitled, throttled
            error.api_calls = response.calls
            raise error
        return response

    def _send(self, request: Request, parse: Callable[[Response], Parsed]) -> tuple[Response, Parsed]:
        """One client call (retried, rate-limited) and the vendor's verdict on its answer.
        A quota or rate-limit stop before the vendor answered anything is NotAsked."""
        answered = False

        def classify(response: Response) -> Parsed:
            nonlocal answered
            answered = True
            return judged(response, parse)

        try:
            response = self.client.call(request, classify=classify)
        except (QuotaExhaustedError, RateLimitedError) as exc:
            if answered:
                raise
            refused = exc.not_asked()
        else:
            return response, judged(response, parse)
        raise refused  # outside the except: nothing chained


def judged(response: Response, parse: Callable[[Response], Parsed]) -> Parsed:
    """What an error-sized answer means. Also the client's classifier: it lets the client
    retry a 200 that means "slow down" (Alpha Vantage) and stop on a 429 that means "quota
    spent" (Tiingo's monthly allocation). A body the size of data is OK here: it is not
    parsed twice, the stage's parse judges it later."""
    if response.status < 400 and len(response.body) > 4096:
        return Parsed(Outcome.OK)
    return parse(Response(response.status, response.headers, response.body))


@functools.lru_cache(maxsize=None)
def _exchange_zone(exchange: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(calendars.timezone(exchange))


def _response(payload: Payload) -> Response:
    return Response(payload.status, payload.headers, payload.content)


def _empty(columns: Sequence[str]) -> Any:
    import pandas as pd

    return pd.DataFrame(columns=list(columns))
