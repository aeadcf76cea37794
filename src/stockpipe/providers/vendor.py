"""What an HTTP vendor module declares, and the hooks its quirks override.

Every vendor module (alphavantage.py, eodhd.py, ...) ends with `VENDOR`, a `Vendor` built
from its own pure functions: the name, base URL, key parameter and default limits, how it
spells a symbol, its daily request and parse, and, when it serves them, its quotes
(`Quotes`) and intraday bars (`Intraday`). `http_provider.HttpProvider` joins a VENDOR to
a `VendorClient` and asks it only through the methods below.

A vendor whose behaviour differs subclasses `Vendor` in its own module and overrides the
hook: Alpha Vantage's `daily_request` (the size from today's date), `daily_retry` (compact
after a premium-only full) and `intraday_requests` (its latest bars); Yahoo's `session`
(the cookie and crumb), `error` (a refused session, not a key) and intraday windows. What
is only data stays a declaration (EODHD: its reset zone, headers, and a quote request on
the symbol as already spelled; Yahoo, Stooq, Finnhub: what their daily prices are
adjusted for, `adjusted`, which `as_traded` undoes or refuses by basis.py's rules;
Finnhub: `zoned`, its bars dated in the symbol's exchange zone). The defaults are what
most vendors do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from ..errors import StockpipeError
from . import basis
from .base import IntradayLimits
from .wire import Parsed, Request, Response, error_for

if TYPE_CHECKING:
    from .http.client import VendorClient

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Quotes:
    """A vendor's quote endpoint: request(vendor symbol) and parse(response)."""

    request: Callable[[str], Request]
    parse: Callable[[Response], Parsed]


@dataclass(frozen=True)
class Intraday:
    """A vendor's intraday endpoint, asked in windows of whole exchange days (`zone`) no
    longer than `limits.span`: request(vendor symbol, interval, first day, last day)."""

    request: Callable[..., Request]
    parse: Callable[[Response], Parsed]
    limits: IntradayLimits = IntradayLimits(30 * DAY, 30 * DAY)
    zone: dt.tzinfo = dt.timezone.utc


def quota_from_headers(response: Response) -> str | None:
    """The rate-limit headers' word on what is left (X-RateLimit-Remaining / -Limit), if sent."""
    left, limit = response.header("x-ratelimit-remaining"), response.header("x-ratelimit-limit")
    if not left:
        return None
    return f"{left} of {limit} calls left in the vendor's window" if limit else \
        f"{left} calls left in the vendor's window"


@dataclass(frozen=True)
class Probe:
    """One cheap call that shows whether a vendor answers and takes the key (`validate
    --probe`): the request, how to judge its answer, and what it says of the quota left."""

    request: Request
    parse: Callable[[Response], Parsed]
    quota: Callable[[Response], str | None] = quota_from_headers


class Session(Protocol):
    """How a vendor's calls are sent: as they are, or signed with a session (Yahoo)."""

    def call(self, request: Request, send: Callable[[Request], tuple[Response, Parsed]],
             what: str) -> tuple[Response, Parsed]:
        """`send(request)` (signed, and again after a refused session when the vendor has one)."""


class _Direct:
    """No session: every request goes as it is."""

    def call(self, request: Request, send: Callable[[Request], tuple[Response, Parsed]],
             what: str) -> tuple[Response, Parsed]:
        return send(request)


