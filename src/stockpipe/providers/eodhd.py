"""EODHD (eodhd.com): the requests to send and what the answers mean. Pure.

`GET /api/eod/{TICKER}.{EXCHANGE}?fmt=json&from=..&to=..` (daily bars), plus
`/api/real-time/{T}.{EX}` (a quote); the exchange-wide bulk and symbol-list answers are
eodhd_lists.py's. The key goes in `api_token`, added by the HTTP layer. See PROVIDERS.md
(eodhd/).

Decisions:
    * Symbols: TICKER.EXCHANGE with EODHD's exchange codes (EXCHANGES, from EODHD's
      /api/exchanges-list): US tickers share the virtual exchange "US"; class dots become
      dashes (BRK.B -> BRK-B.US); ^INDEX -> INDEX.INDX; EURUSD=X -> EURUSD.FOREX. An unknown
      suffix of two letters or more raises ValueError rather than guessing.
    * OHLC are raw, adjusted_close is split- and dividend-adjusted as of the download day.
      JSON and CSV (Date,Open,High,Low,Close,Adjusted_close,Volume; LF or CRLF) give the
      same bars. EOD answers carry no currency and no actions.
    * Unreadable rows are rejected, never zero-filled: "NA"/empty/null (missing_value:<col>),
      text (not_a_number:<col>), a zero price (zero_price:<col>: EODHD's "unknown"); a
      missing or zero adjusted_close leaves NaN.
    * A real-time quote whose timestamp or close is "NA" is no quote: EMPTY, never 0.
    * Outcomes from status and text: 402 or "exceeded your daily" -> QUOTA_EXHAUSTED (resets
      at midnight GMT); 429 -> RATE_LIMITED, retry_after only from Retry-After (the HTTP
      layer waits for the next minute otherwise); 401/"Unauthenticated" -> AUTH_FAILED;
      403 -> NOT_ENTITLED; 404/"Ticker Not Found." -> SYMBOL_NOT_FOUND; other answers that
      are not data -> PROTOCOL_ERROR. Messages are cut short and any api_token is masked.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import math
import re
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote

from .rows import is_count_line, records_frame
from .vendor import Probe, Quotes, Vendor
from .wire import Outcome, Parsed, Request, Response

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NAME = "eodhd"
BASE_URL = "https://eodhd.com"
KEY_PARAM = "api_token"
DEFAULT_HEADERS = {"Accept": "application/json, text/csv;q=0.9, text/plain;q=0.5"}
DEFAULT_LIMITS = {"calls_per_second": None, "calls_per_minute": 1000, "calls_per_hour": None,
                  "calls_per_day": 100_000}
QUOTA_RESETS = "daily at midnight GMT (00:00 UTC)"
QUOTA_RESET_ZONE = "UTC"  # the quota ledger's reset zone: GMT has no daylight saving

# Canonical (Yahoo-style) suffix -> EODHD exchange code. No suffix means US.
EXCHANGES = {
    "": "US", "L": "LSE", "IL": "IL", "DE": "XETRA", "F": "F", "BE": "BE", "DU": "DU",
    "HM": "HM", "MU": "MU", "HA": "HA", "SG": "STU", "PA": "PA", "AS": "AS", "BR": "BR",
    "LS": "LS", "IR": "IR", "MI": "MI", "MC": "MC", "SW": "SW", "VI": "VI", "ST": "ST",
    "OL": "OL", "CO": "CO", "HE": "HE", "IC": "IC", "WA": "WAR", "PR": "PR", "BD": "BUD",
    "AT": "AT", "IS": "IS", "TO": "TO", "V": "V", "NE": "NEO", "CN": "CN", "MX": "MX",
    "SA": "SA", "SN": "SN", "BA": "BA", "T": "TSE", "HK": "HK", "SS": "SHG", "SZ": "SHE",
    "KS": "KO", "KQ": "KQ", "TW": "TW", "TWO": "TWO", "NS": "NSE", "BO": "BSE", "KL": "KLSE",
    "BK": "BK", "JK": "JK", "AX": "AU", "JO": "JSE", "TA": "TA", "SR": "SR",
}
_COLUMNS = {"open": "open", "high": "high", "low": "low", "close": "close",
            "adj_close": "adjusted_close", "volume": "volume"}  # ours -> EODHD's
_QUOTE_FIELDS = {"price": "close", "open": "open", "high": "high", "low": "low",
                 "prev_close": "previousclose", "change": "change", "change_pct": "change_p",
                 "volume": "volume"}  # ours -> EODHD's (keys lower-cased)
_SOURCES = tuple(_COLUMNS.values())
_ADJ = list(_COLUMNS).index("adj_close")
_MISSING = frozenset({"", "na", "n/a", "null", "nan", "none", "-"})
_TOKEN = re.compile(r"(api_token=)[^&\s\"'<>]+", re.IGNORECASE)


def vendor_symbol(symbol: str) -> str:
    """Canonical symbol (BRK.B, VOD.L, 7203.T, ^GSPC) to EODHD's TICKER.EXCHANGE.

    Raises:
        ValueError: a suffix of two letters or more that is not in EXCHANGES.
    """
    symbol = symbol.strip().upper()
    if symbol.startswith("^"):
        return f"{symbol[1:]}.INDX"
    if symbol.endswith("=X"):
        return f"{symbol[:-2]}.FOREX"
    head, dot, tail = symbol.rpartition(".")
    if dot and head and tail in EXCHANGES:
        return f"{head.replace('.', '-')}.{EXCHANGES[tail]}"
    if dot and head and len(tail) > 1:
        raise ValueError(f"eodhd: unknown exchange suffix .{tail} in {symbol}: add it to eodhd.EXCHANGES")
    return f"{symbol.replace('.', '-')}.US"


def daily_request(symbol: str, start: dt.date, end: dt.date, fmt: str = "json") -> Request:
    """Daily bars start..end (inclusive, exchange dates); fmt "json" or "csv".

    `symbol` is already in EODHD's spelling (`vendor_symbol`, or the config's symbol map).

    Raises:
        ValueError: end before start, unknown fmt, or an unknown exchange suffix.
    """
    if end < start or fmt not in ("json", "csv"):
        raise ValueError(f"eodhd daily request: need start <= end and fmt json/csv (got {start}, {end}, {fmt})")
    params = {"fmt": fmt, "period": "d", "from": start.isoformat(), "to": end.isoformat()}
    return Request(api_path("eod", symbol), params, dict(DEFAULT_HEADERS), "daily")


def quote_request(symbol: str) -> Request:
    """The real-time (delayed) quote of one canonical symbol."""
    return real_time_request(vendor_symbol(symbol))


def real_time_request(spelled: str) -> Request:
    """The real-time (delayed) quote of one symbol in EODHD's spelling (the symbol map's or
    `vendor_symbol`'s): what VENDOR asks, since a mapped symbol cannot be spelled again."""
    return Request(api_path("real-time", spelled), {"fmt": "json"}, dict(DEFAULT_HEADERS), "quote")


