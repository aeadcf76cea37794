"""Yahoo Finance chart API (v8): the requests to send and what the answers mean. Pure.

`GET /v8/finance/chart/{SYMBOL}?period1=..&period2=..&interval=1d&events=div,splits`: daily
and intraday bars with dividends and splits. No key, but a browser-like User-Agent is
needed or Yahoo answers 429 at once. See PROVIDERS.md (yahoo/).

Decisions:
    * Trading date = the timestamp in meta.exchangeTimezoneName (else the fixed gmtoffset),
      never UTC: 2024-06-09T15:00Z is Tokyo's 2024-06-10 session.
    * Prices are float32 widened to doubles (181.7100067138672): rounded to priceHint
      decimals, never fewer than 2 (4 without a hint); adj_close to at least 4 (it is
      computed, not traded); dividends to 6. Currency as sent: "GBp" stays pence.
    * OHLC, volume and dividends are split-adjusted for every split up to the day of the
      answer, daily and intraday bars alike (yfinance#2076: "Yahoo auto-apply splits";
      pandas-datareader#651: AAPL's $3.29 dividend of 2014-05-08 reported as $0.47 after
      the 7:1 split), but an answer reports only the splits inside its own range. So a daily
      request reaches today (Vendor.daily_request, `adjusted=basis.SPLITS`), the parse
      returns every split and dividend the answer reports from `start` on (those after the
      window included) and the answer's last day as `Parsed.basis`, and basis.as_traded
      undoes every split after each bar (bars and dividends); parsing keeps them as sent.
      Intraday: the newest window reaches now when the interval's span allows (5m..60m
      always; 1m when within 7 days), so its splits adjust the older windows' bars too.
    * Rows: all null -> rejected "all_null", never zeros; a missing, non-numeric or zero
      open/high/low/close/volume -> missing_value:/not_a_number:/zero_price:<column>;
      a missing adj_close leaves NaN.
    * chart.error is read whatever the status: "Not Found" is SYMBOL_NOT_FOUND (EMPTY when
      about the date range); 422, "Unprocessable Entity" or a range text is NOT_ENTITLED,
      also with HTTP 200. A 401 "Invalid Crumb"/"Invalid Cookie" (or "Unauthorized") is
      AUTH_FAILED, a refused session: providers/session.py fetches a cookie (COOKIE_URL)
      and a crumb (/v1/test/getcrumb) once and the request is retried once with both; a
      second refusal stops Yahoo for the run with `session_refused_message` (exit 4, as
      any AUTH_FAILED). The crumb is a session credential: redacted like a key.
    * Limits: none published. 2 calls/s and 2,000/hour stay below the few thousand calls an
      hour that users report before 429s and IP blocks.
    * Intraday retention: 1m kept 30 days, at most 8 days per request (older answers said 7,
      so windows are cut at 7); 5m/15m/30m kept 60 days; 60m kept 730 days (Yahoo's 422:
      "must be within the last 730 days").

Reading a chart answer is yahoo_chart.py's; the quote, read from its `meta`, yahoo_quote.py's.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Callable
from urllib.parse import quote

from ..errors import AuthFailedError, StockpipeError, UsageError
from . import yahoo_chart, yahoo_quote
from .base import IntradayLimits
from .session import CrumbSession
from .basis import SPLITS
from .vendor import Intraday, Quotes, Session, Vendor
from .wire import Outcome, Parsed, Request, Response

if TYPE_CHECKING:
    from .http.client import VendorClient

NAME = "yahoo"
BASE_URL = "https://query1.finance.yahoo.com"
KEY_PARAM = None
DEFAULT_HEADERS = {
    "User-Agent": ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                   "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
    "Accept": "application/json,text/plain,*/*",
}
DEFAULT_LIMITS = {"calls_per_second": 2, "calls_per_minute": None, "calls_per_hour": 2000,
                  "calls_per_day": None}
QUOTA_RESETS = None  # no published quota
COOKIE_URL = "https://fc.yahoo.com/"  # answers 404 with the A3 cookie (Domain=.yahoo.com)
CRUMB_PATH = "/v1/test/getcrumb"

# Yahoo's exchange suffixes (help.yahoo.com SLN2310). Any other dotted tail is a share
# class: BRK.B -> BRK-B, RCI.B.TO -> RCI-B.TO.
EXCHANGE_SUFFIXES = frozenset(
    "L IL DE F SG DU HM MU BE HA PA AS BR LS MI MC SW VI IR ST OL CO HE IC WA PR BD AT IS "
    "TO V NE CN MX SA SN BA T HK SS SZ KS KQ TW TWO BO NS SI KL BK JK AX NZ JO TA SR".split())
# interval -> (longest window one request may span, how far back Yahoo keeps bars)
_DAYS = dt.timedelta(days=1)
INTRADAY_LIMITS = {"1m": (8 * _DAYS, 30 * _DAYS), "5m": (60 * _DAYS, 60 * _DAYS),
                   "15m": (60 * _DAYS, 60 * _DAYS), "30m": (60 * _DAYS, 60 * _DAYS),
                   "60m": (730 * _DAYS, 730 * _DAYS)}
_WINDOW_1M = 7 * _DAYS


def vendor_symbol(symbol: str) -> str:
    """Canonical symbol to Yahoo's: class dots become dashes, exchange suffixes stay."""
    symbol = symbol.strip().upper()
    head, dot, tail = symbol.rpartition(".")
    if dot and head and tail in EXCHANGE_SUFFIXES:
        return f"{head.replace('.', '-')}.{tail}"
    return symbol.replace(".", "-")


