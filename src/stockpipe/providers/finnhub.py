"""Finnhub (https://finnhub.io): daily and intraday candles, real-time quote. Pure.

Builds `wire.Request`s and reads `wire.Response`s; never sees the key (the HTTP layer adds
it as the `token` parameter). Wire format and outcomes: PROVIDERS.md, section finnhub/.

Decisions:
    * Symbols: Finnhub's US symbol list spells class shares with a dot (BRK.B) and other
      markets with Yahoo-style suffixes (VOD.L, 7203.T), like stockpipe's canonical form,
      so `vendor_symbol` only normalizes case. (A 2020 maintainer reply suggested BRK-B.)
    * Daily candles: `t` has been 00:00 UTC of the session date since mid-2021
      (finnhubio/Finnhub-API#449: "changed from new york to GMT"; #473: read in New York
      time it is the day before); before that it was 00:00 New York or the session's open,
      and non-US listings still show the open (#387: RELIANCE.NS at 03:45 UTC, 09:15 in
      Kolkata). So the session date is `rows.session_days`: a stamp at midnight UTC is that
      UTC date, any other time the date in the symbol's exchange zone (`zone`, from the
      symbol's exchange; New York by default). A daily request asks from the UTC midnight a
      day before `start` to the one two days after `end`, so every zone's stamps of those
      sessions are inside; the parse keeps start..end.
    * Daily candles are split-adjusted, intraday ones are not (#439: AAPL's 2012 daily
      close 14.69 beside its hourly 412.8; #502, the maintainer: "we do NOT adjust intraday
      data"); the answer does not say by which splits. `VENDOR.adjusted` says so: stockpipe
      keeps as traded only the answer's newest bar, which no later split can have adjusted
      (vendor.keep_anchor). adj_close stays NaN.
    * Intraday candles: session_date is the bar's date in the symbol's exchange zone, and
      request windows cover whole days of that zone (a Sydney session is one window and one
      session date, not two New York ones).
    * An `error` text decides before the status code: "access" -> NOT_ENTITLED (also the
      older 401 form), "API key" -> AUTH_FAILED, "limit" -> RATE_LIMITED.
    * A quote with no price (c=0 or null) is never stored: all zeros with d/dp null is
      SYMBOL_NOT_FOUND, anything else without a price or time is PROTOCOL_ERROR.
    * Prices are rounded to 4 dp (float noise); a zero price stands for "unknown" and
      rejects the row ("zero_price"); an all-null row is "all_null".
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pandas as pd

from .base import IntradayLimits
from .basis import UNREPORTED
from .rows import PRICES  # noqa: F401 - still public as finnhub.PRICES
from .rows import (BAD, candle_daily, candle_frame, candle_intraday, candle_row, epoch, flaw, json_number,
                   json_or_none, session_day, short)
from .vendor import DAY, Intraday, Quotes, Vendor
from .wire import Outcome, Parsed, Request, Response

NAME = "finnhub"
BASE_URL = "https://finnhub.io"
KEY_PARAM = "token"
DEFAULT_LIMITS: dict[str, int | None] = {
    "calls_per_second": 30,  # all plans
    "calls_per_minute": 60,  # free plan
    "calls_per_hour": None,
    "calls_per_day": None,  # no daily quota (maintainer statement)
}
QUOTA_RESETS = None  # no daily quota

NEW_YORK = ZoneInfo("America/New_York")
RESOLUTIONS = (1, 5, 15, 30, 60)  # intraday, minutes
_QUOTE = ("c", "d", "dp", "h", "l", "o", "pc", "t")
_ARRAYS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}


def vendor_symbol(symbol: str) -> str:
    """Finnhub's spelling of a canonical symbol: the same (BRK.B, VOD.L), upper-cased."""
    return symbol.strip().upper()