class Vendor:
    """One vendor's declarations and hooks (pure: no I/O outside `session`)."""

    def __init__(self, name: str, base_url: str, key_param: str | None, limits: Mapping[str, int | None], *,
                 spell: Callable[[str], str], daily: Callable[[str, dt.date, dt.date], Request],
                 parse_daily: Callable[[Response, dt.date, dt.date], Parsed],
                 headers: Mapping[str, str] | None = None, reset_zone: str = "UTC",
                 quotes: Quotes | None = None, intraday: Intraday | None = None, zoned: bool = False,
                 adjusted: str | None = None, probe: Callable[[str, dt.date], Probe] | None = None) -> None:
        """Args:
            reset_zone: the IANA zone whose midnight starts the vendor's quota day.
            adjusted: what the vendor's daily prices are adjusted for (basis.SPLITS,
                basis.UNREPORTED; None: as traded). An adjusting vendor's daily requests
                reach today, so its answer speaks for every action up to now.
            probe: (vendor spelling of a symbol, today) -> the vendor's own cheap call
                (default: a quote, else a week of daily bars).
            zoned: the vendor's daily and intraday parses take `zone=` (the symbol's exchange
                zone), because its answers are instants whose session date depends on it.
        """
        self.name, self.base_url, self.key_param, self.limits = name, base_url, key_param, dict(limits)
        self.headers, self.reset_zone, self.zoned, self.adjusted = dict(headers or {}), reset_zone, zoned, adjusted
        self.quotes, self.intraday = quotes, intraday
        self._spell, self._daily, self._parse_daily, self._probe = spell, daily, parse_daily, probe
        self.kinds = frozenset({"daily", *(["quotes"] if quotes else []), *(["intraday"] if intraday else [])})

    # -- daily bars

    def vendor_symbol(self, symbol: str) -> str:
        """The vendor's spelling of a canonical symbol (ValueError: it has none)."""
        return self._spell(symbol)

    def daily_request(self, spelled: str, start: dt.date, end: dt.date, today: dt.date | None) -> Request:
        """Daily bars start..end for the vendor's spelling; `today` is the pipeline clock's date.
        An adjusting vendor is asked up to `today` (parse_daily still keeps start..end)."""
        return self._daily(spelled, start, max(end, today) if self.adjusted and today else end)

    def daily_retry(self, request: Request, error: StockpipeError) -> Request | None:
        """A request to try once more after `error` answered `request`, or None."""
        return None

    def parse_daily(self, response: Response, start: dt.date, end: dt.date, zone: dt.tzinfo | None = None) -> Parsed:
        """Bars of the sessions start..end; `zone` is the symbol's exchange zone (used when `zoned`)."""
        return self._parse_daily(response, start, end, **self._zone(zone))

    def as_traded(self, parsed: Parsed, on: str = "date") -> Parsed:
        """An answer's bars as traded (`on`: "date" for daily bars, "session_date" for
        intraday), by the vendor's `adjusted` rule (basis.py)."""
        return basis.as_traded(parsed, self.adjusted, on)

    def probe(self, spelled: str, today: dt.date) -> Probe:
        """The cheap call of `validate --probe` for one symbol (the vendor's spelling)."""
        if self._probe is not None:
            return self._probe(spelled, today)
        if self.quotes is not None:
            return Probe(self.quotes.request(spelled), self.quotes.parse)
        start = today - 7 * DAY
        return Probe(self.daily_request(spelled, start, today, today), lambda r: self.parse_daily(r, start, today))

    # -- quotes and intraday bars (asked only when `kinds` holds them)

    def quote_request(self, spelled: str) -> Request:
        return self._offered(self.quotes, "quotes").request(spelled)

    def parse_quote(self, response: Response) -> Parsed:
        return self._offered(self.quotes, "quotes").parse(response)

    def intraday_limits(self, interval: str) -> IntradayLimits:
        """Span and retention of `interval` bars (an interval stockpipe names, e.g. "5m")."""
        return self._offered(self.intraday, "intraday").limits

    def intraday_requests(self, interval: str, start: dt.datetime, end: dt.datetime,
                          now: dt.datetime, zone: dt.tzinfo | None = None) -> list[Callable[[str], Request]]:
        """One request builder (vendor spelling -> Request) per window of [start, end), oldest
        first: whole days of the symbol's exchange (`zone`, else the vendor's), at most `span`
        days each."""
        intraday = self._offered(self.intraday, "intraday")
        zone = zone if self.zoned and zone is not None else intraday.zone
        first = start.astimezone(zone).date()
        last = (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
        days, step = (last - first).days + 1, max(1, self.intraday_limits(interval).span.days)
        windows = [(first + dt.timedelta(days=i), min(first + dt.timedelta(days=i + step - 1), last))
                   for i in range(0, days, step)]
        where = self._zone(zone)
        return [lambda s, lo=lo, hi=hi: intraday.request(s, interval, lo, hi, **where) for lo, hi in windows]

    def parse_intraday(self, response: Response, zone: dt.tzinfo | None = None) -> Parsed:
        """Intraday bars; session dates in `zone`, the symbol's exchange zone (when `zoned`)."""
        return self._offered(self.intraday, "intraday").parse(response, **self._zone(zone))

    # -- the connection

    def error(self, outcome: Any, what: str, message: str) -> StockpipeError | None:
        """The error a refused answer's outcome means (None for OK and EMPTY)."""
        return error_for(outcome, self.name, what, message)

    def session(self, client: "VendorClient", base_url: str) -> Session:
        """How this vendor's requests are sent through `client`: as they are, by default."""
        return _DIRECT

    def _zone(self, zone: dt.tzinfo | None) -> dict[str, dt.tzinfo]:
        return {"zone": zone} if self.zoned and zone is not None else {}

    def _offered(self, endpoint: Any, kind: str) -> Any:
        if endpoint is None:
            raise ValueError(f"{self.name} has no {kind} endpoint (ask supports() first)")
        return endpoint


_DIRECT = _Direct()

