"""The `assets` table: the universe as the exchanges' symbol lists give it.

`apply` takes one exchange's whole list: a symbol seen for the first time is inserted
(`first_seen`), a listed one refreshed (`last_seen`, its fields, `delisted_at` cleared when
it comes back), and an active symbol of that exchange missing from the list is marked
delisted (`delisted_at`), never deleted. Every function takes an open connection: the
caller decides the transaction (one per exchange list).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema
from .warehouse import chunks

FIELDS = ("name", "venue", "country", "currency", "type", "isin")
_SIZES = {"name": 200, "venue": 32, "country": 64, "currency": 8, "type": 32, "isin": 16}


def _insert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def apply(conn: Connection, exchange: str, listed: Sequence[Mapping[str, Any]], now: dt.datetime) -> dict[str, int]:
    """Make `exchange`'s rows match its list (`listed`: dicts with `symbol` and FIELDS).
    Returns the counts: listed, new, relisted, delisted."""
    t = schema.assets
    before = {r.symbol: r.delisted_at for r in conn.execute(
        sa.select(t.c.symbol, t.c.delisted_at).where(t.c.exchange == exchange))}
    unique = {row["symbol"]: row for row in reversed(listed)}  # the first of a symbol listed twice wins
    rows = [{"symbol": symbol, "exchange": exchange, "first_seen": now, "last_seen": now, "delisted_at": None,
             **{k: _text(row.get(k), _SIZES[k]) for k in FIELDS}} for symbol, row in unique.items()]
    for part in chunks(rows, 400):  # 12 parameters a row: within every SQLite's limit
        stmt = _insert(conn)(t).values(part)
        conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.symbol], set_={
            c: stmt.excluded[c] for c in ("exchange", "last_seen", "delisted_at", *FIELDS)}))
    seen = {row["symbol"] for row in rows}
    gone = [s for s, delisted in before.items() if delisted is None and s not in seen]
    for part in chunks(gone, 1000):
        conn.execute(t.update().where(t.c.symbol.in_(part)).values(delisted_at=now))
    return {"listed": len(seen), "new": len(seen - set(before)),
            "relisted": sum(1 for s in seen if before.get(s) is not None), "delisted": len(gone)}


def active(conn: Connection, exchanges: Sequence[str], types: Sequence[str] = ()) -> list[str]:
    """The symbols listed now (not delisted) on `exchanges`, of `types` (all when empty), by symbol."""
    t = schema.assets
    where = t.c.exchange.in_(list(exchanges)) & t.c.delisted_at.is_(None)
    if types:
        where &= t.c.type.in_(list(types))
    return [r.symbol for r in conn.execute(sa.select(t.c.symbol).where(where).order_by(t.c.symbol))]


def last_read(conn: Connection, exchange: str) -> dt.datetime | None:
    """When `exchange`'s list was last applied (the newest `last_seen`), None if never."""
    t = schema.assets
    return schema.read_utc(conn.execute(sa.select(sa.func.max(t.c.last_seen)).where(t.c.exchange == exchange)).scalar())


def _text(value: Any, size: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:size] if text else None
