"""Tiingo: pure request building and response parsing (no I/O, never the key).

`GET https://api.tiingo.com/tiingo/daily/{ticker}/prices?startDate=...&endDate=...&token=KEY`
(PROVIDERS.md, tiingo/). Success is a JSON list of bars; a refusal is `{"detail": ...}`.

Decisions:
    * Any dict with `detail` where the list was expected is a refusal, whatever the status
      (some observers got them with HTTP 200); its text decides: "hourly" is RATE_LIMITED,
      "monthly", "daily" or "symbol" allocations are QUOTA_EXHAUSTED, "not found" is
      SYMBOL_NOT_FOUND, a token/credentials text (or 401/403) is AUTH_FAILED.
    * The hourly allocation refills within the hour, so without a Retry-After header
      `retry_after` is 3600 s: in practice, pause the provider (PROVIDERS.md).
    * `date` is `YYYY-MM-DDT00:00:00.000Z`: the date part is the trading date, taken as-is
      (converting it to New York time would move it back a day).
    * Prices are JSON decimal literals (raw ones 2 dp, adjusted ones up to 6 dp in the
      fixture): json reads each to the nearest double, so there is no float noise to round.
    * adj_close is `adjClose`; dividends are `divCash` > 0 and splits `splitFactor` != 1
      (new shares per old share).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from ..calendars import DEFAULT_SUFFIXES
from .rows import build, fail
from .vendor import Vendor
from .wire import Outcome, Parsed, Request, Response

NAME = "tiingo"
BASE_URL = "https://api.tiingo.com"
KEY_PARAM = "token"
DEFAULT_LIMITS: dict[str, int | None] = {"calls_per_second": None, "calls_per_minute": None,
                                         "calls_per_hour": 50, "calls_per_day": 1000}
QUOTA_RESETS = ("hourly allocation: within the hour; daily: the next day; monthly unique symbols: "
                "the next month (Tiingo publishes no exact times)")

_FIELDS = {"open": "open", "high": "high", "low": "low", "close": "close", "adj_close": "adjClose",
           "volume": "volume", "dividend": "divCash", "split": "splitFactor"}
_DATE = re.compile(r"(\d{4}-\d\d-\d\d)(T\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?)?")
_HOUR = 3600.0


def vendor_symbol(symbol: str) -> str:
    """Tiingo's spelling of a canonical (Yahoo-style) symbol.

    Rule: Tiingo's symbology uses hyphens, never periods, for share classes (BRK.B ->
    BRK-B); its stock prices cover US listings (and Chinese ones under their own codes), so
    a symbol with an exchange suffix is refused.

    Raises:
        ValueError: an exchange suffix (VOD.L, 7203.T), an index or FX pair.
    """
    symbol = symbol.strip().upper()
    head, dot, tail = symbol.partition(".")
    share_class = re.fullmatch(r"[A-Z]", tail) and "." + tail not in DEFAULT_SUFFIXES
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9\-]*", head) or (dot and not share_class):
        raise ValueError(f"tiingo covers US tickers such as AAPL or BRK.B, not {symbol!r}: use another provider")
    return f"{head}-{tail}" if dot else symbol


def daily_request(symbol: str, start: dt.date, end: dt.date) -> Request:
    """End-of-day prices for `symbol` (Tiingo spelling) from `start` to `end` inclusive.

    Raises:
        ValueError: a reversed window, or a symbol not in Tiingo spelling (it goes in the path).
    """
    if start > end:
        raise ValueError(f"tiingo window starts after it ends ({start} > {end})")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9\-]*", symbol or ""):
        raise ValueError(f"not a tiingo symbol: {symbol!r} (use vendor_symbol first)")
    params = {"startDate": start.isoformat(), "endDate": end.isoformat(), "format": "json"}
    return Request(f"/tiingo/daily/{symbol}/prices", params, endpoint="daily")


def parse_daily(response: Response, start: dt.date, end: dt.date) -> Parsed:
    """Bars, dividends and splits in [start, end], or the refusal the response states."""
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None  # truncated JSON or an HTML page: the status alone may still say enough
    if isinstance(body, list) and response.status == 200:
        rows = [(_date_part(row.get("date")), {k: row.get(v) for k, v in _FIELDS.items()}, row, None)
                if isinstance(row, dict) else ("", {}, row, "not_an_object") for row in body]
        return build(rows, start, end)
    detail = body.get("detail") if isinstance(body, dict) else None
    return classify(response.status, "" if detail is None else str(detail), response.retry_after())


def classify(status: int, detail: str, retry_after: float | None = None) -> Parsed:
    """The outcome of a refusal: its `detail` text first, then its HTTP status."""
    low = detail.lower()
    if status == 429 or "allocation" in low or "run over" in low:
        if re.search(r"monthly|daily|symbol", low):
            return fail(Outcome.QUOTA_EXHAUSTED, detail or "HTTP 429")
        return fail(Outcome.RATE_LIMITED, detail or "HTTP 429", retry_after=retry_after or _HOUR)
    if "not found" in low:
        return fail(Outcome.SYMBOL_NOT_FOUND, detail)
    if status in (401, 403) or re.search(r"token|credentials|authenticat", low):
        return fail(Outcome.AUTH_FAILED, detail or f"HTTP {status}")
    return fail(Outcome.PROTOCOL_ERROR, detail or f"HTTP {status} without a list of prices")


# ----------------------------------------------------------------------------- helpers


def _date_part(text: Any) -> Any:
    """`2024-05-06T00:00:00.000Z` -> `2024-05-06`, as written (no time zone conversion)."""
    match = _DATE.fullmatch(text.strip()) if isinstance(text, str) else None
    return match.group(1) if match else text


VENDOR = Vendor(NAME, BASE_URL, KEY_PARAM, DEFAULT_LIMITS, spell=vendor_symbol, daily=daily_request,
                parse_daily=parse_daily)
