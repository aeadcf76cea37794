"""EODHD (eodhd.com): the requests to send and what the answers mean. Pure.

`GET /api/eod/{TICKER}.{EXCHANGE}?fmt=json&from=..&to=..` (daily bars), plus
`/api/real-time/{T}.{EX}` (a quote), `/api/eod-bulk-last-day/{EX}` (one day for a whole
exchange, 100 calls) and `/api/exchange-symbol-list/{EX}`. The key goes in `api_token`,
added by the HTTP layer. See PROVIDERS.md (eodhd/).

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote

from .base import BAR_COLUMNS
from .rows import records_frame, retry_after_http
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
QUOTA_RESET_ZONE = "UTC"  # for ledger.Ledger(reset_zone=...): GMT has no daylight saving
BULK_COST = 100

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
_SUFFIX_OF = {code: suffix for suffix, code in EXCHANGES.items()}
_COLUMNS = {"open": "open", "high": "high", "low": "low", "close": "close",
            "adj_close": "adjusted_close", "volume": "volume"}  # ours -> EODHD's
_QUOTE_FIELDS = {"price": "close", "open": "open", "high": "high", "low": "low",
                 "prev_close": "previousclose", "change": "change", "change_pct": "change_p",
                 "volume": "volume"}  # ours -> EODHD's (keys lower-cased)
_SOURCES = tuple(_COLUMNS.values())
_ADJ = list(_COLUMNS).index("adj_close")
_MISSING = frozenset({"", "na", "n/a", "null", "nan", "none", "-"})
_TOKEN = re.compile(r"(api_token=)[^&\s\"'<>]+", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedSymbols(Parsed):
    """A Parsed for the symbol list: `symbols` holds one dict per listed ticker."""

    symbols: tuple[dict[str, Any], ...] = ()


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


def canonical_symbol(code: str, exchange: str) -> str:
    """EODHD's ticker code on `exchange` back to the canonical symbol (BRK-B, US -> BRK.B).

    Raises:
        ValueError: an exchange code not in EXCHANGES (nor INDX/FOREX).
    """
    code, exchange = code.strip().upper(), exchange.strip().upper()
    if exchange in ("INDX", "FOREX"):
        return f"^{code}" if exchange == "INDX" else f"{code}=X"
    if exchange not in _SUFFIX_OF:
        raise ValueError(f"eodhd: unknown exchange code {exchange!r}: add it to eodhd.EXCHANGES")
    suffix = _SUFFIX_OF[exchange]
    return code.replace("-", ".") + (f".{suffix}" if suffix else "")


def daily_request(symbol: str, start: dt.date, end: dt.date, fmt: str = "json") -> Request:
    """Daily bars start..end (inclusive, exchange dates); fmt "json" or "csv".

    `symbol` is already in EODHD's spelling (`vendor_symbol`, or the config's symbol map).

    Raises:
        ValueError: end before start, unknown fmt, or an unknown exchange suffix.
    """
    if end < start or fmt not in ("json", "csv"):
        raise ValueError(f"eodhd daily request: need start <= end and fmt json/csv (got {start}, {end}, {fmt})")
    params = {"fmt": fmt, "period": "d", "from": start.isoformat(), "to": end.isoformat()}
    return Request(_path("eod", symbol), params, dict(DEFAULT_HEADERS), "daily")


def bulk_last_day_request(exchange: str, day: dt.date | None = None) -> Request:
    """Every ticker's bar for the exchange's last day (or `day`); costs BULK_COST calls."""
    params = {"fmt": "json", **({"date": day.isoformat()} if day else {})}
    return Request(_path("eod-bulk-last-day", _exchange(exchange)), params,
                   dict(DEFAULT_HEADERS), "bulk_last_day", cost=BULK_COST)


def symbol_list_request(exchange: str) -> Request:
    """The tickers listed on an exchange (EODHD code: US, LSE, XETRA, TSE, ...)."""
    return Request(_path("exchange-symbol-list", _exchange(exchange)), {"fmt": "json"},
                   dict(DEFAULT_HEADERS), "symbol_list")


def quote_request(symbol: str) -> Request:
    """The real-time (delayed) quote of one symbol."""
    return Request(_path("real-time", vendor_symbol(symbol)), {"fmt": "json"},
                   dict(DEFAULT_HEADERS), "quote")


def parse_daily(response: Response, start: dt.date, end: dt.date, *, by_row: bool = False) -> Parsed:
    """Bars dated start..end from a JSON or CSV answer of /api/eod, in the answer's order.

    Rows whose cells are all plain (columns.py: JSON numbers, a YYYY-MM-DD date) are read
    and judged a column at a time (`_reasons`); every other row, and every row when
    `by_row`, goes through `_bar` on its own. Both ways give the same bars and rejects:
    `by_row` is the reference tests/providers/test_eodhd_fast.py holds the fast path to.
    """
    import numpy as np

    from .columns import cells, iso_days, number_columns

    rows, failure = _rows(response)
    if failure:
        return failure
    dates, *numbers = cells(rows, ("date", *_SOURCES))
    days, plain_days = iso_days(dates)
    values, plain = number_columns(numbers)
    plain &= plain_days & (not by_row)
    reasons = _reasons(values, plain)
    for i in np.flatnonzero(~plain):  # the careful path, one row at a time
        day, bar, reasons[i] = _bar(rows[i])
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


def parse_bulk_last_day(response: Response, exchange: str) -> Parsed:
    """One bar per ticker: columns `symbol` (canonical) then BAR_COLUMNS."""
    rows, failure = _rows(response, csv_allowed=False)
    if failure:
        return failure
    bars, rejected = [], []
    for row in rows:
        day, bar, reason = _bar(row)
        try:
            symbol = canonical_symbol(str(row.get("code") or ""), str(row.get("exchange_short_name") or exchange))
        except ValueError:
            reason = reason or "unknown_exchange"
        if reason or not row.get("code"):
            rejected.append({"date": str(row.get("date")), "reason": reason or "missing_value:code", "raw": row})
        else:
            bars.append({"symbol": symbol, "date": day, **bar})
    frame = _frame(bars, ("symbol", *BAR_COLUMNS), {"symbol": "str"})
    return Parsed(_found(bars, rejected), bars=frame, rejected=tuple(rejected))


def parse_symbol_list(response: Response, exchange: str) -> ParsedSymbols:
    """Listed tickers as dicts: symbol (canonical), code, name, country, exchange (the
    venue, e.g. NASDAQ), currency, type, isin (None when not sent).

    Raises:
        ValueError: `exchange` (the code asked for) is not in EXCHANGES.
    """
    exchange = _exchange(exchange)
    rows, failure = _rows(response, csv_allowed=False)
    if failure:
        return ParsedSymbols(failure.outcome, message=failure.message, retry_after=failure.retry_after)
    symbols, rejected = [], []
    for row in rows:
        if not row.get("code"):
            rejected.append({"date": "", "reason": "missing_value:code", "raw": row})
            continue
        fields = {k: row.get(k) for k in ("code", "name", "country", "exchange", "currency", "type", "isin")}
        symbols.append({"symbol": canonical_symbol(str(row["code"]), exchange), **fields})
    return ParsedSymbols(_found(symbols, rejected), rejected=tuple(rejected), symbols=tuple(symbols))


def parse_quote(response: Response) -> Parsed:
    """A real-time quote: ts (UTC), price, open, high, low, prev_close, change, change_pct
    (percent), volume. "NA" fields are NaN; no timestamp or close means EMPTY."""
    rows, failure = _rows(response, csv_allowed=False, single=True)
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
    frame = _frame(quotes, ("ts", *_QUOTE_FIELDS), {"ts": "datetime64[us, UTC]"})
    return Parsed(Outcome.OK, quotes=frame, rejected=tuple(rejected))


# ---------------------------------------------------------------- reading the answer


def _failure(response: Response) -> Parsed | None:
    """The outcome of an answer that is not data (None when it is data)."""
    if response.status == 200 and response.body.lstrip()[:1] == b"[":
        return None  # rows: what every check below concludes, without reading the text
    text, status = response.text.strip(), response.status
    low, headers = text.lower(), {k.lower(): v for k, v in response.headers.items()}
    html = text.startswith("<")  # by shape: EODHD sends plain text as text/html too
    message = _TOKEN.sub(r"\1***", "HTML page" if html else " ".join(text.split()))[:200]
    if status == 402 or (not text.startswith("[") and "exceeded your daily" in low):
        return Parsed(Outcome.QUOTA_EXHAUSTED, message=message)
    if status == 429:
        left = headers.get("x-ratelimit-remaining")
        return Parsed(Outcome.RATE_LIMITED, message=message + (f" (remaining {left})" if left else ""),
                      retry_after=retry_after_http(headers))
    if status == 401 or low == "unauthenticated":
        return Parsed(Outcome.AUTH_FAILED, message=message)
    if status == 403:
        return Parsed(Outcome.NOT_ENTITLED, message=message)
    if low.startswith("ticker not found") or (status == 404 and not html):
        return Parsed(Outcome.SYMBOL_NOT_FOUND, message=message)
    if status != 200 or html or not text:
        return Parsed(Outcome.PROTOCOL_ERROR, message=f"HTTP {status}: {message or 'empty body'}")
    return None


def _rows(response: Response, csv_allowed: bool = True,
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
    return [dict(zip(names, cells + [""] * (len(names) - len(cells)))) for cells in lines[1:] if cells], None


def _bar(row: dict[str, Any]) -> tuple[dt.date | None, dict[str, float], str | None]:
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
    """`_bar`'s verdict on each plain row of `values` (columns as _SOURCES), a column at a
    time: None for a bar, else the first problem in `_bar`'s order. A zero adj_close
    becomes NaN in place. Rows that are not plain get None: the caller reads them with `_bar`."""
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
    """`_bar`'s checks in its order, as (reason, rows breaking it)."""
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
    return _frame([], ("date", "kind", "value"), {"kind": "str"})


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


def _found(rows: list, rejected: list) -> Outcome:
    return Outcome.OK if rows or rejected else Outcome.EMPTY


def _protocol(message: str) -> Parsed:
    return Parsed(Outcome.PROTOCOL_ERROR, message=_TOKEN.sub(r"\1***", message))


def _frame(rows: list[dict], columns: tuple[str, ...],
           types: Mapping[str, str] | None = None) -> "pd.DataFrame":
    """Rows to a frame of `columns`; date is datetime64[us], others float64 unless `types` says."""
    return records_frame(rows, columns, {"date": "datetime64[us]", **(types or {})})


def _exchange(exchange: str) -> str:
    code = exchange.strip().upper()
    if code not in _SUFFIX_OF and code not in ("INDX", "FOREX"):
        raise ValueError(f"eodhd: unknown exchange code {exchange!r}: use one of EXCHANGES' values")
    return code


def _path(endpoint: str, name: str) -> str:
    return f"/api/{endpoint}/{quote(name, safe='-.')}"
