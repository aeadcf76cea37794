"""Intraday quotes to daily bars (`quotes_daily`). Pure.

A streaming user collects a quote every minute into `quotes`; this builds, per symbol
and exchange session date, what a warehouse's intermediate layer would:

- open / close: the first / last quoted price of the day (by timestamp);
- high / low: the highest / lowest of the quoted price and the quote's own high/low;
- prev_close: the day's first stated previous close; change and change_pct (percent)
  against it;
- volume: the day's largest cumulative volume (vendors quote the session's running
  total); quotes: how many quotes the day had; avg_volume_per_quote = volume / quotes;
- first_ts / last_ts: the first and last quote of the day (UTC).

The session date is the quote's timestamp in the exchange's time zone, so a quote at
01:00 UTC belongs to the previous New York day, never to the machine's local date.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..models import QUOTES_DAILY

_COLUMNS = [name for name, _ in QUOTES_DAILY if name != "computed_at"]


def quotes_to_daily(quotes: pd.DataFrame, zone_of: Callable[[str], str]) -> pd.DataFrame:
    """Aggregate quotes (columns of models.QUOTES) into daily bars.

    Args:
        quotes: any order, many symbols; `ts` tz-aware (UTC) or naive UTC.
        zone_of: symbol -> IANA time zone of its exchange.
    """
    if quotes.empty:
        return pd.DataFrame(columns=_COLUMNS)
    frame = quotes.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    ts = pd.to_datetime(frame["ts"], utc=True)
    frame["ts"] = ts
    frame["date"] = _session_dates(frame["symbol"], ts, zone_of)
    frame["hi"] = frame[["price", "high"]].max(axis=1)
    frame["lo"] = frame[["price", "low"]].min(axis=1)
    daily = frame.groupby(["symbol", "date"], sort=True).agg(
        open=("price", "first"), high=("hi", "max"), low=("lo", "min"), close=("price", "last"),
        prev_close=("prev_close", "first"), volume=("volume", "max"), quotes=("price", "size"),
        first_ts=("ts", "min"), last_ts=("ts", "max"),
    ).reset_index()
    daily["change"] = daily["close"] - daily["prev_close"]
    daily["change_pct"] = daily["change"] / daily["prev_close"] * 100.0
    daily["avg_volume_per_quote"] = daily["volume"] / daily["quotes"]
    daily["volume"] = daily["volume"].astype("Int64")
    return daily[_COLUMNS]


def _session_dates(symbols: pd.Series, ts: pd.Series, zone_of: Callable[[str], str]) -> np.ndarray:
    """Each quote's local date in its exchange's zone (one conversion per zone, not per row)."""
    zones = symbols.map({s: zone_of(s) for s in symbols.unique()})
    dates = np.empty(len(ts), dtype="datetime64[s]")
    for zone, index in zones.groupby(zones).groups.items():
        local = ts.loc[index].dt.tz_convert(zone).dt.tz_localize(None).dt.normalize()
        dates[np.asarray(index)] = local.to_numpy().astype("datetime64[s]")
    return dates
