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
    * OHLC and volume are split-adjusted as of the download day (PRICES_SPLIT_ADJUSTED),
      daily and intraday bars alike: bars before a split are not as traded. Both requests
      ask for events=div,splits, so both parses return the splits as actions, and the
      adapter (vendors.unadjust_splits) undoes them; parsing keeps the bars as sent.
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
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import replace
from functools import partial
from typing import Any, Callable
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .base import ACTION_COLUMNS, BAR_COLUMNS
from .rows import records_frame, retry_after_http, short
from .wire import Outcome, Parsed, Request, Response

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
PRICES_SPLIT_ADJUSTED = True
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
_PRICES = ("open", "high", "low", "close")
_FIELDS = (*_PRICES, "volume")
_RANGE_WORDS = ("data not available", "must be within", "granularity", "range", "starttime")


def vendor_symbol(symbol: str) -> str:
    """Canonical symbol to Yahoo's: class dots become dashes, exchange suffixes stay."""
    symbol = symbol.strip().upper()
    head, dot, tail = symbol.rpartition(".")
    if dot and head and tail in EXCHANGE_SUFFIXES:
        return f"{head.replace('.', '-')}.{tail}"
    return symbol.replace(".", "-")


def daily_request(symbol: str, start: dt.date, end: dt.date) -> Request:
    """Daily bars, dividends and splits for the exchange dates start..end.

    period1/period2 are the UTC midnights a day before `start` and two days after `end`,
    so every exchange's local dates are inside; parse_daily keeps only start..end.

    Raises:
        ValueError: end is before start.
    """
    if end < start:
        raise ValueError(f"yahoo daily window ends ({end}) before it starts ({start})")
    params = {"period1": _epoch(start - _DAYS), "period2": _epoch(end + 2 * _DAYS),
              "interval": "1d", "events": "div,splits", "includePrePost": "false"}
    return Request(_chart_path(symbol), params, dict(DEFAULT_HEADERS), endpoint="daily")


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
    """Bars (exchange dates start..end), dividends and splits from a chart answer."""
    return _parse(response, lambda *read: _daily(*read, start, end))


def parse_intraday(response: Response) -> Parsed:
    """Intraday bars (ts in UTC, session_date the exchange's local date), split-adjusted as
    sent, and the answer's dividends and splits as actions (dated by the exchange)."""
    return _parse(response, _intraday)


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


# ---------------------------------------------------------------- reading the answer


def _parse(response: Response, build: Callable[..., Parsed]) -> Parsed:
    """Check the envelope and the columns, then `build(result, meta, table, zone)`."""
    result, failure = _chart_result(response)
    if failure is not None:
        return failure
    meta = result.get("meta") if isinstance(result.get("meta"), dict) else {}
    zone, table = _zone(meta), _table(result)
    if zone is None or table is None:
        return Parsed(Outcome.PROTOCOL_ERROR, message="chart result without a time zone, or "
                      "with columns that do not match its timestamps")
    if not table["timestamp"]:
        return Parsed(Outcome.EMPTY, currency=meta.get("currency"), message="no bars in range")
    try:
        return build(result, meta, table, zone)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:  # garbled: never raise
        return Parsed(Outcome.PROTOCOL_ERROR, message=_short(f"unreadable chart result: {exc}"))


def _chart_result(response: Response) -> tuple[dict | None, Parsed | None]:
    """The first chart result, or the Parsed saying why there is none."""
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    envelope = (data.get("chart") or data.get("finance")) if isinstance(data, dict) else None
    if isinstance(envelope, dict) and envelope.get("error"):
        return None, _error(envelope["error"], response.status)
    result = _first(envelope.get("result")) if isinstance(envelope, dict) else {}
    if response.status == 200 and result:
        return result, None
    shown = "HTML page" if text.startswith("<") else _short(text) or "empty body"
    message = _short(f"HTTP {response.status}: {shown}")
    if response.status == 429 or (data is None and "too many requests" in text.lower()):
        return None, Parsed(Outcome.RATE_LIMITED, message=message,
                            retry_after=retry_after_http({k.lower(): v for k, v in response.headers.items()}))
    if response.status == 401:
        return None, Parsed(Outcome.AUTH_FAILED, message=message)
    return None, Parsed(Outcome.PROTOCOL_ERROR, message=message)