def user_request() -> Request:
    """The account (`/api/user`): the plan's daily limit and the calls spent today; what
    `validate --probe` asks, since it spends no call of the quota it reports."""
    return Request("/api/user", {"fmt": "json"}, dict(DEFAULT_HEADERS), "user")


def parse_user(response: Response) -> Parsed:
    """OK for an account answer, else the refusal it states (a refused key: AUTH_FAILED)."""
    if response.status == 200 and response.body.lstrip()[:1] == b"{":
        return Parsed(Outcome.OK)
    return _failure(response) or _protocol("not an account answer")


def user_quota(response: Response) -> str | None:
    """"N of LIMIT calls left today (resets 00:00 GMT)" from an account answer."""
    try:
        body = json.loads(response.body)
        limit = int(body["dailyRateLimit"]) + int(body.get("extraLimit") or 0)
        return f"{limit - int(body['apiRequests']):,} of {limit:,} calls left today (resets 00:00 GMT)"
    except (ValueError, TypeError, KeyError):
        return None


def parse_daily(response: Response, start: dt.date, end: dt.date) -> Parsed:
    """Bars dated start..end from a JSON or CSV answer of /api/eod, in the answer's order.

    Rows whose cells are all plain (columns.py: JSON numbers, a YYYY-MM-DD date) are read
    and judged a column at a time (`_reasons`); every other row goes through `read_bar` on
    its own. Both ways give the same bars and rejects (tests/providers/test_eodhd_fast.py
    holds the fast path to reading every row with `read_bar`).
    """
    import numpy as np

    from .columns import cells, iso_days, number_columns

    rows, failure = read_rows(response)
    if failure:
        return failure
    dates, *numbers = cells(rows, ("date", *_SOURCES))
    days, plain_days = iso_days(dates)
    values, plain = number_columns(numbers)
    plain &= plain_days
    reasons = _reasons(values, plain)
    for i in np.flatnonzero(~plain):  # the careful path, one row at a time
        day, bar, reasons[i] = read_bar(rows[i])
        days[i] = np.datetime64("NaT") if day is None else day
        values[i] = [bar.get(name, math.nan) for name in _COLUMNS]
    dated = ~np.isnat(days)
    shown = ~dated | ((days >= np.datetime64(start)) & (days <= np.datetime64(end)))
    failed = reasons != None  # noqa: E711 - elementwise on an object array
    keep = shown & ~failed
    rejected = tuple({"date": str(rows[i].get("date")), "reason": reasons[i], "raw": rows[i]}
                     for i in np.flatnonzero(shown & failed))
    bars = _bar_frame(days[keep], values[keep])
    return Parsed(Outcome.OK if len(bars) or rejected else Outcome.EMPTY, bars=bars,
                  actions=_no_actions(), rejected=rejected)