def daily_request(symbol: str, start: dt.date, end: dt.date) -> Request:
    """Daily bars, dividends and splits for the exchange dates start..end (VENDOR asks with
    `end` at least today: the splits up to now are needed to undo Yahoo's adjustment).

    period1/period2 are the UTC midnights a day before `start` and two days after `end`,
    so every exchange's local dates are inside; parse_daily keeps the bars of start..end.

    Raises:
        ValueError: end is before start.
    """
    if end < start:
        raise ValueError(f"yahoo daily window ends ({end}) before it starts ({start})")
    params = {"period1": _epoch(start - _DAYS), "period2": _epoch(end + 2 * _DAYS),
              "interval": "1d", "events": "div,splits", "includePrePost": "false"}
    return Request(_chart_path(symbol), params, dict(DEFAULT_HEADERS), endpoint="daily")


def quote_request(spelled: str) -> Request:
    """Today's chart of one symbol (Yahoo's spelling): its `meta` carries the quote
    (yahoo_quote.py: the chart needs no session, Yahoo's own quote endpoints do)."""
    params = {"range": "1d", "interval": "1d", "includePrePost": "false"}
    return Request("/v8/finance/chart/" + quote(spelled, safe="-.="), params, dict(DEFAULT_HEADERS),
                   endpoint="quote")


def intraday_request(symbol: str, interval: str, start: dt.date | dt.datetime,
                     end: dt.date | dt.datetime, *, now: dt.datetime | None = None) -> Request:
    """Intraday bars in [start, end): aware datetimes, or dates (UTC midnight; an end date
    means the midnight after it). `now` (default: the system clock) checks retention.

    Raises:
        ValueError: unknown interval, naive datetime, or a window Yahoo cannot serve.
    """
    lo, hi = _instant(start), _instant(end, end=True)
    _check_window(interval, lo, hi, _instant(now or dt.datetime.now(dt.timezone.utc)))
    params = {"period1": _epoch(lo), "period2": _epoch(hi), "interval": interval,
              "events": "div,splits", "includePrePost": "false"}
    return Request(_chart_path(symbol), params, dict(DEFAULT_HEADERS), endpoint=f"intraday_{interval}")