def _error(error: Any, status: int) -> Parsed:
    """What chart.error (or finance.error) means, whatever the HTTP status."""
    error = error if isinstance(error, dict) else {"description": str(error)}
    code, text = str(error.get("code") or ""), str(error.get("description") or "")
    message, low = _short(f"{code}: {text}" if text else code), f"{code} {text}".lower()
    if code.lower() == "not found":
        return Parsed(Outcome.EMPTY if "date range" in low else Outcome.SYMBOL_NOT_FOUND,
                      message=message)
    if status == 401 or code.lower() == "unauthorized" or "crumb" in low or "cookie" in low:
        return Parsed(Outcome.AUTH_FAILED, message=message)  # a refused session (see session_refused_message)
    if status == 429 or "too many requests" in low:
        return Parsed(Outcome.RATE_LIMITED, message=message)
    if status in (400, 422) or code.lower() in ("unprocessable entity", "bad request") \
            or any(word in low for word in _RANGE_WORDS):
        return Parsed(Outcome.NOT_ENTITLED, message=message)
    return Parsed(Outcome.PROTOCOL_ERROR, message=_short(f"HTTP {status}: {message}"))


def _table(result: dict) -> dict[str, list] | None:
    """timestamp, open..volume, adjclose as equal-length lists (None when they are not)."""
    stamps = result.get("timestamp") or []
    indicators = result.get("indicators") if isinstance(result.get("indicators"), dict) else {}
    table = {"timestamp": stamps, **{f: _first(indicators.get("quote")).get(f) for f in _FIELDS},
             "adjclose": _first(indicators.get("adjclose")).get("adjclose")}
    for name, values in table.items():
        table[name] = [None] * len(stamps) if values is None else values
        if not isinstance(table[name], list) or len(table[name]) != len(stamps):
            return None
    return table


def _daily(result: dict, meta: dict, table: dict, zone: dt.tzinfo, start: dt.date,
           end: dt.date) -> Parsed:
    bars, rejected = [], []
    for row in _rows(table):
        day = _local(row["timestamp"], zone)
        if day is not None and not start <= day.date() <= end:
            continue
        reason = "bad_date" if day is None else _reason(row)
        if reason:
            shown = day.date().isoformat() if day else str(row["timestamp"])
            rejected.append({"date": shown, "reason": reason, "raw": row})
        else:
            bars.append({"date": day.date(), **_rounded(row, _digits(meta))})
    actions, bad = _actions(result.get("events"), zone, start, end)
    return Parsed(Outcome.OK if bars or rejected or actions else Outcome.EMPTY,
                  bars=records_frame(bars, BAR_COLUMNS, {"date": "datetime64[us]"}, sort=True),
                  actions=records_frame(actions, ACTION_COLUMNS, {"date": "datetime64[us]", "kind": "str"}, sort=True),
                  rejected=tuple(rejected + bad), currency=meta.get("currency"))


def _intraday(result: dict, meta: dict, table: dict, zone: dt.tzinfo) -> Parsed:
    rows, rejected = [], []
    for row in _rows(table):
        local = _local(row["timestamp"], zone)
        reason = "bad_date" if local is None else _reason(row)
        if reason:
            shown = local.astimezone(dt.timezone.utc).isoformat() if local else str(row["timestamp"])
            rejected.append({"date": shown, "reason": reason, "raw": row})
        else:
            bar = {k: v for k, v in _rounded(row, _digits(meta)).items() if k != "adj_close"}
            rows.append({"ts": local.astimezone(dt.timezone.utc), **bar, "session_date": local.date()})
    frame = records_frame(rows, ("ts", *_FIELDS, "session_date"),
                          {"ts": "datetime64[us, UTC]", "session_date": "datetime64[us]"}, sort=True)
    actions, bad = _actions(result.get("events"), zone, dt.date.min, dt.date.max)
    return Parsed(Outcome.OK if rows or rejected else Outcome.EMPTY, intraday=frame,
                  actions=records_frame(actions, ACTION_COLUMNS, {"date": "datetime64[us]", "kind": "str"}, sort=True),
                  rejected=tuple(rejected + bad), currency=meta.get("currency"))