def parse_quote(response: Response) -> Parsed:
    """A real-time quote: ts (UTC), price, open, high, low, prev_close, change, change_pct
    (percent), volume. "NA" fields are NaN; no timestamp or close means EMPTY."""
    rows, failure = read_rows(response, csv_allowed=False, single=True)
    if failure:
        return failure
    quotes, rejected = [], []
    for row in rows:
        ts, price = _utc(row.get("timestamp")), _float(row.get("close"))
        if ts is None or not price > 0:
            if any(_number(row.get(k)) is not None for k in ("timestamp", "close", "open")):
                rejected.append({"date": str(row.get("timestamp")), "reason": "missing_value:close", "raw": row})
            continue  # an all-"NA" reply is no quote, not a bad row
        quotes.append({"ts": ts, **{name: _float(row.get(key)) for name, key in _QUOTE_FIELDS.items()}})
    if not quotes:
        return Parsed(Outcome.EMPTY, rejected=tuple(rejected), message="no quote (fields are NA)")
    frame = frame_of(quotes, ("ts", *_QUOTE_FIELDS), {"ts": "datetime64[us, UTC]"})
    return Parsed(Outcome.OK, quotes=frame, rejected=tuple(rejected))


# ---------------------------------------------------------------- reading the answer


def _failure(response: Response) -> Parsed | None:
    """The outcome of an answer that is not data (None when it is data)."""
    if response.status == 200 and response.body.lstrip()[:1] == b"[":
        return None  # rows: what every check below concludes, without reading the text
    text, status = response.text.strip(), response.status
    low = text.lower()
    html = text.startswith("<")  # by shape: EODHD sends plain text as text/html too
    message = _TOKEN.sub(r"\1***", "HTML page" if html else " ".join(text.split()))[:200]
    if status == 402 or (not text.startswith("[") and "exceeded your daily" in low):
        return Parsed(Outcome.QUOTA_EXHAUSTED, message=message)
    if status == 429:
        left = response.header("x-ratelimit-remaining")
        return Parsed(Outcome.RATE_LIMITED, message=message + (f" (remaining {left})" if left else ""),
                      retry_after=response.retry_after())
    if status == 401 or low == "unauthenticated":
        return Parsed(Outcome.AUTH_FAILED, message=message)
    if status == 403:
        return Parsed(Outcome.NOT_ENTITLED, message=message)
    if low.startswith("ticker not found") or (status == 404 and not html):
        return Parsed(Outcome.SYMBOL_NOT_FOUND, message=message)
    if status != 200 or html or not text:
        return Parsed(Outcome.PROTOCOL_ERROR, message=f"HTTP {status}: {message or 'empty body'}")
    return None


