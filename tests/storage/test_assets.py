"""storage/assets.py on SQLite and PostgreSQL: a list applied, delisted, relisted; the active
symbols of exchanges and types."""

from __future__ import annotations

import datetime as dt

from stockpipe.storage import assets
from stockpipe.storage.schema import read_utc

from helpers import as_utc

T1, T2, T3 = (dt.datetime(2026, 12, d, 1, 0, tzinfo=dt.timezone.utc) for d in (1, 2, 3))


def row(symbol: str, type_: str = "Common Stock", **fields) -> dict:
    return {"symbol": symbol, "name": f"{symbol} Inc", "venue": "NASDAQ", "type": type_, **fields}


def test_apply_inserts_refreshes_delists_and_relists(engine):
    with engine.begin() as conn:
        assert assets.apply(conn, "US", [row("AAPL"), row("SPY", "ETF"), row("AAPL", name="dup")], T1) == {
            "listed": 2, "new": 2, "relisted": 0, "delisted": 0}
        assets.apply(conn, "LSE", [row("VOD.L")], T1)
        assert conn.exec_driver_sql("SELECT name FROM assets WHERE symbol = 'AAPL'").scalar() == "AAPL Inc"
    with engine.begin() as conn:
        assert assets.apply(conn, "US", [row("AAPL", name="Apple")], T2) == {
            "listed": 1, "new": 0, "relisted": 0, "delisted": 1}
        assert assets.active(conn, ["US"]) == ["AAPL"] and assets.active(conn, ["US", "LSE"]) == ["AAPL", "VOD.L"]
    with engine.begin() as conn:
        assert assets.apply(conn, "US", [row("AAPL"), row("SPY", "ETF")], T3)["relisted"] == 1
        assert assets.active(conn, ["US"], ["ETF"]) == ["SPY"]
        assert as_utc(assets.last_read(conn, "US")) == T3 and as_utc(assets.last_read(conn, "LSE")) == T1
        assert assets.last_read(conn, "XETRA") is None
        first = conn.exec_driver_sql("SELECT first_seen FROM assets WHERE symbol = 'AAPL'").scalar()
    assert read_utc(first) == T1  # first_seen kept through every refresh


def test_long_fields_are_cut_to_their_columns(engine):
    with engine.begin() as conn:
        assets.apply(conn, "US", [row("LONG", name="x" * 500, isin=" ")], T1)
        name, isin = conn.exec_driver_sql("SELECT name, isin FROM assets").one()
    assert len(name) == 200 and isin is None
