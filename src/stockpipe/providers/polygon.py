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
import json
import math
import re
from email.utils import parsedate_to_datetime
from typing import Any, Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pandas as pd

from .base import ACTION_COLUMNS, BAR_COLUMNS
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
PRICES = ("open", "high", "low", "close")
_FIELDS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
_MAX_EPOCH_MS = 1e13  # year 2286: anything later is garbage
_SECRET = re.compile(r"(?i)(api_?key|token)=[^&\s]+")


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
    body = _json(response.body)
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
    got = _aggregates(response)
    if isinstance(got, Parsed):
        return got
    frame, shown = _within(*got, start, end)
    bars = frame.rename(columns={"day": "date"}).assign(adj_close=float("nan"))[list(BAR_COLUMNS)]
    outcome = Outcome.OK if len(bars) or shown else Outcome.EMPTY
    return Parsed(outcome, bars=bars, actions=_no_actions(), rejected=shown)


def parse_intraday(response: Response, start: dt.date | None = None, end: dt.date | None = None) -> Parsed:
    """Intraday bars (ts UTC, session_date = New York date) for sessions start..end (if given)."""
    got = _aggregates(response)
    if isinstance(got, Parsed):
        return got
    frame, shown = _within(*got, start or dt.date.min, end or dt.date.max)
    bars = frame.rename(columns={"day": "session_date"})
    outcome = Outcome.OK if len(bars) or shown else Outcome.EMPTY
    return Parsed(outcome, intraday=bars, rejected=shown)


def _aggregates(response: Response) -> tuple[pd.DataFrame, tuple[dict[str, Any], ...]] | Parsed:
    """(frame: ts UTC + open..volume, rejected rows), or the Parsed of a body without bars."""
    body = _json(response.body)
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
        t, values = _epoch_ms(fields.get("t")), {name: _number(fields.get(k)) for k, name in _FIELDS.items()}
        reason = "bad_row" if not isinstance(raw, dict) else "bad_date" if t is None else _flaw(values)
        if reason:
            day = "" if t is None else dt.datetime.fromtimestamp(t / 1000, NEW_YORK).date().isoformat()
            rejected.append({"date": day, "reason": reason, "raw": raw})
        else:
            rows.append({"ts": t, **{n: round(v, 4) if n in PRICES else v for n, v in values.items()}})
    frame = pd.DataFrame(rows, columns=["ts", *_FIELDS.values()])
    instants = pd.to_datetime(frame["ts"].astype("int64"), unit="ms", utc=True)
    frame["ts"] = instants.astype("datetime64[us, UTC]")
    return frame.astype({c: "float64" for c in _FIELDS.values()}), tuple(rejected)


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
    retry = _retry_after(response.headers) if outcome is Outcome.RATE_LIMITED else None
    if outcome is Outcome.RATE_LIMITED and retry is None:
        retry = RATE_LIMIT_WAIT
    return Parsed(outcome, message=_short(text) or f"HTTP {response.status}", retry_after=retry)


def _flaw(values: Mapping[str, Any]) -> str | None:
    """Why a row's open..volume cannot be a bar; None when they can (null volume is NaN)."""
    if all(v is None for v in values.values()):
        return "all_null"
    for name, value in values.items():
        if value is _BAD:
            return f"bad_value:{name}"
        if value is None and name in PRICES:
            return f"missing_value:{name}"
    if any(values[p] == 0 for p in PRICES):
        return "zero_price"
    if any(values[p] < 0 for p in PRICES) or (values["volume"] or 0) < 0:
        return "negative_value"
    return None


_BAD = object()  # a value that is present but not a number


def _number(value: Any) -> Any:
    """A float, None for null, or _BAD (strings, booleans, NaN, huge or nested values)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _BAD
    number = float(value) if abs(value) < 1e300 else math.inf
    return number if math.isfinite(number) else _BAD


def _json(body: bytes) -> Any:
    """The decoded JSON of a body, or None when it is not JSON (truncated, HTML, text)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _epoch_ms(value: Any) -> int | None:
    """Whole epoch milliseconds, or None when missing, not a whole number or out of range."""
    t = _number(value)
    return int(t) if isinstance(t, float) and t == int(t) and 0 < t < _MAX_EPOCH_MS else None


def _within(frame: pd.DataFrame, rejected: tuple[dict[str, Any], ...], start: dt.date,
            end: dt.date) -> tuple[pd.DataFrame, tuple[dict[str, Any], ...]]:
    """Rows (with `day`, their New York date; sorted by time) and rejects dated start..end.

    Rejects with no readable date are always kept, so nothing unreadable goes unseen.
    """
    day = frame["ts"].dt.tz_convert(NEW_YORK).dt.tz_localize(None).dt.normalize().astype("datetime64[us]")
    keep = (day >= pd.Timestamp(start)) & (day <= pd.Timestamp(end))
    frame = frame.assign(day=day)[keep].sort_values("ts", kind="stable").reset_index(drop=True)
    lo, hi = start.isoformat(), end.isoformat()
    return frame, tuple(r for r in rejected if r["date"] == "" or lo <= r["date"] <= hi)


def _no_actions() -> pd.DataFrame:
    """An empty actions frame: aggregates carry no splits or dividends."""
    types = ("datetime64[us]", "str", "float64")
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(ACTION_COLUMNS, types)})


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from Retry-After (delta seconds, or an HTTP date relative to Date), if sent."""
    value = (headers.get("retry-after") or "").strip()
    try:
        seconds = float(value) if value[:1].isdigit() else (
            parsedate_to_datetime(value) - parsedate_to_datetime(headers["date"])).total_seconds()
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _short(text: str, limit: int = 200) -> str:
    """A vendor text for logs: one line, at most `limit` characters, no key=value secret."""
    return " ".join(_SECRET.sub(r"\1=***", text).split())[:limit]
