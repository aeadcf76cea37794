"""Polygon.io (now Massive, https://api.polygon.io): daily and intraday aggregates. Pure.

Builds `wire.Request`s and reads `wire.Response`s; never sees the key (the HTTP layer adds
it as the `apiKey` parameter). Wire format and outcomes: PROVIDERS.md, section polygon/.

Decisions:
    * Symbols: Polygon spells US class shares with a dot (BRK.B, BF.A), like stockpipe's
      canonical form, so `vendor_symbol` only normalizes case. Polygon stocks are US only.
    * Requests ask `adjusted=false`: stockpipe stores prices as traded and derives
      adjustments from corporate actions itself; adj_close stays NaN. `sort=asc`,
      `limit=50000` (the maximum); longer answers continue at `next_url` (`next_page`).
    * `t` is the window start in MILLISECONDS; a daily bar starts at 00:00 New York, so the
      trading date is `t` converted to New York, never the UTC date. Intraday windows are
      sent as millisecond instants covering whole New York days.
    * `resultsCount` 0 without `results` is EMPTY (Polygon answers an unknown ticker the
      same way: check reference data if it matters).
    * 403 / status NOT_AUTHORIZED -> NOT_ENTITLED; 401 / "API Key" -> AUTH_FAILED; 429 ->
      RATE_LIMITED, retry after Retry-After or else 60 s (free plan: 5 calls/min).
    * Prices are rounded to 4 dp; a zero price rejects the row ("zero_price"), an all-null
      row is "all_null"; the rest of the answer is kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pandas as pd

from .base import IntradayLimits
from .rows import PRICES  # noqa: F401 - still public as polygon.PRICES
from .rows import (candle_daily, candle_frame, candle_intraday, candle_row, epoch, flaw, json_number,
                   json_or_none, short)
from .vendor import DAY, Intraday, Vendor
from .wire import Outcome, Parsed, Request, Response

NAME = "polygon"
BASE_URL = "https://api.polygon.io"
KEY_PARAM = "apiKey"
DEFAULT_LIMITS: dict[str, int | None] = {
    "calls_per_second": None,
    "calls_per_minute": 5,  # free plan
    "calls_per_hour": None,
    "calls_per_day": None,  # no daily quota
}
QUOTA_RESETS = None  # no daily quota
RATE_LIMIT_WAIT = 60.0  # seconds, when a 429 names no Retry-After

NEW_YORK = ZoneInfo("America/New_York")
HOSTS = ("api.polygon.io", "api.massive.com")  # where next_url may lead (the key follows it)
_FIELDS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
_MAX_EPOCH_MS = 1e13  # year 2286: anything later is garbage


def vendor_symbol(symbol: str) -> str:
    """Polygon's spelling of a canonical symbol: the same (BRK.B), upper-cased."""
    return symbol.strip().upper()


def daily_request(symbol: str, start: dt.date, end: dt.date) -> Request:
    """Daily aggregates, as traded, for the New York trading days `start`..`end` inclusive."""
    _check_window(start, end)
    return _aggs_request(symbol, "1/day", start.isoformat(), end.isoformat(), "daily")


def intraday_request(symbol: str, interval: int | str, start: dt.date, end: dt.date) -> Request:
    """Intraday aggregates of `interval` (minutes: 5, "5m", "1h") for New York days start..end.

    Raises:
        ValueError: an interval that is not a whole number of minutes below a day.
    """
    _check_window(start, end)
    minutes = _minutes(interval)
    span = f"{minutes // 60}/hour" if minutes % 60 == 0 else f"{minutes}/minute"
    lo = dt.datetime.combine(start, dt.time(), NEW_YORK)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), NEW_YORK)
    return _aggs_request(symbol, span, str(int(lo.timestamp()) * 1000),
                         str(int(hi.timestamp()) * 1000 - 1), "intraday")


def next_page(response: Response) -> str | None:
    """The absolute URL of the next page (`next_url`) without its apiKey, or None.

    A `next_url` on a host other than Polygon's (or not https) gives None: the HTTP layer
    re-adds the key to what it follows, so it must never go elsewhere.
    """
    body = json_or_none(response.body)
    url = body.get("next_url") if response.status == 200 and isinstance(body, dict) else None
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname not in HOSTS:
        return None
    kept = [p for p in parts.query.split("&") if p and unquote(p.split("=")[0]).lower() != "apikey"]
    return urlunsplit(parts._replace(query="&".join(kept)))  # the rest byte for byte


