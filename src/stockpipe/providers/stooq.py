"""Stooq: pure request building and CSV parsing (no I/O, never the key).

`GET https://stooq.com/q/d/l/?s=aapl.us&i=d&d1=YYYYMMDD&d2=YYYYMMDD&apikey=KEY`. Every answer
is HTTP 200, so only the body tells data from refusal (PROVIDERS.md, stooq/).

Decisions:
    * Refusals are short plain texts: exactly `No data` (stooq.pl: `Brak danych`) is
      SYMBOL_NOT_FOUND; a CSV with only its header is EMPTY.
    * The JavaScript anti-bot page ("requires JavaScript to verify your browser") is
      QUOTA_EXHAUSTED. PROVIDERS.md says to stop the provider, and both AUTH_FAILED and
      QUOTA_EXHAUSTED do; but the block is lifted by time, not by fixing the key, so the
      run should defer the remaining symbols to the next run (partial), not report a
      configuration error.
    * Rows are sorted by date: Stooq's order is not relied on. Prices are decimal text,
      which float() reads without noise: no rounding. Stooq sends no adjusted close
      (NaN) and no corporate actions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import TYPE_CHECKING, Any

from ..calendars import DEFAULT_SUFFIXES
from .base import ACTION_COLUMNS, BAR_COLUMNS
from .wire import Outcome, Parsed, Request, Response

if TYPE_CHECKING:
    import pandas as pd

NAME = "stooq"
BASE_URL = "https://stooq.com"
KEY_PARAM = "apikey"
# A daily hits limit exists, but Stooq publishes no number for it.
DEFAULT_LIMITS: dict[str, int | None] = {"calls_per_second": None, "calls_per_minute": None,
                                         "calls_per_hour": None, "calls_per_day": None}
QUOTA_RESETS = "daily; Stooq publishes no reset time (assume the next day)"
# Yahoo-style suffix -> Stooq's market suffix; Warsaw is Stooq's home market (no suffix).
MARKETS = {".L": ".uk", ".DE": ".de", ".T": ".jp", ".BD": ".hu", ".WA": ""}

_COLUMNS = {"date": "date", "open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}
_CORE = ("open", "high", "low", "close", "volume")
_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NOT_FOUND = ("No data", "Brak danych")
_KEYLIKE = re.compile(r"\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{16,}\b", re.I)  # never echo a key


def vendor_symbol(symbol: str) -> str:
    """Stooq's spelling of a canonical (Yahoo-style) symbol: lower case with a market suffix.

    Rule: no suffix is US (AAPL -> aapl.us); a one-letter US share class takes a hyphen
    (BRK.B -> brk-b.us); London, Xetra, Tokyo and Budapest take Stooq's suffix (VOD.L ->
    vod.uk, SAP.DE -> sap.de, 7203.T -> 7203.jp, OTP.BD -> otp.hu); Warsaw takes none
    (PKN.WA -> pkn).

    Raises:
        ValueError: a market this module does not map (0700.HK, SHOP.TO), an index or FX pair.
    """
    symbol = symbol.strip().upper()
    head, dot, tail = symbol.partition(".")
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9\-]*", head) or (dot and not tail.isalnum()):
        raise ValueError(f"stooq cannot spell {symbol!r}: use a ticker such as AAPL or BRK.B")
    if dot and "." + tail in MARKETS:
        return (head + MARKETS["." + tail]).lower()
    if dot and (len(tail) > 1 or "." + tail in DEFAULT_SUFFIXES):
        raise ValueError(f"stooq: no mapping for .{tail} symbols ({symbol}): use another provider")
    return f"{head}-{tail}.us".lower() if dot else f"{head}.us".lower()


def daily_request(symbol: str, start: dt.date, end: dt.date) -> Request:
    """Daily bars for `symbol` (Stooq spelling) from `start` to `end` inclusive.

    Raises:
        ValueError: a reversed window, or a symbol not in Stooq spelling.
    """
    if start > end:
        raise ValueError(f"stooq window starts after it ends ({start} > {end})")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", symbol or ""):
        raise ValueError(f"not a stooq symbol: {symbol!r} (use vendor_symbol first)")
    params = {"s": symbol, "i": "d", "d1": f"{start:%Y%m%d}", "d2": f"{end:%Y%m%d}"}
    return Request("/q/d/l/", params, endpoint="daily")


def parse_daily(response: Response, start: dt.date, end: dt.date) -> Parsed:
    """Bars in [start, end] from Stooq's CSV (LF or CRLF), or the refusal the body states."""
    if response.status == 429:  # not seen from Stooq, but unambiguous
        return _fail(Outcome.RATE_LIMITED, "HTTP 429", retry_after=_retry_after(response))
    text = response.text.lstrip("\ufeff \t\r\n").rstrip()
    if response.status != 200:
        return _fail(Outcome.PROTOCOL_ERROR, f"HTTP {response.status}: {text[:60]!r}")
    refusal = classify(text)
    if refusal is not None:
        return refusal
    rows = _csv_rows(text)
    return rows if isinstance(rows, Parsed) else _build(rows, start, end)