def daily_request(symbol: str, start: dt.date, end: dt.date) -> Request:
    """Daily candles for the sessions `start`..`end` of any exchange: from the UTC midnight
    before `start` to the one two days after `end` (parse_daily keeps start..end)."""
    return _candle_request(symbol, "D", start - DAY, end + DAY, "daily", dt.timezone.utc)


def intraday_request(symbol: str, interval: int | str, start: dt.date, end: dt.date,
                     zone: dt.tzinfo | None = None) -> Request:
    """Intraday candles of `interval` minutes (1, 5, 15, 30, 60) for the days start..end of
    `zone` (the symbol's exchange zone; New York by default).

    Raises:
        ValueError: an interval Finnhub does not offer.
    """
    return _candle_request(symbol, str(_minutes(interval)), start, end, "intraday", zone or NEW_YORK)


def quote_request(symbol: str) -> Request:
    """The real-time quote of `symbol`."""
    return Request("/api/v1/quote", {"symbol": vendor_symbol(symbol)}, endpoint="quote")


def _minutes(interval: int | str) -> int:
    """Minutes of an interval given as 5, "5", "5m", "5min" or "1h"; ValueError if not offered."""
    text = str(interval).strip().lower()
    hours = text.endswith("h")
    digits = text.removesuffix("h").removesuffix("min").removesuffix("m")
    minutes = int(digits) * (60 if hours else 1) if digits.isdigit() else None
    if minutes not in RESOLUTIONS:
        raise ValueError(f"finnhub intraday interval {interval!r}: choose one of {RESOLUTIONS} minutes")
    return minutes


def _candle_request(symbol: str, resolution: str, start: dt.date, end: dt.date, endpoint: str,
                    zone: dt.tzinfo) -> Request:
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    lo = dt.datetime.combine(start, dt.time(), zone)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone)
    params = {"symbol": vendor_symbol(symbol), "resolution": resolution,
              "from": str(int(lo.timestamp())), "to": str(int(hi.timestamp()) - 1)}
    return Request("/api/v1/stock/candle", params, endpoint=endpoint)


# ------------------------------------------------------------------------ parsing


def parse_daily(response: Response, start: dt.date, end: dt.date, zone: dt.tzinfo = NEW_YORK) -> Parsed:
    """Daily bars of the sessions start..end (rows.session_days in the exchange's `zone`)."""
    return candle_daily(_candles(response, lambda t: session_day(t, zone)), start, end, zone)


def parse_intraday(response: Response, start: dt.date | None = None, end: dt.date | None = None,
                   zone: dt.tzinfo = NEW_YORK) -> Parsed:
    """Intraday bars (ts UTC, session_date = the date in the exchange's `zone`) for sessions
    start..end (if given)."""
    local = lambda t: dt.datetime.fromtimestamp(t, zone).date()  # noqa: E731
    return candle_intraday(_candles(response, local), start, end, zone)


def parse_quote(response: Response) -> Parsed:
    """One quote: ts (UTC), price, open, high, low, prev_close, change, change_pct, volume."""
    body = _read(response)
    if isinstance(body, Parsed):
        return body
    if not set(_QUOTE) <= body.keys():
        return Parsed(Outcome.PROTOCOL_ERROR, message=f"not a quote: {short(response.text)}")
    values = {k: json_number(body[k]) for k in _QUOTE}
    if any(v is BAD for v in values.values()):
        return Parsed(Outcome.PROTOCOL_ERROR, message="quote: a field is not a number")
    if not values["c"]:  # 0 or null: never a price
        if not any(values.values()):
            return Parsed(Outcome.SYMBOL_NOT_FOUND, message="quote is all zeros: unknown symbol")
        return Parsed(Outcome.PROTOCOL_ERROR, message="quote without a price")
    if _epoch(body.get("t")) is None:
        return Parsed(Outcome.PROTOCOL_ERROR, message="quote without a time")
    names = (("price", "c"), ("open", "o"), ("high", "h"), ("low", "l"), ("prev_close", "pc"))
    row = {"ts": pd.Timestamp(_epoch(body["t"]), unit="s", tz="UTC"),
           **{name: _round(values[key], zero_is_unknown=True) for name, key in names},
           "change": _round(values["d"]), "change_pct": _round(values["dp"]), "volume": float("nan")}
    return Parsed(Outcome.OK, quotes=pd.DataFrame([row]).astype({"ts": "datetime64[us, UTC]"}))


