"""Row helpers shared by the pure vendor modules (alphavantage, stooq, tiingo, finnhub,
polygon, yahoo, eodhd): one copy of each, no I/O.

Three families of vendors read rows differently, so the helpers come in groups:
    * text-or-JSON rows (alphavantage, stooq, tiingo): `(date text, fields, raw, preset
      reason)` tuples -> `build` -> bars and actions in [start, end]; numbers via `number`
      (missing-value tokens are None, other text raises ValueError).
    * candle arrays (finnhub, polygon): `json_number` (BAD for anything not a JSON number),
      `flaw`, `epoch`, `candle_frame`, `within`, `candle_daily` / `candle_intraday`.
    * chart / EOD tables (yahoo, eodhd): `records_frame`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from typing import TYPE_CHECKING, Any, Mapping, Pattern

from .base import ACTION_COLUMNS, BAR_COLUMNS
from .wire import Outcome, Parsed

if TYPE_CHECKING:
    import pandas as pd

CORE = ("open", "high", "low", "close", "volume")
PRICES = CORE[:4]
# Every number a text-or-JSON daily row may carry, in the order they are read.
FIELDS = ("open", "high", "low", "close", "adj_close", "volume", "dividend", "split")
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})  # missing-value tokens (lower case)
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
KEYLIKE = re.compile(r"\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{16,}\b", re.I)  # never echo a key
SECRET = re.compile(r"(?i)(api_?key|token)=[^&\s]+")  # a key=value secret in a URL or text
_ACTION_TYPES = {"date": "datetime64[us]", "kind": "str", "value": "float64"}


# ----------------------------------------------------------------------------- messages


def fail(outcome: Outcome, text: str, retry_after: float | None = None, *,
         keylike: Pattern[str] = KEYLIKE) -> Parsed:
    """A Parsed with `outcome` and `text` on one line, at most 200 characters, keys masked."""
    message = keylike.sub("***", " ".join(str(text).split()))
    return Parsed(outcome, message=message[:200], retry_after=retry_after)


def short(text: str, limit: int = 200, secret: Pattern[str] | None = SECRET) -> str:
    """A vendor text for logs: one line, at most `limit` characters, no key=value secret
    (`secret` None: no masking)."""
    return " ".join((secret.sub(r"\1=***", text) if secret else text).split())[:limit]


def number(value: Any) -> float | None:
    """A float, or None for a missing value (null, NaN, "", "NA").

    Raises:
        ValueError: not a finite number (text that is not a plain decimal, an infinity, a bool).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value):
        return None if math.isnan(value) else float(value)
    if value is None or (isinstance(value, str) and value.strip().lower() in MISSING):
        return None
    if not isinstance(value, str) or not NUMBER.fullmatch(value.strip()):
        raise ValueError(value)
    return float(value)


def iso_date(text: Any) -> dt.date | None:
    """`YYYY-MM-DD` (surrounding blanks allowed) -> a date; None when it is not one."""
    match = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)", str(text).strip())
    try:
        return dt.date(*map(int, match.groups())) if match else None
    except ValueError:  # 2024-02-30
        return None