def classify(text: str) -> Parsed | None:
    """The refusal a (stripped) body states, or None when it may be the CSV."""
    low = text.lower()
    if text in _NOT_FOUND:
        return _fail(Outcome.SYMBOL_NOT_FOUND, text)
    if "daily hits limit" in low:
        return _fail(Outcome.QUOTA_EXHAUSTED, text)
    if "requires javascript" in low or "verify your browser" in low:
        return _fail(Outcome.QUOTA_EXHAUSTED, "blocked by Stooq's JavaScript browser check")
    if "apikey" in low:
        return _fail(Outcome.AUTH_FAILED, text)
    if not text or text.startswith("<"):
        return _fail(Outcome.PROTOCOL_ERROR, "an empty body" if not text else "an unexpected HTML page")
    return None


# ----------------------------------------------------------------------------- helpers


def _csv_rows(text: str) -> list[tuple] | Parsed:
    """`Date,Open,High,Low,Close,Volume` -> (date text, fields, raw, preset reason) rows."""
    try:
        lines = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error:
        return _fail(Outcome.PROTOCOL_ERROR, "unreadable CSV")
    header = [_COLUMNS.get(cell.strip().lower(), cell) for cell in lines[0]]
    if header[0] != "date" or not set(_CORE) <= set(header):
        return _fail(Outcome.PROTOCOL_ERROR, f"not a CSV of daily bars: {text[:60]!r}")
    return [(row[0], dict(zip(header[1:], row[1:])), dict(zip(lines[0], row)),
             None if len(row) == len(header) else "field_count") for row in lines[1:]]


def _build(rows: list[tuple], start: dt.date, end: dt.date) -> Parsed:
    """(date text, fields, raw, preset reason) rows -> bars and rejects in [start, end]."""
    bars, rejected = {}, []
    for text, fields, raw, reason in rows:
        day = _day(text)
        if day is not None and not start <= day <= end:
            continue
        values, reason = (None, reason) if reason else _values(fields) if day else (None, "bad_date")
        if reason or day in bars:
            rejected.append({"date": str(text), "reason": reason or "duplicate_date", "raw": raw})
            continue
        bars[day] = values
    bar_frame, action_frame = _frames(bars)
    outcome = Outcome.OK if bars else Outcome.EMPTY
    return Parsed(outcome, bars=bar_frame, actions=action_frame, rejected=tuple(rejected))


def _values(fields: dict[str, Any]) -> tuple[dict[str, float | None] | None, str | None]:
    """One row's numbers, or the first reason it cannot be a bar."""
    values, bad = {}, []
    for name in _CORE:
        try:
            values[name] = _number(fields.get(name))
        except ValueError:
            bad.append(name)
    missing = [n for n in _CORE if n not in bad and values[n] is None]
    prices = [values[n] for n in _CORE[:4] if values.get(n) is not None]
    if len(missing) == len(_CORE):
        return None, "all_null"
    if bad or missing:
        return None, f"not_a_number:{bad[0]}" if bad else f"missing_value:{missing[0]}"
    if any(p <= 0 for p in prices):  # a zero stands for "unknown", never for a price
        return None, "zero_price" if 0 in prices else "negative_price"
    return {**values, "adj_close": None}, None


def _number(value: Any) -> float | None:
    """A float, or None for a missing-value token ("", "NA", "null").

    Raises:
        ValueError: text that is not a plain decimal number.
    """
    if value is None or value.strip().lower() in _MISSING:
        return None
    if not _NUMBER.fullmatch(value.strip()):
        raise ValueError(value)
    return float(value)


def _day(text: Any) -> dt.date | None:
    match = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)", str(text).strip())
    try:
        return dt.date(*map(int, match.groups())) if match else None
    except ValueError:  # 2024-02-30
        return None


def _frames(bars: dict) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    import pandas as pd

    days = sorted(bars)
    bar_frame = pd.DataFrame({c: [bars[d][c] for d in days] for c in BAR_COLUMNS[1:]}, dtype="float64")
    bar_frame.insert(0, "date", pd.Series(pd.to_datetime(days), dtype="datetime64[us]"))
    no_actions = pd.DataFrame(columns=list(ACTION_COLUMNS))
    return bar_frame, no_actions.astype({"date": "datetime64[us]", "kind": "str", "value": "float64"})


def _fail(outcome: Outcome, text: str, retry_after: float | None = None) -> Parsed:
    message = _KEYLIKE.sub("***", " ".join(text.split()))
    return Parsed(outcome, message=message[:200], retry_after=retry_after)


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None
