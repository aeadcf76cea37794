"""EODHD's exchange-wide answers: one day of bars, splits or dividends for a whole
exchange (`/api/eod-bulk-last-day/{EX}`, `type=splits|dividends`, 100 calls each) and the
tickers an exchange lists (`/api/exchange-symbol-list/{EX}`). Pure, like eodhd.py, whose
answer reading they share.

`fetch` asks for the bulk day when it costs less than a call per symbol (stages/bulk.py
decides, pipeline/bulkday.py asks); `universe refresh` reads the symbol lists
(pipeline/universe.py).

Quirks (PROVIDERS.md, and what users of bulk end-of-day endpoints report):
    * `code` is the ticker without its exchange (`AAPL`, `BRK-B`); `exchange_short_name`
      names the exchange. A row is matched to a symbol by the ticker part of the symbol's
      EODHD spelling (the symbol map's too), never by guessing a suffix.
    * A ticker that did not trade that day may come with an older `date` (its last bar,
      carried forward), and an answer fetched early may lack tickers altogether: both are
      "not in the bulk answer" for that day, and the symbol is asked on its own.
    * `adjusted_close` of the day's bar is the close adjusted as of that day: stored as
      adj_close like the per-symbol answer's.
    * Splits come as "new/old" text (`"2.000000/1.000000"`); a dividend's `value` or
      `unadjustedValue` is cash per share as declared (the latter preferred).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any

from .base import BAR_COLUMNS
from .eodhd import DEFAULT_HEADERS, EXCHANGES, api_path, frame_of, read_bar, read_rows
from .wire import Outcome, Parsed, Request, Response

BULK_COST = 100
_SUFFIX_OF = {code: suffix for suffix, code in EXCHANGES.items()}


@dataclass(frozen=True)
class ParsedSymbols(Parsed):
    """A Parsed for the symbol list: `symbols` holds one dict per listed ticker."""

    symbols: tuple[dict[str, Any], ...] = ()


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


BULK_TYPES = ("eod", "splits", "dividends")


def bulk_last_day_request(exchange: str, day: dt.date | None = None, kind: str = "eod") -> Request:
    """Every ticker's bar (or `kind` "splits"/"dividends") for the exchange's last day (or
    `day`, the `date=` parameter); costs BULK_COST calls.

    Raises:
        ValueError: an unknown exchange code or kind.
    """
    if kind not in BULK_TYPES:
        raise ValueError(f"eodhd bulk type {kind!r}: use one of {', '.join(BULK_TYPES)}")
    params = {"fmt": "json", **({"type": kind} if kind != "eod" else {}),
              **({"date": day.isoformat()} if day else {})}
    endpoint = "bulk_last_day" if kind == "eod" else f"bulk_{kind}"
    return Request(api_path("eod-bulk-last-day", _exchange(exchange)), params,
                   dict(DEFAULT_HEADERS), endpoint, cost=BULK_COST)


def ticker_of(spelled: str) -> str:
    """The bulk answer's `code` for an EODHD spelling: BRK-B.US -> BRK-B."""
    head, dot, _ = spelled.strip().upper().rpartition(".")
    return head if dot else spelled.strip().upper()


def exchange_of(spelled: str) -> str | None:
    """The EODHD exchange code of a spelling (BRK-B.US -> US), None without one."""
    head, dot, tail = spelled.strip().upper().rpartition(".")
    return tail if dot and head and tail else None


def bulk_rows(response: Response, day: dt.date) -> tuple[dict[str, dict[str, Any]], Parsed | None]:
    """The rows of a bulk day answer dated `day`, by upper-cased `code` (the first row of a
    code wins), or the Parsed saying why the answer holds none. Rows dated otherwise (a
    ticker's carried-forward last bar) are left out: that ticker is not in the answer."""
    rows, failure = read_rows(response, csv_allowed=False)
    if failure:
        return {}, failure
    found: dict[str, dict[str, Any]] = {}
    wanted = day.isoformat()
    for row in rows:
        code = str(row.get("code") or "").strip().upper()
        if code and str(row.get("date") or "").strip()[:10] == wanted:
            found.setdefault(code, row)
    return found, None


