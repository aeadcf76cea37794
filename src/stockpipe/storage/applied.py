"""`lake_applied`: how far each consumer of a lake table has got, kept in the warehouse in
the same transaction as what it describes (the rows a load wrote, the symbol_state a plan
reconciled). See storage/lake.py for the lake side of the same idea.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema


@dataclass(frozen=True)
class Applied:
    table_id: str
    version: int


def read(conn: Connection, consumer: str, dataset: str) -> Applied | None:
    """What `consumer` applied of `dataset`'s lake table; None when it never did."""
    table = schema.lake_applied
    row = conn.execute(sa.select(table.c.table_id, table.c.version)
                       .where(table.c.consumer == consumer, table.c.dataset == dataset)).first()
    return None if row is None else Applied(row.table_id, int(row.version))


def save(conn: Connection, consumer: str, dataset: str, applied: Applied, now: dt.datetime) -> None:
    """Record (in the caller's transaction) that `consumer` holds `dataset` at `applied`."""
    table = schema.lake_applied
    where = (table.c.consumer == consumer) & (table.c.dataset == dataset)
    values = {"table_id": applied.table_id, "version": applied.version, "applied_at": now}
    if conn.execute(table.update().where(where).values(**values)).rowcount == 0:
        conn.execute(table.insert().values(consumer=consumer, dataset=dataset, **values))


def forget(conn: Connection, consumer: str, dataset: str) -> None:
    """Drop the record (the lake table is gone: what was applied no longer says anything)."""
    table = schema.lake_applied
    conn.execute(table.delete().where((table.c.consumer == consumer) & (table.c.dataset == dataset)))
