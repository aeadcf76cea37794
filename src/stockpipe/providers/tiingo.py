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
import math
import re
from typing import TYPE_CHECKING, Any

from ..calendars import DEFAULT_SUFFIXES
from .base import ACTION_COLUMNS, BAR_COLUMNS
from .wire import Outcome, Parsed, Request, Response

if TYPE_CHECKING:
    import pandas as pd

NAME = "tiingo"
BASE_URL = "https://api.tiingo.com"
KEY_PARAM = "token"
DEFAULT_LIMITS: dict[str, int | None] = {"calls_per_second": None, "calls_per_minute": None,
                                         "calls_per_hour": 50, "calls_per_day": 1000}
QUOTA_RESETS = ("hourly allocation: within the hour; daily: the next day; monthly unique symbols: "
                "the next month (Tiingo publishes no exact times)")

_FIELDS = {"open": "open", "high": "high", "low": "low", "close": "close", "adj_close": "adjClose",
           "volume": "volume", "dividend": "divCash", "split": "splitFactor"}
_CORE = ("open", "high", "low", "close", "volume")
_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"(\d{4}-\d\d-\d\d)(T\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?)?")
_KEYLIKE = re.compile(r"\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{16,}\b", re.I)  # never echo a key
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
        return _build(rows, start, end)
    detail = body.get("detail") if isinstance(body, dict) else None
    return classify(response.status, "" if detail is None else str(detail), _retry_after(response))


def classify(status: int, detail: str, retry_after: float | None = None) -> Parsed:
    """The outcome of a refusal: its `detail` text first, then its HTTP status."""
    low = detail.lower()
    if status == 429 or "allocation" in low or "run over" in low:
        if re.search(r"monthly|daily|symbol", low):
            return _fail(Outcome.QUOTA_EXHAUSTED, detail or "HTTP 429")
        return _fail(Outcome.RATE_LIMITED, detail or "HTTP 429", retry_after=retry_after or _HOUR)
    if "not found" in low:
        return _fail(Outcome.SYMBOL_NOT_FOUND, detail)
    if status in (401, 403) or re.search(r"token|credentials|authenticat", low):
        return _fail(Outcome.AUTH_FAILED, detail or f"HTTP {status}")
    return _fail(Outcome.PROTOCOL_ERROR, detail or f"HTTP {status} without a list of prices")


# ----------------------------------------------------------------------------- helpers


def _date_part(text: Any) -> Any:
    """`2024-05-06T00:00:00.000Z` -> `2024-05-06`, as written (no time zone conversion)."""
    match = _DATE.fullmatch(text.strip()) if isinstance(text, str) else None
    return match.group(1) if match else text


def _build(rows: list[tuple], start: dt.date, end: dt.date) -> Parsed:
    """(date text, fields, raw, preset reason) rows -> bars, actions and rejects in [start, end]."""
    bars, actions, rejected = {}, [], []
    for text, fields, raw, reason in rows:
        day = _day(text)
        if day is not None and not start <= day <= end:
            continue
        values, reason = (None, reason) if reason else _values(fields) if day else (None, "bad_date")
        if reason or day in bars:
            rejected.append({"date": str(text), "reason": reason or "duplicate_date", "raw": raw})
            continue
        bars[day] = values
        actions += [(day, "dividend", values["dividend"])] * ((values["dividend"] or 0.0) > 0)
        actions += [(day, "split", values["split"])] * ((values["split"] or 1.0) != 1.0)
    bar_frame, action_frame = _frames(bars, actions)
    outcome = Outcome.OK if bars else Outcome.EMPTY
    return Parsed(outcome, bars=bar_frame, actions=action_frame, rejected=tuple(rejected))


def _values(fields: dict[str, Any]) -> tuple[dict[str, float | None] | None, str | None]:
    """One row's numbers, or the first reason it cannot be a bar."""
    values, bad = {}, []
    for name in _FIELDS:
        try:
            values[name] = _number(fields.get(name))
        except ValueError:
            bad.append(name)
    missing = [n for n in _CORE if n not in bad and values[n] is None]
    prices = [v for n in ("open", "high", "low", "close", "adj_close") if (v := values.get(n)) is not None]
    if len(missing) == len(_CORE):
        return None, "all_null"
    if bad or missing:
        return None, f"not_a_number:{bad[0]}" if bad else f"missing_value:{missing[0]}"
    if any(p <= 0 for p in prices):  # a zero stands for "unknown", never for a price
        return None, "zero_price" if 0 in prices else "negative_price"
    return values, None


def _number(value: Any) -> float | None:
    """A float, or None for a missing value (null, NaN, "", "NA").

    Raises:
        ValueError: not a finite number (text that is not a plain decimal, an infinity, a bool).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value):
        return None if math.isnan(value) else float(value)
    if value is None or (isinstance(value, str) and value.strip().lower() in _MISSING):
        return None
    if not isinstance(value, str) or not _NUMBER.fullmatch(value.strip()):
        raise ValueError(value)
    return float(value)


def _day(text: Any) -> dt.date | None:
    match = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)", str(text).strip())
    try:
        return dt.date(*map(int, match.groups())) if match else None
    except ValueError:  # 2024-02-30
        return None


def _frames(bars: dict, actions: list) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    import pandas as pd

    days = sorted(bars)
    bar_frame = pd.DataFrame({c: [bars[d][c] for d in days] for c in BAR_COLUMNS[1:]}, dtype="float64")
    bar_frame.insert(0, "date", pd.Series(pd.to_datetime(days), dtype="datetime64[us]"))
    action_frame = pd.DataFrame(sorted(actions), columns=list(ACTION_COLUMNS))
    return bar_frame, action_frame.astype({"date": "datetime64[us]", "kind": "str", "value": "float64"})


def _fail(outcome: Outcome, text: str, retry_after: float | None = None) -> Parsed:
    message = _KEYLIKE.sub("***", " ".join(text.split()))
    return Parsed(outcome, message=message[:200], retry_after=retry_after)


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None
