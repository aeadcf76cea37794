"""quotes -> quotes_daily."""

from __future__ import annotations

import pandas as pd
import pytest

from stockpipe.stages.quotes import quotes_to_daily

ZONES = {"AAPL": "America/New_York", "VOD.L": "Europe/London"}


def quotes(rows):
    return pd.DataFrame(rows, columns=["symbol", "ts", "price", "open", "high", "low", "prev_close", "change",
                                       "change_pct", "volume", "provider"])


def q(symbol, ts, price, volume, prev_close=100.0, high=None, low=None):
    return (symbol, pd.Timestamp(ts, tz="UTC"), price, None, high, low, prev_close, None, None, volume, "t")


def test_daily_bar_from_minute_quotes_in_any_order():
    frame = quotes([
        q("AAPL", "2026-11-23 14:31", 101.0, 1000),
        q("AAPL", "2026-11-23 14:30", 100.5, 500),   # first by time: the open
        q("AAPL", "2026-11-23 20:59", 99.0, 9000),   # last by time: the close
        q("AAPL", "2026-11-23 16:00", 103.0, 4000, high=104.0),
        q("AAPL", "2026-11-23 17:00", 98.0, 6000, low=97.5),
    ])
    daily = quotes_to_daily(frame, ZONES.get)
    assert len(daily) == 1
    row = daily.iloc[0]
    assert row["date"] == pd.Timestamp("2026-11-23")
    assert (row["open"], row["high"], row["low"], row["close"]) == (100.5, 104.0, 97.5, 99.0)
    assert row["prev_close"] == 100.0 and row["change"] == -1.0 and row["change_pct"] == pytest.approx(-1.0)
    assert row["volume"] == 9000 and row["quotes"] == 5 and row["avg_volume_per_quote"] == 1800.0
    assert row["first_ts"] == pd.Timestamp("2026-11-23 14:30", tz="UTC")
    assert row["last_ts"] == pd.Timestamp("2026-11-23 20:59", tz="UTC")


def test_session_date_is_the_exchange_local_date():
    frame = quotes([
        q("AAPL", "2026-11-24 00:30", 100.0, 10),  # 19:30 New York on the 23rd (after hours)
        q("AAPL", "2026-11-24 14:30", 101.0, 20),
        q("VOD.L", "2026-11-24 00:30", 70.0, 5),   # 00:30 London on the 24th
    ])
    daily = quotes_to_daily(frame, ZONES.get)
    got = {(r.symbol, str(r.date.date())): r.quotes for r in daily.itertuples()}
    assert got == {("AAPL", "2026-11-23"): 1, ("AAPL", "2026-11-24"): 1, ("VOD.L", "2026-11-24"): 1}


def test_empty_quotes_give_empty_daily():
    daily = quotes_to_daily(quotes([]), ZONES.get)
    assert daily.empty and "avg_volume_per_quote" in daily.columns
