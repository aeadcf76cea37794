"""EODHD's exchange-wide answers: one day of bars for a whole exchange
(`/api/eod-bulk-last-day/{EX}`, 100 calls) and the tickers an exchange lists
(`/api/exchange-symbol-list/{EX}`). Pure, like eodhd.py, whose answer reading they share.

No command asks for them yet: they are tested against PROVIDERS.md's rows, for the
operations issue (universe refresh, bulk nightly loads) to wire in.
"""

from __future__ import annotations

import datetime as dt
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


def bulk_last_day_request(exchange: str, day: dt.date | None = None) -> Request:
    """Every ticker's bar for the exchange's last day (or `day`); costs BULK_COST calls."""
    params = {"fmt": "json", **({"date": day.isoformat()} if day else {})}
    return Request(api_path("eod-bulk-last-day", _exchange(exchange)), params,
                   dict(DEFAULT_HEADERS), "bulk_last_day", cost=BULK_COST)


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


def _found(rows: list, rejected: list) -> Outcome:
    return Outcome.OK if rows or rejected else Outcome.EMPTY


def _exchange(exchange: str) -> str:
    code = exchange.strip().upper()
    if code not in _SUFFIX_OF and code not in ("INDX", "FOREX"):
        raise ValueError(f"eodhd: unknown exchange code {exchange!r}: use one of EXCHANGES' values")
    return code