def read_rows(response: Response, csv_allowed: bool = True,
          single: bool = False) -> tuple[list[dict[str, Any]], Parsed | None]:
    """The body's rows as dicts with lower-case keys, or the Parsed saying why not."""
    failure = _failure(response)
    if failure:
        return [], failure
    text = response.text.lstrip("\ufeff").strip()
    if csv_allowed and not text.startswith(("[", "{")):
        return _csv_rows(text)
    try:
        data = json.loads(text)
    except ValueError:
        return [], _protocol("truncated or garbled JSON")
    data = [data] if single and isinstance(data, dict) else data
    if not isinstance(data, list) or not set(map(type, data)) <= {dict}:  # json.loads makes no subclass
        return [], _protocol(f"expected a list of rows, got: {text[:80]}")
    if all(key == key.lower() for key in set().union(*data)):  # JSON keys are str
        return data, None  # already as wanted: no copy
    return [{str(k).lower(): v for k, v in row.items()} for row in data], None


def _csv_rows(text: str) -> tuple[list[dict[str, Any]], Parsed | None]:
    lines = list(csv.reader(text.splitlines()))
    names = [name.strip().lower().replace(" ", "_") for name in lines[0]] if lines else []
    if not {"date", "open", "high", "low", "close", "volume"} <= set(names):
        return [], _protocol(f"not EODHD CSV (header: {','.join(names)[:80]})")
    body = [cells for cells in lines[1:] if cells]
    body = body[:-1] if body and is_count_line(body[-1]) else body  # the trailing row count
    return [dict(zip(names, cells + [""] * (len(names) - len(cells)))) for cells in body], None


def read_bar(row: dict[str, Any]) -> tuple[dt.date | None, dict[str, float], str | None]:
    """(date, values, reason): reason is None when the row is a bar; first problem wins."""
    try:
        day = dt.date.fromisoformat(str(row.get("date")).strip()[:10])
    except ValueError:
        return None, {}, "bad_date"
    values = {name: _number(row.get(source)) for name, source in _COLUMNS.items()}
    if all(value is None for value in values.values()):
        return day, {}, "all_null"
    for name, value in values.items():
        if name != "adj_close" and (value is None or value == "bad"):
            return day, {}, f"{'missing_value' if value is None else 'not_a_number'}:{name}"
        if name not in ("adj_close", "volume") and value == 0:
            return day, {}, f"zero_price:{name}"  # EODHD's 0 means "unknown"
    if values["adj_close"] == "bad":
        return day, {}, "not_a_number:adj_close"
    return day, {**values, "adj_close": values["adj_close"] or math.nan}, None


def _reasons(values: "np.ndarray", plain: "np.ndarray") -> "np.ndarray":
    """`read_bar`'s verdict on each plain row of `values` (columns as _SOURCES), a column at a
    time: None for a bar, else the first problem in `read_bar`'s order. A zero adj_close
    becomes NaN in place. Rows that are not plain get None: the caller reads them with `read_bar`."""
    import numpy as np

    reasons = np.full(len(values), None, dtype=object)
    bad = ~np.isfinite(values) & plain[:, None]  # JSON's NaN and Infinity literals
    zero = (values == 0) & plain[:, None]
    values[zero[:, _ADJ], _ADJ] = np.nan  # `values["adj_close"] or math.nan`
    if not (bad.any() or zero[:, :4].any()):
        return reasons
    for reason, broken in reversed(_checks(bad, zero)):  # the first problem wins
        reasons[broken] = reason
    return reasons


