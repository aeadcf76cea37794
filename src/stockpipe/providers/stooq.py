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
      which float() reads without noise: no rounding.
    * The CSV is split- AND dividend-adjusted as of the download day, though its columns
      say Open..Close (AAPL's close of 2018-01-02 comes as 40.30; it traded at 172.26:
      172.26 / 4 for the 2020 split is 43.07, the dividends since make the rest), and it
      reports no actions. `VENDOR.adjusted` is basis.UNREPORTED: the request reaches today
      and only the answer's newest bar is stored (its close as traded and as adj_close);
      the older ones are rejected `adjusted_only` (basis.keep_anchor). `parse_daily`
      returns every bar of the window as sent, and the newest date as `basis`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

from ..calendars import DEFAULT_SUFFIXES
from .basis import UNREPORTED
from .rows import CORE, build, csv_lines, csv_tuples, fail, iso_date
from .vendor import Vendor
from .wire import Outcome, Parsed, Request, Response

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
_NOT_FOUND = ("No data", "Brak danych")


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
        return fail(Outcome.RATE_LIMITED, "HTTP 429", retry_after=response.retry_after())
    text = response.text.lstrip("\ufeff \t\r\n").rstrip()
    if response.status != 200:
        return fail(Outcome.PROTOCOL_ERROR, f"HTTP {response.status}: {text[:60]!r}")
    refusal = classify(text)
    if refusal is not None:
        return refusal
    rows = _csv_rows(text)
    if isinstance(rows, Parsed):
        return rows
    newest = max(filter(None, (iso_date(row[0]) for row in rows)), default=None)
    return replace(build(rows, start, end, CORE), basis=newest)


def classify(text: str) -> Parsed | None:
    """The refusal a (stripped) body states, or None when it may be the CSV."""
    low = text.lower()
    if text in _NOT_FOUND:
        return fail(Outcome.SYMBOL_NOT_FOUND, text)
    if "daily hits limit" in low:
        return fail(Outcome.QUOTA_EXHAUSTED, text)
    if "requires javascript" in low or "verify your browser" in low:
        return fail(Outcome.QUOTA_EXHAUSTED, "blocked by Stooq's JavaScript browser check")
    if "apikey" in low:
        return fail(Outcome.AUTH_FAILED, text)
    if not text or text.startswith("<"):
        return fail(Outcome.PROTOCOL_ERROR, "an empty body" if not text else "an unexpected HTML page")
    return None


# ----------------------------------------------------------------------------- helpers


def _csv_rows(text: str) -> list[tuple] | Parsed:
    """`Date,Open,High,Low,Close,Volume` -> (date text, fields, raw, preset reason) rows."""
    lines = csv_lines(text)
    if lines is None:
        return fail(Outcome.PROTOCOL_ERROR, "unreadable CSV")
    header = [_COLUMNS.get(cell.strip().lower(), cell) for cell in lines[0]]
    if header[0] != "date" or not set(CORE) <= set(header):
        return fail(Outcome.PROTOCOL_ERROR, f"not a CSV of daily bars: {text[:60]!r}")
    return csv_tuples(lines, header)


VENDOR = Vendor(NAME, BASE_URL, KEY_PARAM, DEFAULT_LIMITS, spell=vendor_symbol, daily=daily_request,
                parse_daily=parse_daily, adjusted=UNREPORTED)