def _reason(row: dict[str, Any]) -> str | None:
    """Why a row is not a bar (None when it is one); the first problem wins."""
    if all(row[name] is None for name in (*_FIELDS, "adjclose")):
        return "all_null"
    for name in _FIELDS:
        value = row[name]
        if value is None:
            return f"missing_value:{name}"
        if not _is_number(value):
            return f"not_a_number:{name}"
        if name in _PRICES and value == 0:
            return f"zero_price:{name}"  # Yahoo's 0 means "no price", not a free share
    if row["adjclose"] is not None and not _is_number(row["adjclose"]):
        return "not_a_number:adj_close"
    return None


def _rounded(row: dict[str, Any], digits: int) -> dict[str, float]:
    adj = row["adjclose"]
    return {**{name: round(float(row[name]), digits) for name in _PRICES},
            "adj_close": round(float(adj), max(digits, 4)) if adj else math.nan,
            "volume": float(row["volume"])}


def _actions(events: Any, zone: dt.tzinfo, start: dt.date, end: dt.date) -> tuple[list, list]:
    """Dividends (cash per share) and splits (new shares per old share) dated start..end."""
    rows, rejected = [], []
    events = events if isinstance(events, dict) else {}
    for kind, key in (("dividend", "dividends"), ("split", "splits")):
        entries = events.get(key) or {}
        for entry in entries.values() if isinstance(entries, dict) else entries:
            entry = entry if isinstance(entry, dict) else {"value": entry}
            day, value = _local(entry.get("date"), zone), _action_value(kind, entry)
            if day is None or value is None:
                rejected.append({"date": str(day.date() if day else entry.get("date")),
                                 "reason": f"bad_{kind}", "raw": entry})
            elif start <= day.date() <= end:
                rows.append({"date": day.date(), "kind": kind, "value": value})
    return sorted(rows, key=lambda r: (r["date"], r["kind"])), rejected


def _action_value(kind: str, entry: dict) -> float | None:
    if kind == "dividend":
        amount = entry.get("amount")
        return round(float(amount), 6) if _is_number(amount) and amount > 0 else None
    new, old = entry.get("numerator"), entry.get("denominator")
    if not (_is_number(new) and _is_number(old)):  # fall back to splitRatio "10:1"
        match = re.fullmatch(r"\s*([\d.]+)\s*[:/]\s*([\d.]+)\s*", str(entry.get("splitRatio", "")))
        new, old = (float(match[1]), float(match[2])) if match else (0, 0)
    return float(new) / float(old) if new > 0 and old > 0 else None


# -------------------------------------------------------------------------- helpers


def _rows(table: dict[str, list]) -> list[dict[str, Any]]:
    return [dict(zip(table, values)) for values in zip(*table.values())]


def _first(value: Any) -> dict:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _digits(meta: dict) -> int:
    hint = meta.get("priceHint")
    return min(max(int(hint), 2), 8) if _is_number(hint) else 4


def _zone(meta: dict) -> dt.tzinfo | None:
    try:
        return ZoneInfo(meta["exchangeTimezoneName"])
    except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError):
        offset = meta.get("gmtoffset")  # today's offset: fine for dates (no session spans midnight)
    try:
        return dt.timezone(dt.timedelta(seconds=offset)) if _is_number(offset) else None
    except ValueError:
        return None


def _local(stamp: Any, zone: dt.tzinfo) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(stamp, zone) if _is_number(stamp) else None
    except (OverflowError, OSError, ValueError):
        return None


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


_short = partial(short, secret=None)  # Yahoo needs no key: nothing to mask