def _minutes(interval: int | str) -> int:
    """Minutes of an interval given as 5, "5", "5m", "5min" or "1h"; ValueError if not one."""
    text = str(interval).strip().lower()
    digits = text.removesuffix("h").removesuffix("min").removesuffix("m")
    minutes = int(digits) * (60 if text.endswith("h") else 1) if digits.isdigit() else 0
    if not 0 < minutes < 1440:
        raise ValueError(f"polygon intraday interval {interval!r}: give whole minutes (5, '5m', '1h')")
    return minutes


def _check_window(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise ValueError(f"start {start} is after end {end}")


def _aggs_request(symbol: str, span: str, lo: str, hi: str, endpoint: str) -> Request:
    ticker = quote(vendor_symbol(symbol), safe=".")
    params = {"adjusted": "false", "sort": "asc", "limit": "50000"}
    return Request(f"/v2/aggs/ticker/{ticker}/range/{span}/{lo}/{hi}", params, endpoint=endpoint)


# ------------------------------------------------------------------------ parsing


def parse_daily(response: Response, start: dt.date, end: dt.date) -> Parsed:
    """Daily bars within [start, end] (New York trading dates) from an aggregates response."""
    return candle_daily(_aggregates(response), start, end, NEW_YORK)


def parse_intraday(response: Response, start: dt.date | None = None, end: dt.date | None = None) -> Parsed:
    """Intraday bars (ts UTC, session_date = New York date) for sessions start..end (if given)."""
    return candle_intraday(_aggregates(response), start, end, NEW_YORK)


def _aggregates(response: Response) -> tuple[pd.DataFrame, tuple[dict[str, Any], ...]] | Parsed:
    """(frame: ts UTC + open..volume, rejected rows), or the Parsed of a body without bars."""
    body = json_or_none(response.body)
    if response.status != 200 or not isinstance(body, dict) or body.get("status") not in ("OK", "DELAYED"):
        return _refusal(response, body)
    results = body.get("results")
    if results is None and body.get("resultsCount") == 0:
        return Parsed(Outcome.EMPTY, message="resultsCount 0")
    if not isinstance(results, list):
        return Parsed(Outcome.PROTOCOL_ERROR, message="aggregates without a results list")
    rows, rejected = [], []
    for raw in results:
        fields = raw if isinstance(raw, dict) else {}
        t, values = _epoch_ms(fields.get("t")), {name: json_number(fields.get(k)) for k, name in _FIELDS.items()}
        reason = "bad_row" if not isinstance(raw, dict) else "bad_date" if t is None else flaw(values)
        if reason:
            day = "" if t is None else dt.datetime.fromtimestamp(t / 1000, NEW_YORK).date().isoformat()
            rejected.append({"date": day, "reason": reason, "raw": raw})
        else:
            rows.append(candle_row(t, values))
    return candle_frame(rows, tuple(_FIELDS.values()), "ms"), tuple(rejected)


def _refusal(response: Response, body: Any) -> Parsed:
    """The outcome of an error response, from its status, `status` field and text."""
    fields = body if isinstance(body, dict) else {}
    text = str(fields.get("error") or fields.get("message") or response.text)
    lowered, status = text.lower(), fields.get("status")
    if response.status == 403 or status == "NOT_AUTHORIZED":
        outcome = Outcome.NOT_ENTITLED
    elif response.status == 401 or "api key" in lowered:
        outcome = Outcome.AUTH_FAILED
    elif response.status == 429 or "exceeded the maximum requests" in lowered:
        outcome = Outcome.RATE_LIMITED
    else:
        outcome = Outcome.PROTOCOL_ERROR
    retry = response.retry_after() if outcome is Outcome.RATE_LIMITED else None
    if outcome is Outcome.RATE_LIMITED and retry is None:
        retry = RATE_LIMIT_WAIT
    return Parsed(outcome, message=short(text) or f"HTTP {response.status}", retry_after=retry)


def _epoch_ms(value: Any) -> int | None:
    """Whole epoch milliseconds, or None when missing, not a whole number or out of range."""
    return epoch(value, _MAX_EPOCH_MS)


# The free plan keeps 2 years; 30 days of 1-minute bars with extended hours stay under the
# 50,000-bar page.
VENDOR = Vendor(NAME, BASE_URL, KEY_PARAM, DEFAULT_LIMITS, spell=vendor_symbol, daily=daily_request,
                parse_daily=parse_daily,
                intraday=Intraday(intraday_request, parse_intraday, IntradayLimits(30 * DAY, 730 * DAY), NEW_YORK))