def bulk_actions(response: Response, kind: str) -> tuple[dict[str, list[tuple[dt.date, str, float]]], Parsed | None]:
    """A bulk splits or dividends answer as code -> [(date, "split"|"dividend", value)]:
    a split's value is new/old (2.0 for "2.000000/1.000000"), a dividend's the cash per
    share as declared. Rows that cannot be read are left out (no bar depends on them)."""
    rows, failure = read_rows(response, csv_allowed=False)
    if failure:
        return {}, failure
    found: dict[str, list[tuple[dt.date, str, float]]] = {}
    for row in rows:
        code = str(row.get("code") or "").strip().upper()
        try:
            day = dt.date.fromisoformat(str(row.get("date")).strip()[:10])
        except ValueError:
            continue
        value = _split_ratio(row.get("split")) if kind == "splits" else _cash(row)
        if code and value is not None:
            found.setdefault(code, []).append((day, "split" if kind == "splits" else "dividend", value))
    return found, None


def _split_ratio(text: Any) -> float | None:
    new, slash, old = str(text or "").partition("/")
    try:
        ratio = float(new) / float(old) if slash else None
    except (ValueError, ZeroDivisionError):
        return None
    return ratio if ratio and ratio > 0 and ratio != float("inf") else None


def _cash(row: dict[str, Any]) -> float | None:
    for key in ("unadjustedvalue", "value", "dividend"):
        try:
            value = float(row.get(key))  # type: ignore[arg-type] - None raises TypeError
        except (TypeError, ValueError):
            continue
        if value > 0 and value != float("inf"):
            return value
    return None


def symbol_list_request(exchange: str) -> Request:
    """The tickers listed on an exchange (EODHD code: US, LSE, XETRA, TSE, ...)."""
    return Request(api_path("exchange-symbol-list", _exchange(exchange)), {"fmt": "json"},
                   dict(DEFAULT_HEADERS), "symbol_list")


def parse_bulk_last_day(response: Response, exchange: str) -> Parsed:
    """One bar per ticker: columns `symbol` (canonical) then BAR_COLUMNS."""
    rows, failure = read_rows(response, csv_allowed=False)
    if failure:
        return failure
    bars, rejected = [], []
    for row in rows:
        day, bar, reason = read_bar(row)
        try:
            symbol = canonical_symbol(str(row.get("code") or ""), str(row.get("exchange_short_name") or exchange))
        except ValueError:
            reason = reason or "unknown_exchange"
        if reason or not row.get("code"):
            rejected.append({"date": str(row.get("date")), "reason": reason or "missing_value:code", "raw": row})
        else:
            bars.append({"symbol": symbol, "date": day, **bar})
    frame = frame_of(bars, ("symbol", *BAR_COLUMNS), {"symbol": "str"})
    return Parsed(_found(bars, rejected), bars=frame, rejected=tuple(rejected))


def parse_symbol_list(response: Response, exchange: str) -> ParsedSymbols:
    """Listed tickers as dicts: symbol (canonical), code, name, country, exchange (the
    venue, e.g. NASDAQ), currency, type, isin (None when not sent).

    Raises:
        ValueError: `exchange` (the code asked for) is not in EXCHANGES.
    """
    exchange = _exchange(exchange)
    rows, failure = read_rows(response, csv_allowed=False)
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


def parse_symbol_file(data: bytes, exchange: str) -> ParsedSymbols:
    """A symbol list saved as a file: EODHD's JSON answer, or its CSV (`fmt=csv`, the
    default format: Code,Name,Country,Exchange,Currency,Type,Isin, any case, LF or CRLF).

    Raises:
        ValueError: `exchange` is not in EXCHANGES.
    """
    text = data.decode("utf-8-sig", errors="replace").strip()
    if text.startswith("["):
        return parse_symbol_list(Response(200, {}, text.encode()), exchange)
    lines = list(csv.DictReader(io.StringIO(text)))
    if not lines or "code" not in {str(k).strip().lower() for k in lines[0]}:
        return ParsedSymbols(Outcome.PROTOCOL_ERROR, message="not a symbol list (no Code column)")
    rows = [{str(k).strip().lower(): v for k, v in line.items() if k} for line in lines]
    return parse_symbol_list(Response(200, {}, json.dumps(rows).encode()), exchange)


def _found(rows: list, rejected: list) -> Outcome:
    return Outcome.OK if rows or rejected else Outcome.EMPTY


def _exchange(exchange: str) -> str:
    code = exchange.strip().upper()
    if code not in _SUFFIX_OF and code not in ("INDX", "FOREX"):
        raise ValueError(f"eodhd: unknown exchange code {exchange!r}: use one of EXCHANGES' values")
    return code