def _read(response: Response) -> dict[str, Any] | Parsed:
    """The JSON object of a 200 body, or the Parsed that says why there is none."""
    body = json_or_none(response.body)
    error = body.get("error") if isinstance(body, dict) else None
    if error is not None or response.status != 200:
        return _refusal(response, "" if error is None else str(error))
    if not isinstance(body, dict):
        return Parsed(Outcome.PROTOCOL_ERROR, message=f"not a JSON object: {short(response.text)}")
    return body


def _refusal(response: Response, error: str) -> Parsed:
    """The outcome of an error status or of an `error` text (which decides first)."""
    text, status = error.lower(), response.status
    if "access" in text or status == 403:
        outcome = Outcome.NOT_ENTITLED
    elif "api key" in text or status == 401:
        outcome = Outcome.AUTH_FAILED
    elif "limit" in text or status == 429:
        outcome = Outcome.RATE_LIMITED
    else:
        outcome = Outcome.PROTOCOL_ERROR
    retry = response.retry_after() if outcome is Outcome.RATE_LIMITED else None
    message = short(error or response.text) or f"HTTP {status}"
    return Parsed(outcome, message=message, retry_after=retry)


def _candles(response: Response, day_of: Callable[[int], dt.date]
             ) -> tuple[pd.DataFrame, tuple[dict[str, Any], ...]] | Parsed:
    """(frame: ts UTC + open..volume, rejected rows dated by `day_of`), or the Parsed of a
    body with no candles."""
    body = _read(response)
    if isinstance(body, Parsed):
        return body
    status = body.get("s")
    if status == "no_data":
        return Parsed(Outcome.EMPTY, message="no_data")
    arrays = [body.get(k) for k in ("t", *_ARRAYS)]
    if status != "ok" or not all(isinstance(a, list) for a in arrays) or len({len(a) for a in arrays}) != 1:
        return Parsed(Outcome.PROTOCOL_ERROR, message=f"unreadable candles (s={status!r})")
    rows, rejected = [], []
    for i in range(len(arrays[0])):
        raw = {k: body[k][i] for k in ("t", *_ARRAYS)}
        t, values = _epoch(raw["t"]), {name: json_number(raw[k]) for k, name in _ARRAYS.items()}
        reason = "bad_date" if t is None else flaw(values)
        if reason:
            day = "" if t is None else day_of(t).isoformat()
            rejected.append({"date": day, "reason": reason, "raw": raw})
        else:
            rows.append(candle_row(t, values))
    return candle_frame(rows, tuple(_ARRAYS.values()), "s"), tuple(rejected)


_MAX_EPOCH = 1e10  # seconds (year 2286): anything later is garbage


def _epoch(value: Any) -> int | None:
    """Whole epoch seconds, or None when missing, not a whole number or out of range."""
    return epoch(value, _MAX_EPOCH)


def _round(value: float | None, zero_is_unknown: bool = False) -> float:
    """4 dp (the vendor's precision); NaN for null, and for 0 where 0 means "unknown"."""
    return float("nan") if value is None or (zero_is_unknown and not value) else round(value, 4)


# Finnhub publishes no intraday retention: a year is the most stockpipe asks for, a month a call.
VENDOR = Vendor(NAME, BASE_URL, KEY_PARAM, DEFAULT_LIMITS, spell=vendor_symbol, daily=daily_request,
                parse_daily=parse_daily, quotes=Quotes(quote_request, parse_quote),
                intraday=Intraday(intraday_request, parse_intraday, IntradayLimits(30 * DAY, 365 * DAY), NEW_YORK),
                zoned=True, adjusted=UNREPORTED)
