"""Read-only SQL of the commands that look at the data: show, plot, report and export.

They read the warehouse (its tables and views), the stable interface whatever the lake
becomes underneath. Every function takes an open connection, returns plain rows (dicts,
oldest first) and writes nothing; none imports pandas or pyarrow.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import DATASETS
from . import schema, views

Row = dict[str, Any]
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
# What a dataset or view is filtered on by --start/--end (its partition column, else `date`).
_TIME_COLUMN = {**{name: d.partition for name, d in DATASETS.items()}, "latest_quotes": "ts"}


def table(name: str) -> sa.Table:
    """The warehouse table or view `name` (a dataset of models.py, or a view of views.py)."""
    return schema.DATA_TABLES[name] if name in schema.DATA_TABLES else views.VIEWS[name]


def exportable() -> tuple[str, ...]:
    """The names `export --dataset` takes: every dataset, then every view."""
    return (*schema.DATA_TABLES, *views.VIEWS)


def rows(conn: Connection, name: str, symbols: Sequence[str] = (), start: dt.date | None = None,
         end: dt.date | None = None) -> list[Row]:
    """Rows of table or view `name`, for `symbols` (all when empty), within [start, end] of its
    time column (a timestamp column compares by its UTC date), sorted by symbol then time."""
    source = table(name)
    query = sa.select(source)
    if symbols:
        query = query.where(source.c.symbol.in_(list(symbols)))
    query = _within(query, source.c[_TIME_COLUMN.get(name, "date")], start, end)
    order = [source.c[c] for c in ("symbol", _TIME_COLUMN.get(name, "date")) if c in source.c]
    return [dict(r) for r in conn.execute(query.order_by(*order)).mappings()]


# The table a view's symbols come from (a DISTINCT over the table's key, not over the view).
_BASE = {"prices_daily_adjusted": "prices_daily", "daily_analytics": "prices_daily", "latest_quotes": "quotes"}


def symbols_in(conn: Connection, name: str) -> list[str]:
    """Every symbol table or view `name` holds rows for, sorted."""
    source = table(_BASE.get(name, name))
    return list(conn.execute(sa.select(source.c.symbol).distinct().order_by(source.c.symbol)).scalars())


def _within(query: sa.Select, column: sa.Column, start: dt.date | None, end: dt.date | None) -> sa.Select:
    is_ts = isinstance(column.type, sa.DateTime)
    if start is not None:
        lower = dt.datetime.combine(start, dt.time(), dt.timezone.utc) if is_ts else start
        query = query.where(column >= lower)
    if end is not None:
        upper = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc) if is_ts else end
        query = query.where(column < upper if is_ts else column <= upper)
    return query


def bars(conn: Connection, symbol: str, *, adjusted: bool = False, start: dt.date | None = None,
         end: dt.date | None = None, last: int | None = None, indicators: Sequence[str] = ()) -> list[Row]:
    """A symbol's daily bars, oldest first: as traded (prices_daily) or adjusted for splits and
    dividends (prices_daily_adjusted), with `provider` and the named indicators_daily columns
    (NULL where none was computed). `last` keeps only the newest so many bars."""
    prices = views.prices_daily_adjusted if adjusted else schema.prices_daily
    ind = schema.indicators_daily
    columns = [prices.c.date, *(prices.c[c] for c in PRICE_COLUMNS), prices.c.provider, *(ind.c[c] for c in indicators)]
    query = (sa.select(*columns)
             .select_from(prices.outerjoin(ind, sa.and_(ind.c.symbol == prices.c.symbol, ind.c.date == prices.c.date)))
             .where(prices.c.symbol == symbol))
    query = _within(query, prices.c.date, start, end)
    if last is not None:
        query = query.order_by(prices.c.date.desc()).limit(last)
        return [dict(r) for r in reversed(conn.execute(query).mappings().all())]
    return [dict(r) for r in conn.execute(query.order_by(prices.c.date)).mappings()]


def actions(conn: Connection, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> list[Row]:
    """A symbol's splits and dividends (date, kind, value, provider), oldest first."""
    ca = schema.corporate_actions
    query = _within(sa.select(ca.c.date, ca.c.kind, ca.c.value, ca.c.provider).where(ca.c.symbol == symbol),
                    ca.c.date, start, end)
    return [dict(r) for r in conn.execute(query.order_by(ca.c.date, ca.c.kind)).mappings()]


def symbol_states(conn: Connection, symbol: str) -> list[Row]:
    """The symbol's symbol_state rows (one per dataset it was fetched for)."""
    st = schema.symbol_state
    return [dict(r) for r in conn.execute(sa.select(st).where(st.c.symbol == symbol).order_by(st.c.dataset)).mappings()]


def open_quality_failures(conn: Connection, symbol: str) -> list[Row]:
    """The rules the symbol fails as of the latest quality-check that judged it: for each
    rule its newest result, kept when it did not pass."""
    qr = schema.quality_results
    newest = sa.select(sa.func.max(qr.c.id)).where(qr.c.symbol == symbol).group_by(qr.c.check_name)
    query = (sa.select(qr.c.check_name, qr.c.severity, qr.c.observed, qr.c.threshold, qr.c.detail, qr.c.checked_at,
                       qr.c.run_id)
             .where(qr.c.id.in_(newest), qr.c.passed.is_(False)).order_by(qr.c.severity, qr.c.check_name))
    return [dict(r) for r in conn.execute(query).mappings()]


# --------------------------------------------------------------------------- runs


def latest_run_id(conn: Connection) -> str | None:
    """The run_id of the newest invocation recorded in pipeline_runs (None: no run yet)."""
    runs = schema.pipeline_runs
    return conn.execute(sa.select(runs.c.run_id).order_by(runs.c.id.desc()).limit(1)).scalar()


def invocations(conn: Connection, run_id: str) -> list[Row]:
    """Every pipeline_runs row of `run_id` (its commands, shards and retries), in order."""
    runs = schema.pipeline_runs
    return [dict(r) for r in conn.execute(sa.select(runs).where(runs.c.run_id == run_id).order_by(runs.c.id)).mappings()]


def events(conn: Connection, run_id: str) -> list[Row]:
    """The run's run_events rows (symbol, stage, status, rows, api_calls, provider, message)."""
    ev = schema.run_events
    return [dict(r) for r in conn.execute(sa.select(ev).where(ev.c.run_id == run_id).order_by(ev.c.id)).mappings()]


def quality_failures(conn: Connection, run_id: str) -> list[Row]:
    """The quality_results of `run_id` that did not pass, errors first: per (rule, symbol)
    the newest result, when a run checked quality more than once (run, then a retry)."""
    qr = schema.quality_results
    newest = sa.select(sa.func.max(qr.c.id)).where(qr.c.run_id == run_id).group_by(qr.c.check_name, qr.c.symbol)
    query = (sa.select(qr).where(qr.c.id.in_(newest), qr.c.passed.is_(False))
             .order_by(qr.c.severity, qr.c.check_name, qr.c.symbol))
    return [dict(r) for r in conn.execute(query).mappings()]


def closes(conn: Connection, symbols: Sequence[str], last: int) -> dict[str, list[tuple[dt.date, float]]]:
    """symbol -> its newest `last` (date, close) pairs as traded, oldest first."""
    p = schema.prices_daily
    out: dict[str, list[tuple[dt.date, float]]] = {}
    for symbol in symbols:
        query = sa.select(p.c.date, p.c.close).where(p.c.symbol == symbol).order_by(p.c.date.desc()).limit(last)
        out[symbol] = [(r.date, float(r.close)) for r in reversed(conn.execute(query).all())]
    return out