def _checks(bad: "np.ndarray", zero: "np.ndarray") -> list[tuple[str, "np.ndarray"]]:
    """`read_bar`'s checks in its order, as (reason, rows breaking it)."""
    checks = []
    for j, name in enumerate(_COLUMNS):
        if name != "adj_close":
            checks.append((f"not_a_number:{name}", bad[:, j]))
        if name not in ("adj_close", "volume"):
            checks.append((f"zero_price:{name}", zero[:, j]))
    return checks + [("not_a_number:adj_close", bad[:, _ADJ])]


def _bar_frame(days: "np.ndarray", values: "np.ndarray") -> "pd.DataFrame":
    """BAR_COLUMNS from datetime64[D] days and float64 values (columns as _SOURCES)."""
    import pandas as pd

    frame = pd.DataFrame(values, columns=_value_index())  # BAR_COLUMNS after "date"
    frame.insert(0, "date", days.astype("datetime64[us]"))
    return frame


@functools.lru_cache(maxsize=1)
def _value_index() -> "pd.Index":
    """The value columns' labels, built once. Object dtype: an Index of pandas' arrow-backed
    str rebuilds its lookup table on every new frame (40 µs a symbol in validate_bars)."""
    import pandas as pd

    return pd.Index(list(_COLUMNS), dtype=object)


def _no_actions() -> "pd.DataFrame":
    """EOD answers carry no actions: an empty actions frame (a copy of one built once)."""
    return _empty_actions().copy(deep=False)  # copy-on-write: changing one never changes the other


@functools.lru_cache(maxsize=1)
def _empty_actions() -> "pd.DataFrame":
    return frame_of([], ("date", "kind", "value"), {"kind": "str"})


# -------------------------------------------------------------------------- helpers


def _number(value: Any) -> float | str | None:
    """A finite float, None for a missing-value token, "bad" for anything else."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _MISSING):
        return None
    if isinstance(value, bool):
        return "bad"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float64
        return "bad"
    return number if math.isfinite(number) else "bad"


def _float(value: Any) -> float:
    number = _number(value)
    return number if isinstance(number, float) else math.nan


def _utc(value: Any) -> dt.datetime | None:
    number = _number(value)
    try:
        return dt.datetime.fromtimestamp(number, dt.timezone.utc) if isinstance(number, float) else None
    except (OverflowError, OSError, ValueError):
        return None


def _protocol(message: str) -> Parsed:
    return Parsed(Outcome.PROTOCOL_ERROR, message=_TOKEN.sub(r"\1***", message))


def frame_of(rows: list[dict], columns: tuple[str, ...],
           types: Mapping[str, str] | None = None) -> "pd.DataFrame":
    """Rows to a frame of `columns`; date is datetime64[us], others float64 unless `types` says."""
    return records_frame(rows, columns, {"date": "datetime64[us]", **(types or {})})


def api_path(endpoint: str, name: str) -> str:
    return f"/api/{endpoint}/{quote(name, safe='-.')}"


# --------------------------------------------------------------------------- VENDOR


VENDOR = Vendor(NAME, BASE_URL, KEY_PARAM, DEFAULT_LIMITS, spell=vendor_symbol, daily=daily_request,
                parse_daily=parse_daily, headers=DEFAULT_HEADERS, reset_zone=QUOTA_RESET_ZONE,
                quotes=Quotes(real_time_request, parse_quote),
                probe=lambda spelled, today: Probe(user_request(), parse_user, user_quota))