def intraday_windows(interval: str, start: dt.date | dt.datetime, end: dt.date | dt.datetime,
                     now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Split [start, min(end, now)) into consecutive UTC windows Yahoo accepts.

    Raises:
        ValueError: unknown interval, naive datetime, empty window, or a start older than
            Yahoo keeps that interval.
    """
    now = _instant(now)
    lo, hi = _instant(start), min(_instant(end, end=True), now)
    step = _WINDOW_1M if interval == "1m" else _limits(interval)[0]
    windows = [(lo + i * step, min(lo + (i + 1) * step, hi)) for i in range(math.ceil((hi - lo) / step))]
    if not windows:
        raise ValueError(f"yahoo {interval} window is empty once cut at now ({now:%Y-%m-%d %H:%M}Z)")
    for window in windows:
        _check_window(interval, *window, now)
    return windows


def parse_daily(response: Response, start: dt.date, end: dt.date) -> Parsed:
    """Bars (exchange dates start..end) as sent, the dividends and splits the answer reports
    from `start` on, and its last day (`basis`) from a chart answer."""
    return yahoo_chart.read(response, lambda *read: yahoo_chart.daily(*read, start, end))


def parse_intraday(response: Response) -> Parsed:
    """Intraday bars (ts in UTC, session_date the exchange's local date), split-adjusted as
    sent, and the answer's dividends and splits as actions (dated by the exchange)."""
    return yahoo_chart.read(response, yahoo_chart.intraday)


# ------------------------------------------------------------ the session (cookie + crumb)


def cookie_request(base_url: str) -> Request:
    """The call that sets Yahoo's session cookie: fc.yahoo.com when the base URL is Yahoo's
    own, else "/" on the configured base URL (a mirror, a proxy or a test server serves both)."""
    own = base_url.rstrip("/") in (BASE_URL, BASE_URL.replace("query1", "query2"))
    return Request(COOKIE_URL if own else "/", {}, dict(DEFAULT_HEADERS), endpoint="session cookie")


def crumb_request() -> Request:
    """The call that hands out the crumb for the cookie just set (plain text)."""
    return Request(CRUMB_PATH, {}, {**DEFAULT_HEADERS, "Accept": "text/plain,*/*"}, endpoint="session crumb")


def parse_crumb(response: Response) -> str | None:
    """The crumb from a getcrumb answer; None when the answer is not one (a refusal, an
    HTML page, JSON, an empty body)."""
    text = response.text.strip()
    if response.status != 200 or not 1 <= len(text) <= 64 or text[0] in "<{[" or any(c.isspace() for c in text):
        return None
    return text


def with_crumb(request: Request, crumb: str) -> Request:
    """`request` carrying the session's crumb (the cookie travels in the client's jar)."""
    return replace(request, params={**request.params, "crumb": crumb})


def session_refused_message(what: str, said: str) -> str:
    """The AUTH_FAILED message. Yahoo has no key: what it refuses is the session, and a
    refusal that a fresh cookie and crumb do not cure means it is blocking this client."""
    return (f"yahoo refused the session (cookie and crumb) for {what}: {said}; Yahoo is blocking this "
            "client (its IP address or its traffic): try again later, or use another provider "
            "(--provider eodhd, tiingo, ...)")


# -------------------------------------------------------------------------- helpers


def _instant(value: dt.date | dt.datetime, end: bool = False) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value}: pass an aware (UTC) time")
        return value.astimezone(dt.timezone.utc)
    return dt.datetime.combine(value + _DAYS if end else value, dt.time(), dt.timezone.utc)


def _epoch(value: dt.date | dt.datetime) -> str:
    return f"{_instant(value).timestamp():.0f}"


def _limits(interval: str) -> tuple[dt.timedelta, dt.timedelta]:
    if interval not in INTRADAY_LIMITS:
        raise ValueError(f"yahoo intraday interval {interval!r}: use one of {', '.join(INTRADAY_LIMITS)}")
    return INTRADAY_LIMITS[interval]


def _check_window(interval: str, lo: dt.datetime, hi: dt.datetime, now: dt.datetime) -> None:
    span, back = _limits(interval)
    if hi <= lo:
        raise ValueError(f"yahoo {interval} window is empty ({lo:%Y-%m-%d %H:%M}Z to {hi:%Y-%m-%d %H:%M}Z)")
    if hi - lo > span:
        raise ValueError(f"yahoo serves at most {span.days} days of {interval} bars per request: "
                         "split the window with intraday_windows")
    if lo < now - back:
        raise ValueError(f"yahoo keeps {interval} bars for {back.days} days: {lo:%Y-%m-%d} is too far back")


def _chart_path(symbol: str) -> str:
    return "/v8/finance/chart/" + quote(vendor_symbol(symbol), safe="-.=")


# --------------------------------------------------------------------------- VENDOR


class _Yahoo(Vendor):
    """Yahoo's quirks: a cookie-and-crumb session, a refused session rather than a key, and
    intraday windows cut to what each interval allows (its split-adjusted bars are the
    `adjusted=SPLITS` declaration's)."""

    def session(self, client: "VendorClient", base_url: str) -> Session:
        return CrumbSession(self, client, base_url)

    def error(self, outcome: Outcome, what: str, message: str) -> StockpipeError | None:
        if outcome is Outcome.AUTH_FAILED:  # no key to check: Yahoo refused the session
            return AuthFailedError(session_refused_message(what, message))
        return super().error(outcome, what, message)

    def intraday_limits(self, interval: str) -> IntradayLimits:
        return IntradayLimits(*_limits(interval))

    def intraday_requests(self, interval: str, start: dt.datetime, end: dt.datetime,
                          now: dt.datetime, zone: dt.tzinfo | None = None) -> list[Callable[[str], Request]]:
        """Instant windows checked against Yahoo's limits (intraday_windows); the newest one
        reaches `now` when the interval's span allows it, so its answer reports every split
        since (they adjust the older bars too: basis.py)."""
        try:
            windows = intraday_windows(interval, start, end, now)
        except ValueError as exc:
            raise UsageError(f"{NAME} cannot serve {interval} bars from {start:%Y-%m-%d %H:%M}Z "
                             f"to {end:%Y-%m-%d %H:%M}Z: {exc}") from None
        lo, hi = windows[-1]
        if hi < now and now - lo <= (_WINDOW_1M if interval == "1m" else _limits(interval)[0]):
            windows[-1] = (lo, now)
        return [lambda s, lo=lo, hi=hi: intraday_request(s, interval, lo, hi, now=now) for lo, hi in windows]

    # the session's handshake (session.Handshake)
    cookie_request = staticmethod(cookie_request)
    crumb_request = staticmethod(crumb_request)
    parse_crumb = staticmethod(parse_crumb)
    with_crumb = staticmethod(with_crumb)
    refused = staticmethod(session_refused_message)


VENDOR = _Yahoo(NAME, BASE_URL, KEY_PARAM, DEFAULT_LIMITS, spell=vendor_symbol, daily=daily_request,
                parse_daily=parse_daily, headers=DEFAULT_HEADERS, quotes=Quotes(quote_request, yahoo_quote.parse_quote),
                intraday=Intraday(intraday_request, parse_intraday), adjusted=SPLITS)
