"""Yahoo's chart answers (v8 /finance/chart), read: bars, dividends and splits, or the
outcome an error answer means. Pure; yahoo.py's parse functions call `read` with `daily`
or `intraday`. The rules (dates, rounding, rejects, outcomes) are yahoo.py's Decisions.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from functools import partial
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .base import ACTION_COLUMNS, BAR_COLUMNS
from .rows import records_frame, short
from .wire import Outcome, Parsed, Response

_PRICES = ("open", "high", "low", "close")
_FIELDS = (*_PRICES, "volume")
_RANGE_WORDS = ("data not available", "must be within", "granularity", "range", "starttime")

def read(response: Response, build: Callable[..., Parsed]) -> Parsed:
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
                            retry_after=response.retry_after())
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


def daily(result: dict, meta: dict, table: dict, zone: dt.tzinfo, start: dt.date,
           end: dt.date) -> Parsed:
    actions, bad = _actions(result.get("events"), zone, start, dt.date.max)  # later splits undo the bars'
    bars, rejected, days = [], [], []
    for row in _rows(table):
        day = _local(row["timestamp"], zone)
        days += [day.date()] if day is not None else []
        if day is not None and not start <= day.date() <= end:
            continue
        reason = "bad_date" if day is None else _reason(row)
        if reason:
            shown = day.date().isoformat() if day else str(row["timestamp"])
            rejected.append({"date": shown, "reason": reason, "raw": row})
        else:
            bars.append({"date": day.date(), **_rounded(row, _digits(meta), _factor(day.date(), actions))})
    last = max([*days, *(a["date"] for a in actions)], default=None)  # the day the answer speaks up to
    return Parsed(Outcome.OK if bars or rejected or actions else Outcome.EMPTY,
                  bars=records_frame(bars, BAR_COLUMNS, {"date": "datetime64[us]"}, sort=True),
                  actions=records_frame(actions, ACTION_COLUMNS, {"date": "datetime64[us]", "kind": "str"}, sort=True),
                  rejected=tuple(rejected + bad), currency=meta.get("currency"), basis=last)


def intraday(result: dict, meta: dict, table: dict, zone: dt.tzinfo) -> Parsed:
    actions, bad = _actions(result.get("events"), zone, dt.date.min, dt.date.max)
    rows, rejected = [], []
    for row in _rows(table):
        local = _local(row["timestamp"], zone)
        reason = "bad_date" if local is None else _reason(row)
        if reason:
            shown = local.astimezone(dt.timezone.utc).isoformat() if local else str(row["timestamp"])
            rejected.append({"date": shown, "reason": reason, "raw": row})
        else:
            rounded = _rounded(row, _digits(meta), _factor(local.date(), actions))
            bar = {k: v for k, v in rounded.items() if k != "adj_close"}
            rows.append({"ts": local.astimezone(dt.timezone.utc), **bar, "session_date": local.date()})
    frame = records_frame(rows, ("ts", *_FIELDS, "session_date"),
                          {"ts": "datetime64[us, UTC]", "session_date": "datetime64[us]"}, sort=True)
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


def _rounded(row: dict[str, Any], digits: int, factor: float = 1.0) -> dict[str, float]:
    """Prices rounded to `digits` as traded: a split-adjusted price (divided by `factor`)
    is rounded where it traded, x factor, then divided back (a 40:1-adjusted 19.65825 stays
    that, so as traded it is 786.33, never 786.332 or 786.40)."""
    adj = row["adjclose"]
    return {**{name: round(round(float(row[name]) * factor, digits) / factor, digits + 8) for name in _PRICES},
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


def _factor(day: dt.date, actions: list[dict]) -> float:
    """The product of the ratios of the answer's splits after `day`: what the bar's prices
    were divided by (1.0 when none)."""
    return math.prod(a["value"] for a in actions if a["kind"] == "split" and day < a["date"])


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


_short = partial(short, secret=None)  # Yahoo needs no key: nothing to mask
