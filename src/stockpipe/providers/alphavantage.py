"""Alpha Vantage: pure request building and response parsing (no I/O, never the key).

`GET https://www.alphavantage.co/query?function=...&symbol=...&apikey=KEY`. Every answer is
HTTP 200, so only the body tells data from refusal (PROVIDERS.md, alphavantage/).

Decisions:
    * The body's shape decides, not Content-Type: a leading `{` is JSON even on datatype=csv.
    * `classify` follows PROVIDERS.md's order. The per-second text also says "25 requests per
      day" and "premium endpoints", so it is tested first; "premium" alone proves nothing
      (every AV text links to /premium/), so the premium rule needs "premium endpoint/feature".
    * Prices arrive as 4-dp decimal text, which float() reads without noise: no rounding.
    * outputsize=full is premium on free keys: `endpoint` names the size ("daily:full"), so a
      NOT_ENTITLED answer retires only that size, and VENDOR retries such a refusal once
      with outputsize=compact (PROVIDERS.md premium_outputsize_full: the last 100 rows).
    * Intraday (TIME_SERIES_INTRADAY, no `month`) returns the latest bars whatever the
      window: the trailing 30 days (outputsize=full) or the latest 100 bars (compact), so
      one request per symbol, compact when 100 bars cover the window.
    * A quote's `ts` is 16:00 New York on `07. latest trading day`, in UTC: the body has no
      time, and polling again during a session restates the same key.
    * `message` masks anything key-like: AV echoes the key when the daily quota is spent.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import replace
from functools import partial
from typing import Any, Callable

from ..calendars import DEFAULT_SUFFIXES
from ..errors import StockpipeError
from .base import IntradayLimits
from .rows import CORE, bar_values, build, csv_lines, csv_tuples, fail, iso_date, number
from .vendor import DAY, Intraday, Quotes, Vendor
from .wire import Outcome, Parsed, Request, Response

NAME = "alphavantage"
BASE_URL = "https://www.alphavantage.co"
KEY_PARAM = "apikey"
DEFAULT_LIMITS: dict[str, int | None] = {"calls_per_second": 1, "calls_per_minute": None,
                                         "calls_per_hour": None, "calls_per_day": 25}
QUOTA_RESETS = "daily; AV publishes no reset time (assume the next UTC day)"
INTERVALS = ("1min", "5min", "15min", "30min", "60min")
OUTPUT_SIZES = ("compact", "full")
COMPACT_ROWS = 100  # the rows outputsize=compact returns
# Yahoo-style suffix -> the suffix AV documents (TSCO.LON, SHOP.TRT, GPV.TRV, MBG.DEX, ...).
SUFFIXES = {".L": ".LON", ".TO": ".TRT", ".V": ".TRV", ".DE": ".DEX", ".BO": ".BSE", ".SS": ".SHH",
            ".SZ": ".SHZ"}

_FIELDS = {"open": "open", "high": "high", "low": "low", "close": "close", "adjusted close": "adj_close",
           "volume": "volume", "dividend amount": "dividend", "split coefficient": "split", "price": "price",
           "previous close": "prev_close", "change": "change", "change percent": "change_pct",
           "latest trading day": "day"}
_QUOTE = ("price", "open", "high", "low", "prev_close", "change", "change_pct", "volume")
_BURST = re.compile(r"spreading out your free API requests|requests? per second", re.I)
_DAILY = re.compile(r"rate limit is \d+ requests per day|remove all daily rate limits", re.I)
_PREMIUM = re.compile(r"premium (endpoint|feature|function|parameter)|is a premium", re.I)
_DEMO = re.compile(r"\bdemo\b.*API key", re.I)
_KEYLIKE = re.compile(r"(?<=API key as )\S+|\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{16,}\b", re.I)


def vendor_symbol(symbol: str) -> str:
    """AV's spelling of a canonical (Yahoo-style) symbol.

    Rule: no suffix stays (MSFT); a one-letter US share class takes a hyphen (BRK.B -> BRK-B,
    AV's listing spelling; a dot would read as an exchange suffix); an exchange suffix becomes
    the one AV documents (VOD.L -> VOD.LON, SHOP.TO -> SHOP.TRT, SAP.DE -> SAP.DEX,
    RELIANCE.BO -> RELIANCE.BSE, 600104.SS -> 600104.SHH).

    Raises:
        ValueError: AV documents no spelling for it (7203.T, ^GSPC, EURUSD=X).
    """
    symbol = symbol.strip().upper()
    head, dot, tail = symbol.partition(".")
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9\-]*", head) or (dot and not tail.isalnum()):
        raise ValueError(f"alphavantage cannot spell {symbol!r}: use a ticker such as MSFT or BRK.B")
    if dot and "." + tail in SUFFIXES:
        return head + SUFFIXES["." + tail]
    if dot and (len(tail) > 1 or "." + tail in DEFAULT_SUFFIXES):
        raise ValueError(f"alphavantage documents no .{tail} symbols ({symbol}): use another provider")
    return f"{head}-{tail}" if dot else symbol


def outputsize_for(start: dt.date, today: dt.date) -> str:
    """"compact" when `start` is within the last 100 sessions up to `today`, else "full".

    Weekdays stand in for sessions: holidays only make the count larger (the safe side).
    """
    weeks, rest = divmod(max((today - start).days + 1, 0), 7)
    weekdays = weeks * 5 + sum((start.weekday() + i) % 7 < 5 for i in range(rest))
    return "compact" if weekdays <= COMPACT_ROWS else "full"


def daily_request(symbol: str, start: dt.date, end: dt.date, *, today: dt.date | None = None,
                  outputsize: str | None = None, datatype: str = "json", adjusted: bool = False) -> Request:
    """TIME_SERIES_DAILY (raw OHLCV; `adjusted`: _DAILY_ADJUSTED) for `symbol` in AV spelling.

    Args:
        today: the pipeline clock's date, to choose the output size (default: today in UTC).
        outputsize: force "compact" or "full" (e.g. compact after NOT_ENTITLED on full).

    Raises:
        ValueError: a reversed window, or an unknown output size or datatype.
    """
    if start > end:
        raise ValueError(f"alphavantage window starts after it ends ({start} > {end})")
    if datatype not in ("json", "csv"):
        raise ValueError(f"alphavantage datatype {datatype!r}: choose json or csv")
    size = _size(outputsize or outputsize_for(start, today or dt.datetime.now(dt.timezone.utc).date()))
    function = "TIME_SERIES_DAILY_ADJUSTED" if adjusted else "TIME_SERIES_DAILY"
    params = {"function": function, "symbol": _checked(symbol), "outputsize": size, "datatype": datatype}
    return Request("/query", params, endpoint=f"{'daily_adjusted' if adjusted else 'daily'}:{size}")


def daily_adjusted_request(symbol: str, start: dt.date, end: dt.date, **options: Any) -> Request:
    """TIME_SERIES_DAILY_ADJUSTED: adds adjusted close, dividends and splits (premium on free keys)."""
    return daily_request(symbol, start, end, adjusted=True, **options)


def quote_request(symbol: str) -> Request:
    """GLOBAL_QUOTE: the latest session's price for `symbol` (AV spelling)."""
    return Request("/query", {"function": "GLOBAL_QUOTE", "symbol": _checked(symbol), "datatype": "json"},
                   endpoint="quote")


def intraday_request(symbol: str, interval: str, *, outputsize: str = "compact",
                     extended_hours: bool = True) -> Request:
    """TIME_SERIES_INTRADAY as traded (adjusted=false), pre- and post-market included by default.

    Raises:
        ValueError: an interval other than 1min/5min/15min/30min/60min, or a bad output size.
    """
    if interval not in INTERVALS:
        raise ValueError(f"alphavantage interval {interval!r}: choose one of {', '.join(INTERVALS)}")
    params = {"function": "TIME_SERIES_INTRADAY", "symbol": _checked(symbol), "interval": interval,
              "outputsize": _size(outputsize), "adjusted": "false",
              "extended_hours": str(extended_hours).lower(), "datatype": "json"}
    return Request("/query", params, endpoint=f"intraday:{interval}")


def parse_daily(response: Response, start: dt.date, end: dt.date) -> Parsed:
    """Bars in [start, end], plus dividends and splits from the adjusted series (JSON or CSV)."""
    body = _body(response, csv_ok=True)
    if isinstance(body, Parsed):
        return body
    if isinstance(body, list):  # datatype=csv rows
        return build(body, start, end)
    series = body.get("Time Series (Daily)")
    if not isinstance(series, dict):
        return classify(body)
    return build([(day, _fields(raw), raw, None if isinstance(raw, dict) else "not_an_object")
                   for day, raw in series.items()], start, end)


def parse_quote(response: Response, zone: str = "America/New_York", close: dt.time = dt.time(16)) -> Parsed:
    """GLOBAL_QUOTE -> one `quotes` row, ts = `close` in `zone` on the latest trading day, in UTC."""
    import pandas as pd

    body = _body(response)
    if isinstance(body, Parsed):
        return body
    quote = body.get("Global Quote")
    if not isinstance(quote, dict) or not quote:
        return classify(body)
    values, reason = _quote_values(_fields(quote))
    if reason:
        day = quote.get("07. latest trading day")
        return Parsed(Outcome.EMPTY, rejected=({"date": str(day), "reason": reason, "raw": quote},))
    ts = pd.Timestamp(dt.datetime.combine(values.pop("day"), close)).tz_localize(zone).tz_convert("UTC")
    numbers = {name: pd.Series([value], dtype="float64") for name, value in values.items()}
    frame = pd.DataFrame({"ts": pd.Series([ts], dtype="datetime64[us, UTC]"), **numbers})
    return Parsed(Outcome.OK, quotes=frame)


def parse_intraday(response: Response, start: dt.date | None = None, end: dt.date | None = None) -> Parsed:
    """Intraday bars: naive stamps in Meta `Time Zone` -> ts in UTC, session_date local.

    `start`/`end` (optional) keep only sessions within [start, end].
    """
    import pandas as pd

    body = _body(response)
    if isinstance(body, Parsed):
        return body
    key = next((k for k in body if k.startswith("Time Series (")), None)
    if key is None or not isinstance(body[key], dict):
        return classify(body)
    meta = body.get("Meta Data") if isinstance(body.get("Meta Data"), dict) else {}
    zone = next((v for k, v in meta.items() if k.endswith("Time Zone")), None)
    kept, rejected = _intraday_rows(body[key])
    local = pd.to_datetime(pd.Series([s for s, _ in kept], dtype="str"), format="mixed", errors="coerce")
    try:  # a stamp in the DST gap or the repeated hour becomes NaT, then a reject
        ts = local.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    except Exception:  # noqa: BLE001 - pandas raises several types for an unknown zone name
        return _fail(Outcome.PROTOCOL_ERROR, f"intraday series in an unknown time zone {zone!r}")
    rejected += [{"date": s, "reason": "bad_timestamp", "raw": body[key][s]}
                 for (s, _), bad in zip(kept, ts.isna()) if bad]
    frame = pd.DataFrame({"ts": ts.astype("datetime64[us, UTC]"),
                          **{c: pd.Series([v[c] for _, v in kept], dtype="float64") for c in CORE},
                          "session_date": local.dt.normalize().astype("datetime64[us]")})
    lo, hi = (start or dt.date.min).isoformat(), (end or dt.date.max).isoformat()
    inside = ts.notna() & frame["session_date"].between(pd.Timestamp(lo), pd.Timestamp(hi))
    frame = frame[inside].sort_values("ts", kind="stable").reset_index(drop=True)
    rejected = [r for r in rejected if not iso_date(r["date"][:10]) or lo <= r["date"][:10] <= hi]
    return Parsed(Outcome.OK if len(frame) else Outcome.EMPTY, intraday=frame, rejected=tuple(rejected))


def classify(body: dict[str, Any]) -> Parsed:
    """The outcome of a JSON body that holds no data, in PROVIDERS.md's order."""
    error = body.get("Error Message")
    if isinstance(error, str):
        bad_key = "apikey" in error.lower()
        return _fail(Outcome.AUTH_FAILED if bad_key else Outcome.SYMBOL_NOT_FOUND, error)
    text = " ".join(str(body[k]) for k in ("Information", "Note") if k in body)
    if _BURST.search(text):
        return _fail(Outcome.RATE_LIMITED, text, retry_after=2.0)  # PROVIDERS.md: after >= 1-2 s
    if _DAILY.search(text):
        return _fail(Outcome.QUOTA_EXHAUSTED, text)
    if _PREMIUM.search(text):
        return _fail(Outcome.NOT_ENTITLED, text)
    if "Note" in body:
        return _fail(Outcome.RATE_LIMITED, text, retry_after=60.0)  # the 5-calls-per-minute era
    if body.get("Global Quote") == {}:
        return _fail(Outcome.SYMBOL_NOT_FOUND, "empty Global Quote")
    if _DEMO.search(text):
        return _fail(Outcome.AUTH_FAILED, text)
    return _fail(Outcome.PROTOCOL_ERROR, text or f"unexpected body with keys {sorted(body)[:5]}")


# ----------------------------------------------------------------------------- helpers


def _size(outputsize: str) -> str:
    if outputsize not in OUTPUT_SIZES:
        raise ValueError(f"alphavantage outputsize {outputsize!r}: choose compact or full")
    return outputsize


def _checked(symbol: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-]*", symbol or ""):
        raise ValueError(f"not an alphavantage symbol: {symbol!r} (use vendor_symbol first)")
    return symbol


def _body(response: Response, csv_ok: bool = False) -> dict[str, Any] | list[tuple] | Parsed:
    """The JSON object, the CSV rows (when `csv_ok`), or the failure the response already is."""
    text = response.text.lstrip("\ufeff \t\r\n")
    if response.status == 429:
        return _fail(Outcome.RATE_LIMITED, "HTTP 429", retry_after=response.retry_after())
    if response.status != 200 or not text or (not text.startswith("{") and not csv_ok):
        return _fail(Outcome.PROTOCOL_ERROR, f"HTTP {response.status}: {text[:60]!r}")
    if not text.startswith("{"):
        return _csv_rows(text)
    try:
        body = json.loads(text)
    except ValueError:
        return _fail(Outcome.PROTOCOL_ERROR, "truncated or invalid JSON")
    return body if isinstance(body, dict) else _fail(Outcome.PROTOCOL_ERROR, "JSON that is not an object")


def _csv_rows(text: str) -> list[tuple] | Parsed:
    """datatype=csv (LF or CRLF) -> (date text, fields, raw, preset reason) rows."""
    lines = csv_lines(text)
    if lines is None:
        return _fail(Outcome.PROTOCOL_ERROR, "unreadable CSV")
    header = [_FIELDS.get(cell.strip().lower().replace("_", " "), cell) for cell in lines[0]]
    if header[0].strip().lower() != "timestamp" or not set(CORE) <= set(header):
        return _fail(Outcome.PROTOCOL_ERROR, f"not a CSV of daily bars (header {lines[0][:3]})")
    return csv_tuples(lines, header)


def _fields(raw: Any) -> dict[str, Any]:
    """AV's "1. open" / "5. adjusted close" names -> canonical names; others are dropped."""
    names = {re.sub(r"^\d+\.\s*", "", str(k)).strip().lower(): v for k, v in dict(raw or {}).items()}
    return {_FIELDS[k]: v for k, v in names.items() if k in _FIELDS}


def _quote_values(fields: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The quote's session date and numbers, or the reason it cannot be a quote."""
    day = iso_date(fields.get("day"))
    try:
        fields["change_pct"] = str(fields.get("change_pct", "")).rstrip("%")  # "-0.1578%"
        values = {name: number(fields.get(name)) for name in _QUOTE}
    except ValueError:
        return {}, "not_a_number"
    if day is None:
        return {}, "bad_date"
    if values["price"] is None or values["price"] <= 0:
        return {}, "missing_value:price" if values["price"] is None else "zero_price"
    return {"day": day, **{n: math.nan if v is None else v for n, v in values.items()}}, None


def _intraday_rows(series: dict[str, Any]) -> tuple[list[tuple[str, dict]], list[dict[str, Any]]]:
    """(stamp, numbers) of the readable bars, and the rejects (before time zone checks)."""
    kept, rejected = [], []
    for stamp, raw in series.items():
        values, reason = bar_values(_fields(raw)) if isinstance(raw, dict) else (None, "not_an_object")
        if reason is None and not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?", stamp):
            reason = "bad_timestamp"
        if reason:
            rejected.append({"date": stamp, "reason": reason, "raw": raw})
        else:
            kept.append((stamp, values))
    return kept, rejected


_fail = partial(fail, keylike=_KEYLIKE)  # AV also echoes the key after "API key as"


# --------------------------------------------------------------------------- VENDOR


class _AlphaVantage(Vendor):
    """Alpha Vantage's quirks: the output size chosen from today's date, compact once more
    after a premium-only full, and intraday as the latest bars in one request."""

    def daily_request(self, spelled: str, start: dt.date, end: dt.date, today: dt.date | None) -> Request:
        return daily_request(spelled, start, end, today=today)

    def daily_retry(self, request: Request, error: StockpipeError) -> Request | None:
        """outputsize=compact after a NOT_ENTITLED on outputsize=full (not a premium endpoint)."""
        if request.endpoint != "daily:full" or "outputsize" not in str(error):
            return None
        return replace(request, params={**request.params, "outputsize": "compact"}, endpoint="daily:compact")

    def intraday_requests(self, interval: str, start: dt.datetime, end: dt.datetime,
                          now: dt.datetime, zone: dt.tzinfo | None = None) -> list[Callable[[str], Request]]:
        minutes = int(interval.removesuffix("m"))
        wanted = (end - start).total_seconds() / 60 * (16 / 24) * (5 / 7) / minutes  # extended hours, weekdays
        size = "compact" if wanted <= COMPACT_ROWS else "full"
        return [lambda s: intraday_request(s, f"{minutes}min", outputsize=size)]


VENDOR = _AlphaVantage(NAME, BASE_URL, KEY_PARAM, DEFAULT_LIMITS, spell=vendor_symbol, daily=daily_request,
                       parse_daily=parse_daily, quotes=Quotes(quote_request, parse_quote),
                       intraday=Intraday(intraday_request, parse_intraday, IntradayLimits(None, 30 * DAY)))