def csv_lines(text: str) -> list[list[str]] | None:
    """The non-empty CSV rows of `text` (LF or CRLF), or None when it is unreadable CSV."""
    try:
        return [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error:
        return None


def is_count_line(row: list[str]) -> bool:
    """A lone whole number in the first cell, every other cell empty: the row count some
    CSV answers end with (EODHD's), not a row."""
    return bool(row) and row[0].strip().isdigit() and not any(cell.strip() for cell in row[1:])


def csv_tuples(lines: list[list[str]], header: list[str]) -> list[tuple]:
    """CSV rows under `header` (canonical names of lines[0]) -> (date text, fields, raw,
    preset reason) rows; a row with the wrong number of cells is preset "field_count"."""
    return [(row[0], dict(zip(header[1:], row[1:])), dict(zip(lines[0], row)),
             None if len(row) == len(header) else "field_count") for row in lines[1:]]


def bar_values(fields: Mapping[str, Any], names: tuple[str, ...] = FIELDS,
               prices: tuple[str, ...] = (*PRICES, "adj_close")
               ) -> tuple[dict[str, float | None] | None, str | None]:
    """One row's numbers (`names`; adj_close None when not among them), or the first
    reason it cannot be a bar."""
    values, bad = {}, []
    for name in names:
        try:
            values[name] = number(fields.get(name))
        except ValueError:
            bad.append(name)
    missing = [n for n in CORE if n not in bad and values[n] is None]
    present = [v for n in prices if (v := values.get(n)) is not None]
    if len(missing) == len(CORE):
        return None, "all_null"
    if bad or missing:
        return None, f"not_a_number:{bad[0]}" if bad else f"missing_value:{missing[0]}"
    if any(p <= 0 for p in present):  # a zero stands for "unknown", never for a price
        return None, "zero_price" if 0 in present else "negative_price"
    return {"adj_close": None, **values}, None


def build(rows: list[tuple], start: dt.date, end: dt.date, names: tuple[str, ...] = FIELDS) -> Parsed:
    """(date text, fields, raw, preset reason) rows -> bars, actions and rejects in [start, end].

    `names`: the numbers a row carries (see `bar_values`); dividends and splits become actions.
    """
    bars, actions, rejected = {}, [], []
    for text, fields, raw, reason in rows:
        date = iso_date(text)
        if date is not None and not start <= date <= end:
            continue
        values, reason = (None, reason) if reason else bar_values(fields, names) if date else (None, "bad_date")
        if reason or date in bars:
            rejected.append({"date": str(text), "reason": reason or "duplicate_date", "raw": raw})
            continue
        bars[date] = values
        dividend, split = values.get("dividend"), values.get("split")
        actions += [(date, "dividend", dividend)] * ((dividend or 0.0) > 0)
        actions += [(date, "split", split)] * ((split or 1.0) != 1.0)
    bar_frame, action_frame = frames(bars, actions)
    outcome = Outcome.OK if bars else Outcome.EMPTY
    return Parsed(outcome, bars=bar_frame, actions=action_frame, rejected=tuple(rejected))


def frames(bars: dict, actions: list) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """{date: values} and (date, kind, value) actions -> the bars and actions frames, sorted."""
    import pandas as pd

    days = sorted(bars)
    bar_frame = pd.DataFrame({c: [bars[d][c] for d in days] for c in BAR_COLUMNS[1:]}, dtype="float64")
    bar_frame.insert(0, "date", pd.Series(pd.to_datetime(days), dtype="datetime64[us]"))
    action_frame = pd.DataFrame(sorted(actions), columns=list(ACTION_COLUMNS))
    return bar_frame, action_frame.astype(_ACTION_TYPES)


# ---------------------------------------------------------- candle arrays (Finnhub, Polygon)


BAD = object()  # a value that is present but not a number


def json_number(value: Any) -> Any:
    """A float, None for null, or BAD (strings, booleans, NaN, huge or nested values)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return BAD
    result = float(value) if abs(value) < 1e300 else math.inf
    return result if math.isfinite(result) else BAD


def epoch(value: Any, limit: float) -> int | None:
    """A whole epoch count, or None when missing, not a whole number or not in (0, limit)."""
    t = json_number(value)
    return int(t) if isinstance(t, float) and t == int(t) and 0 < t < limit else None


def json_or_none(body: bytes) -> Any:
    """The decoded JSON of a body, or None when it is not JSON (truncated, HTML, text)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def flaw(values: Mapping[str, Any]) -> str | None:
    """Why a row's open..volume cannot be a bar; None when they can (null volume is NaN)."""
    if all(v is None for v in values.values()):
        return "all_null"
    for name, value in values.items():
        if value is BAD:
            return f"bad_value:{name}"
        if value is None and name in PRICES:
            return f"missing_value:{name}"
    if any(values[p] == 0 for p in PRICES):
        return "zero_price"
    if any(values[p] < 0 for p in PRICES) or (values["volume"] or 0) < 0:
        return "negative_value"
    return None


def candle_row(t: int, values: Mapping[str, float | None]) -> dict[str, Any]:
    """A kept candle: its epoch `ts` and numbers, prices rounded to 4 dp (float noise)."""
    return {"ts": t, **{n: round(v, 4) if n in PRICES else v for n, v in values.items()}}


def candle_frame(rows: list[dict[str, Any]], names: tuple[str, ...], unit: str) -> "pd.DataFrame":
    """candle_row dicts -> ts (UTC, from epoch `unit` "s" or "ms") and float64 `names`."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["ts", *names])
    instants = pd.to_datetime(frame["ts"].astype("int64"), unit=unit, utc=True)
    frame["ts"] = instants.astype("datetime64[us, UTC]")
    return frame.astype({c: "float64" for c in names})


def within(frame: "pd.DataFrame", rejected: tuple[dict[str, Any], ...], start: dt.date, end: dt.date,
           zone: dt.tzinfo, daily: bool = False) -> tuple["pd.DataFrame", tuple[dict[str, Any], ...]]:
    """Rows (with `day`, their session date: `session_days` for `daily` bars, else the date
    in `zone`; sorted by time) and rejects dated start..end.

    Rejects with no readable date are always kept, so nothing unreadable goes unseen.
    """
    import pandas as pd

    date = session_days(frame["ts"], zone) if daily else _local_days(frame["ts"], zone)
    keep = (date >= pd.Timestamp(start)) & (date <= pd.Timestamp(end))
    frame = frame.assign(day=date)[keep].sort_values("ts", kind="stable").reset_index(drop=True)
    lo, hi = start.isoformat(), end.isoformat()
    return frame, tuple(r for r in rejected if r["date"] == "" or lo <= r["date"] <= hi)


def session_days(stamps: "pd.Series", zone: dt.tzinfo) -> "pd.Series":
    """The session date of daily bars from their stamps (UTC): a stamp at midnight UTC is
    that UTC date (Finnhub's daily candles since mid-2021); any other time is the date in
    the exchange's `zone` (a session's open, or the 00:00 New York of Polygon and older
    Finnhub answers), so a bar is never dated the day before its session."""
    import numpy as np
    import pandas as pd

    utc = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    midnight = utc == utc.dt.normalize()
    days = np.where(midnight, utc.dt.normalize(), _local_days(stamps, zone))
    return pd.Series(days, index=stamps.index).astype("datetime64[us]")


def session_day(seconds: int, zone: dt.tzinfo) -> dt.date:
    """`session_days` of one stamp in epoch seconds (for rejects)."""
    instant = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return instant.date() if instant.time() == dt.time() else instant.astimezone(zone).date()


def _local_days(stamps: "pd.Series", zone: dt.tzinfo) -> "pd.Series":
    return stamps.dt.tz_convert(zone).dt.tz_localize(None).dt.normalize().astype("datetime64[us]")


def no_actions() -> "pd.DataFrame":
    """An empty actions frame: candles carry no splits or dividends."""
    import pandas as pd

    types = ("datetime64[us]", "str", "float64")
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(ACTION_COLUMNS, types)})


def candle_daily(got: Any, start: dt.date, end: dt.date, zone: dt.tzinfo) -> Parsed:
    """(candle frame, rejects) -> daily bars of the sessions start..end (`session_days` in the
    exchange's `zone`) and the answer's newest session (`basis`); a Parsed passes through."""
    if isinstance(got, Parsed):
        return got
    frame, shown = within(*got, start, end, zone, daily=True)
    bars = frame.rename(columns={"day": "date"}).assign(adj_close=float("nan"))[list(BAR_COLUMNS)]
    outcome = Outcome.OK if len(bars) or shown else Outcome.EMPTY
    newest = session_days(got[0]["ts"], zone).max() if len(got[0]) else None
    return Parsed(outcome, bars=bars, actions=no_actions(), rejected=shown, basis=newest and newest.date())


def candle_intraday(got: Any, start: dt.date | None, end: dt.date | None, zone: dt.tzinfo) -> Parsed:
    """(candle frame, rejects) -> intraday bars of sessions start..end (if given) in `zone`."""
    if isinstance(got, Parsed):
        return got
    frame, shown = within(*got, start or dt.date.min, end or dt.date.max, zone)
    bars = frame.rename(columns={"day": "session_date"})
    outcome = Outcome.OK if len(bars) or shown else Outcome.EMPTY
    return Parsed(outcome, intraday=bars, rejected=shown)


# ------------------------------------------------------------- chart tables (Yahoo, EODHD)


def records_frame(rows: list[dict], columns: tuple[str, ...], types: Mapping[str, str],
                  sort: bool = False) -> "pd.DataFrame":
    """Rows to a frame of `columns`, float64 unless `types` says; `sort`: by the first column."""
    import pandas as pd

    def column(name: str) -> "pd.Series":
        values = pd.Series([row[name] for row in rows], dtype=object)
        kind = types.get(name, "float64")
        return pd.to_datetime(values, utc="UTC" in kind).astype(kind) if "datetime" in kind else values.astype(kind)

    frame = pd.DataFrame({name: column(name) for name in columns})
    return frame.sort_values(columns[0], kind="stable").reset_index(drop=True) if sort else frame
