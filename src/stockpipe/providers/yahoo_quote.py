"""Yahoo's quote, read from the chart answer's `meta`. Pure.

Yahoo's own quote endpoints (v7 quote, quoteSummary) need a cookie and crumb for every
call; the chart endpoint does not, and its `meta` carries what Yahoo's quote widgets show
(regularMarketPrice/Time, the day's high/low/volume, the previous close). So the quote is
one chart call for today (range=1d, yahoo.quote_request), read here.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import yahoo_chart
from .wire import Outcome, Parsed, Response


def parse_quote(response: Response) -> Parsed:
    """One `quotes` row from a chart answer's meta, or the outcome the answer means.

    price = regularMarketPrice at regularMarketTime (UTC); high/low/volume = the session's
    regularMarketDayHigh/Low/Volume; prev_close = previousClose, else chartPreviousClose
    (equal for range=1d); open = the session bar's open when the chart holds it; change
    and change_pct (percent) computed. No price or time: EMPTY with a reject, never a 0.
    """
    import pandas as pd

    envelope = yahoo_chart.read(response, yahoo_chart.intraday)  # the chart's own error reading (401, 429, ...)
    if envelope.outcome not in (Outcome.OK, Outcome.EMPTY):
        return envelope
    try:
        result = json.loads(response.body)["chart"]["result"][0]
        meta = result["meta"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Parsed(Outcome.PROTOCOL_ERROR, message="chart answer without meta")
    price, stamp = _positive(meta.get("regularMarketPrice")), _positive(meta.get("regularMarketTime"))
    if price is None or stamp is None:
        shown = {k: meta.get(k) for k in ("symbol", "regularMarketPrice", "regularMarketTime")}
        reason = "missing_value:price" if price is None else "missing_value:ts"
        return Parsed(Outcome.EMPTY, rejected=({"date": str(meta.get("regularMarketTime")), "reason": reason,
                                                "raw": shown},), message="no quote in the chart meta")
    digits = min(max(int(_positive(meta.get("priceHint")) or 4), 2), 8)
    prev = _positive(meta.get("previousClose")) or _positive(meta.get("chartPreviousClose"))
    ts = dt.datetime.fromtimestamp(stamp, dt.timezone.utc)
    row = {"ts": ts, "price": round(price, digits), "open": _session_open(result, meta, ts),
           "high": _positive(meta.get("regularMarketDayHigh")), "low": _positive(meta.get("regularMarketDayLow")),
           "prev_close": prev, "change": price - prev if prev else None,
           "change_pct": (price - prev) / prev * 100 if prev else None, "volume": meta.get("regularMarketVolume")}
    for name in ("open", "high", "low", "prev_close", "change"):
        row[name] = math.nan if row[name] is None else round(row[name], digits)
    row["change_pct"] = math.nan if row["change_pct"] is None else round(row["change_pct"], 4)
    row["volume"] = float(row["volume"]) if _positive(row["volume"]) is not None or row["volume"] == 0 else math.nan
    frame = pd.DataFrame([row]).astype({"ts": "datetime64[us, UTC]", **{k: "float64" for k in row if k != "ts"}})
    return Parsed(Outcome.OK, quotes=frame, currency=meta.get("currency"))


def _positive(value: Any) -> float | None:
    """A finite number above zero, else None (Yahoo's 0 and null both mean "unknown")."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return float(value) if ok else None


def _session_open(result: dict, meta: dict, ts: dt.datetime) -> float | None:
    """The open of the chart's bar of the quote's session (the exchange's date), if any."""
    try:
        zone = ZoneInfo(meta["exchangeTimezoneName"])
        stamps = result["timestamp"]
        opens = result["indicators"]["quote"][0]["open"]
        day = ts.astimezone(zone).date()
        found = [o for t, o in zip(stamps, opens) if dt.datetime.fromtimestamp(t, zone).date() == day]
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, OSError, ZoneInfoNotFoundError):
        return None
    return _positive(found[-1]) if found else None
