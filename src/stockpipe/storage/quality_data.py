"""The facts the quality rules judge, gathered from the warehouse in a few set-based queries.

`collect` returns, for every symbol `prices_daily` holds, one dict of observations
(`stages.quality.evaluate` judges them). Nothing here runs a query per symbol. Measured at
1M rows (2,000 symbols x 504 bars) on the shared 2-vCPU machine: 3.5-6 s on SQLite (two
thirds of it the window query of step 3) and 2 s on PostgreSQL; it grows linearly, and the
only reads that depend on the data's faults (step 2's dates, step 4) touch few symbols:

1. one GROUP BY: row count, first/last date and the counts of the row rules
   (price <= 0, volume < 0, high/low not enclosing open and close, duplicate keys);
2. the calendar, per exchange, loaded into two TEMP tables (the sessions in the
   table's date range, and each symbol's exchange) and one anti-join: the bars on days
   the exchange was closed. A symbol's missing sessions are then
   `sessions in [first, last] - bars on sessions`, arithmetic on numbers already read;
   only the symbols where that is not zero have their dates read (one query per 500
   symbols) to find the earliest missing session, which becomes
   `symbol_state.refetch_from`. Measured at 1M rows against reading every (symbol, date)
   to compare in numpy: the anti-join takes 0.45-0.8 s on SQLite and 0.15-0.25 s on
   PostgreSQL; the read alone takes 1.3 s on SQLite and 0.2-0.45 s on PostgreSQL even
   through COPY into pyarrow, 1.4-1.8 s through the driver, before any comparison;
3. one window query (LAG/LEAD/ROW_NUMBER over each symbol's bars by date) returning only
   candidate rows: zero-volume bars, close-to-close moves above the spike threshold, and
   closes at least the hundred_x factor away from a neighbour. Zero-volume runs are the
   runs of consecutive row numbers among the zero-volume bars, which the same query
   returns at no extra cost (a gaps-and-islands query in SQL, two more windows, took
   1.7 s on SQLite against 0.6 s for the row numbers alone);
4. the splits of the symbols that have candidate moves (they explain a spike);
5. provider divergence: `prices_daily` holds one row per (symbol, date), the chosen
   provider's, so the second source is `quotes_daily`, the daily bars built from the
   streaming quotes feed: where both hold (symbol, date), their closes are compared.
   quotes_daily keeps no provider name, so it always counts as the other source; a day
   whose quotes stopped before the close shows up as a divergence (its last quote is not
   the close), which is what this rule is there to say.

Dates before a calendar's first known session are not judged against it (exchange-calendars
starts some exchanges late, XTKS in 1997). A load running at the same time can make a
symbol's counts disagree for one run; the dates read for such a symbol are authoritative,
so no gap is reported that its own rows do not show.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema, state
from .warehouse import chunks

_BEFORE = dt.timedelta(days=31)  # no exchange closes this long: sessions from here on say where coverage starts
_AHEAD = dt.timedelta(days=366)  # a bar this far past the latest session is judged against nothing


@dataclass(frozen=True)
class Calendar:
    """What the facts need from the trading calendar (the caller passes `calendars`' functions)."""

    exchange_of: Callable[[str], str]  # symbol -> MIC
    sessions_between: Callable[[dt.date, dt.date, str], Sequence[dt.date]]  # [start, end] of an exchange
    latest_session: Callable[[str], dt.date]  # MIC -> its latest closed session


@dataclass(frozen=True)
class _Sessions:
    """One exchange's sessions as sorted ordinals; `known_from` is the first one the calendar knows."""

    ordinals: np.ndarray
    known_from: dt.date
    latest: dt.date

    def count(self, first: dt.date, last: dt.date) -> int:
        """Sessions in [first, last]."""
        return int(np.searchsorted(self.ordinals, last.toordinal(), "right")
                   - np.searchsorted(self.ordinals, first.toordinal(), "left"))


def collect(conn: Connection, calendar: Calendar, thresholds: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """symbol -> its facts, for every symbol of prices_daily.

    Args:
        conn: an open connection. It only reads, plus two TEMP tables it drops before
            returning; commit afterwards (engine.begin()): SQLite's driver runs the
            CREATE outside the transaction and the DROP inside it, so a rollback leaves
            the (empty) tables on the pooled connection until the next collect drops them.
        calendar: exchange of a symbol, sessions of an exchange, latest closed session.
        thresholds: rule name -> threshold; `spike`, `hundred_x` and `provider_divergence`
            select the candidate rows read here (the rules judge them again).

    Each dict holds: rows, first_date, last_date, the `_row_counts` counts, exchange,
    latest_session, sessions_behind, missing_sessions, first_missing, unexpected_bars,
    first_unexpected, zero_volume_run, zero_volume_from, moves (candidate bars: date,
    close, prev_date, prev_close, next_date, next_close), splits (dates), quote_days,
    max_divergence, divergences (date, close, quote_close), revisions (price_revisions rows
    seen in the RESTATED_DAYS before the latest session: date, column, old, new, seen_at).

    Raises:
        ConfigError: from the calendar, for an exchange it does not know.
    """
    facts = _stats(conn)
    if not facts:
        return facts
    sessions = _exchange_sessions(facts, calendar)
    for fact in facts.values():
        _stale(fact, sessions[fact["exchange"]])
    _revisions(conn, facts)
    _calendar_facts(conn, facts, sessions)
    _row_facts(conn, facts, thresholds["spike"], thresholds["hundred_x"])
    _divergence(conn, facts, thresholds["provider_divergence"])
    return facts


# ------------------------------------------------------------------ per-symbol counts


def _row_counts(p: sa.Table) -> dict[str, sa.ColumnElement]:
    """Fact name -> its count per symbol over prices_daily `p`: the offending rows the count
    rules of stages/quality.py judge (each reads the fact of its own name)."""
    bad = lambda cond: sa.func.sum(sa.case((cond, 1), else_=0))  # noqa: E731 - a local SQL shorthand
    return {
        "price_positive": bad((p.c.open <= 0) | (p.c.high <= 0) | (p.c.low <= 0) | (p.c.close <= 0)),
        "volume_non_negative": bad(p.c.volume < 0),
        "high_encloses": bad((p.c.high < p.c.open) | (p.c.high < p.c.close)),
        "low_encloses": bad((p.c.low > p.c.open) | (p.c.low > p.c.close)),
        "duplicate_keys": sa.func.count() - sa.func.count(sa.distinct(p.c.date)),
    }


def _stats(conn: Connection) -> dict[str, dict[str, Any]]:
    p = schema.prices_daily
    counts = _row_counts(p)
    query = sa.select(
        p.c.symbol,
        sa.func.count().label("rows"),
        sa.func.min(p.c.date).label("first_date"),
        sa.func.max(p.c.date).label("last_date"),
        *(count.label(name) for name, count in counts.items()),
    ).group_by(p.c.symbol)
    facts = {}
    for row in conn.execute(query):
        fact = dict(row._mapping)
        fact.update({name: int(fact[name] or 0) for name in ("rows", *counts)})
        fact.update(missing_sessions=0, first_missing=None, unexpected_bars=0, first_unexpected=None,
                    zero_volume_run=0, zero_volume_from=None, moves=[], splits=[], quote_days=0,
                    max_divergence=None, divergences=[], revisions=[])
        facts[fact["symbol"]] = fact
    return facts


# ------------------------------------------------------------------------ calendar


def _exchange_sessions(facts: dict[str, dict[str, Any]], calendar: Calendar) -> dict[str, _Sessions]:
    """Each exchange's sessions from a month before its first bar to past its latest session."""
    spans: dict[str, tuple[dt.date, dt.date]] = {}
    for symbol, fact in facts.items():
        exchange = fact["exchange"] = calendar.exchange_of(symbol)
        lo, hi = spans.get(exchange, (fact["first_date"], fact["last_date"]))
        spans[exchange] = (min(lo, fact["first_date"]), max(hi, fact["last_date"]))
    out = {}
    for exchange, (lo, hi) in spans.items():
        latest = calendar.latest_session(exchange)
        days = calendar.sessions_between(lo - _BEFORE, min(max(hi, latest), latest + _AHEAD), exchange)
        ordinals = np.fromiter((d.toordinal() for d in days), np.int64, len(days))
        out[exchange] = _Sessions(ordinals, days[0] if days else latest + dt.timedelta(days=1), latest)
    return out


def _stale(fact: dict[str, Any], sessions: _Sessions) -> None:
    fact["latest_session"] = sessions.latest
    fact["sessions_behind"] = sessions.count(fact["last_date"] + dt.timedelta(days=1), sessions.latest)


def _calendar_facts(conn: Connection, facts: dict[str, dict[str, Any]], sessions: Mapping[str, _Sessions]) -> None:
    """Unexpected bars by an anti-join on TEMP tables; gaps by arithmetic, then dates where needed."""
    meta = sa.MetaData()
    days = sa.Table("quality_sessions", meta, sa.Column("exchange", sa.String(16), primary_key=True),
                    sa.Column("day", sa.Date, primary_key=True), prefixes=["TEMPORARY"])
    owners = sa.Table("quality_symbols", meta, sa.Column("symbol", sa.String(32), primary_key=True),
                      sa.Column("exchange", sa.String(16), nullable=False),
                      sa.Column("known_from", sa.Date, nullable=False), prefixes=["TEMPORARY"])
    meta.drop_all(conn, checkfirst=True)
    meta.create_all(conn)
    try:
        conn.execute(days.insert(), [{"exchange": ex, "day": dt.date.fromordinal(int(d))}
                                     for ex, s in sessions.items() for d in s.ordinals])
        conn.execute(owners.insert(), [{"symbol": symbol, "exchange": f["exchange"],
                                        "known_from": sessions[f["exchange"]].known_from}
                                       for symbol, f in facts.items()])
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE quality_sessions")
            conn.exec_driver_sql("ANALYZE quality_symbols")
        p = schema.prices_daily
        query = (sa.select(p.c.symbol, sa.func.count().label("n"), sa.func.min(p.c.date).label("first"))
                 .select_from(p.join(owners, owners.c.symbol == p.c.symbol)
                              .outerjoin(days, (days.c.exchange == owners.c.exchange) & (days.c.day == p.c.date)))
                 .where(days.c.day.is_(None), p.c.date >= owners.c.known_from)
                 .group_by(p.c.symbol))
        for symbol, count, first in conn.execute(query):
            facts[symbol].update(unexpected_bars=int(count), first_unexpected=first)
    finally:
        meta.drop_all(conn, checkfirst=True)
    _gaps(conn, facts, sessions)


def _gaps(conn: Connection, facts: dict[str, dict[str, Any]], sessions: Mapping[str, _Sessions]) -> None:
    """Missing sessions between each symbol's first and last bar, and the earliest of them."""
    suspects = []
    for symbol, fact in facts.items():
        known = sessions[fact["exchange"]]
        on_sessions = fact["rows"] - fact["unexpected_bars"]
        if fact["first_date"] < known.known_from or known.count(fact["first_date"], fact["last_date"]) != on_sessions:
            suspects.append(symbol)
    p = schema.prices_daily
    for chunk in chunks(suspects):
        held: dict[str, list[int]] = {s: [] for s in chunk}
        query = sa.select(p.c.symbol, _ordinal(conn, p.c.date)).where(p.c.symbol.in_(chunk))
        for symbol, ordinal in conn.execute(query):
            held[symbol].append(int(ordinal))
        for symbol, ordinals in held.items():
            fact = facts[symbol]
            missing = missing_sessions(np.array(ordinals, np.int64), sessions[fact["exchange"]].ordinals)
            fact["missing_sessions"] = len(missing)
            fact["first_missing"] = dt.date.fromordinal(int(missing[0])) if len(missing) else None


def missing_sessions(held: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """The sessions (ordinals, sorted) between the first and last held session that are not held."""
    held = np.unique(held)
    on = held[np.isin(held, sessions, assume_unique=True)]
    if len(on) == 0:
        return np.empty(0, np.int64)
    span = sessions[np.searchsorted(sessions, on[0]):np.searchsorted(sessions, on[-1], "right")]
    return span[~np.isin(span, on, assume_unique=True)]


def _ordinal(conn: Connection, column: sa.ColumnElement) -> sa.ColumnElement:
    """A date column as a proleptic Gregorian ordinal (date.toordinal()), computed by the database."""
    if conn.dialect.name == "sqlite":
        return sa.cast(sa.func.julianday(column) - 1721424.5, sa.Integer)
    return (column - sa.literal_column("DATE '0001-01-01'") + 1).cast(sa.Integer)


# -------------------------------------------------------------------- row rules


def _row_facts(conn: Connection, facts: dict[str, dict[str, Any]], spike: float, factor: float) -> None:
    """Candidate bars from one window query: zero volume, big moves, closes far from a neighbour."""
    p = schema.prices_daily
    w = {"partition_by": p.c.symbol, "order_by": p.c.date}
    bars = sa.select(
        p.c.symbol, p.c.date, p.c.close, p.c.volume,
        sa.func.lag(p.c.date, type_=sa.Date).over(**w).label("prev_date"),
        sa.func.lag(p.c.close, type_=sa.Double).over(**w).label("prev_close"),
        sa.func.lead(p.c.date, type_=sa.Date).over(**w).label("next_date"),
        sa.func.lead(p.c.close, type_=sa.Double).over(**w).label("next_close"),
        sa.func.row_number().over(**w).label("rn"),
    ).subquery()
    b = bars.c
    far = lambda other: (b.close >= factor * other) | (b.close * factor <= other)  # noqa: E731
    query = sa.select(bars).where(
        (b.volume == 0) | (sa.func.abs(b.close - b.prev_close) > spike * b.prev_close)
        | far(b.prev_close) | far(b.next_close))
    zero: list[tuple[str, int, dt.date]] = []
    for row in conn.execute(query):
        if row.volume == 0:
            zero.append((row.symbol, row.rn, row.date))
        if _moved(row.close, row.prev_close, spike, factor) or _moved(row.close, row.next_close, None, factor):
            facts[row.symbol]["moves"].append({k: getattr(row, k) for k in (
                "date", "close", "prev_date", "prev_close", "next_date", "next_close")})
    _zero_volume_runs(facts, zero)
    _splits(conn, facts, sorted(s for s, f in facts.items() if f["moves"]))


def _moved(close: float, other: float | None, spike: float | None, factor: float) -> bool:
    """The Python twin of the query's filter, so zero-volume-only rows are not taken for moves."""
    if other is None:
        return False
    return (spike is not None and abs(close - other) > spike * other
            or close >= factor * other or close * factor <= other)


def _zero_volume_runs(facts: dict[str, dict[str, Any]], zero: list[tuple[str, int, dt.date]]) -> None:
    """The longest run of consecutive zero-volume bars (consecutive row numbers) per symbol."""
    zero.sort()
    run_symbol, run_start, run_length, last_rn = None, None, 0, None
    for symbol, rn, day in zero:
        if symbol == run_symbol and rn == last_rn + 1:
            run_length += 1
        else:
            run_symbol, run_start, run_length = symbol, day, 1
        last_rn = rn
        fact = facts[symbol]
        if run_length > fact["zero_volume_run"]:
            fact["zero_volume_run"], fact["zero_volume_from"] = run_length, run_start


def _splits(conn: Connection, facts: dict[str, dict[str, Any]], symbols: Sequence[str]) -> None:
    a = schema.corporate_actions
    for chunk in chunks(symbols):
        query = sa.select(a.c.symbol, a.c.date).where(a.c.kind == "split", a.c.symbol.in_(chunk)).order_by(a.c.date)
        for symbol, day in conn.execute(query):
            facts[symbol]["splits"].append(day)


# --------------------------------------------------------------------- divergence


def _divergence(conn: Connection, facts: dict[str, dict[str, Any]], threshold: float) -> None:
    """Closes of prices_daily against quotes_daily's for the same (symbol, date)."""
    p, q = schema.prices_daily, schema.quotes_daily
    both = q.join(p, (p.c.symbol == q.c.symbol) & (p.c.date == q.c.date))
    gap = sa.func.abs(q.c.close - p.c.close)
    summary = (sa.select(p.c.symbol, sa.func.count().label("days"),
                         sa.func.max(sa.case((p.c.close > 0, gap / p.c.close))).label("worst"))
               .select_from(both).group_by(p.c.symbol))
    for symbol, days, worst in conn.execute(summary):
        facts[symbol].update(quote_days=int(days), max_divergence=None if worst is None else float(worst))
    rows = (sa.select(p.c.symbol, p.c.date, p.c.close, q.c.close.label("quote_close")).select_from(both)
            .where(p.c.close > 0, gap > threshold * p.c.close).order_by(p.c.symbol, p.c.date))
    for symbol, day, close, quote_close in conn.execute(rows):
        facts[symbol]["divergences"].append({"date": day, "close": close, "quote_close": quote_close})


# ------------------------------------------------------------------------ revisions

RESTATED_DAYS = 7  # price_revisions seen this many days before the latest session are judged


def _revisions(conn: Connection, facts: dict[str, dict[str, Any]]) -> None:
    """Each symbol's price_revisions seen in the RESTATED_DAYS before its exchange's latest
    session (a keyed read of a table that holds only restatements)."""
    since = min(f["latest_session"] for f in facts.values()) - dt.timedelta(days=RESTATED_DAYS)
    rev = schema.price_revisions
    query = (sa.select(rev.c.symbol, rev.c.date, rev.c.column, rev.c.old, rev.c.new, rev.c.seen_at)
             .where(rev.c.seen_at >= dt.datetime.combine(since, dt.time(), dt.timezone.utc))
             .order_by(rev.c.symbol, rev.c.date, rev.c.column))
    for row in conn.execute(query).mappings():
        fact = facts.get(row["symbol"])
        seen = schema.read_utc(row["seen_at"])
        if fact is not None and seen.date() >= fact["latest_session"] - dt.timedelta(days=RESTATED_DAYS):
            fact["revisions"].append(dict(row) | {"seen_at": seen})


# ------------------------------------------------------------------------ writing


def save_refetch(conn: Connection, first_missing: Mapping[str, dt.date | None], dataset: str = "prices_daily") -> int:
    """Set symbol_state.refetch_from to each symbol's earliest missing session (None clears it).

    Writes only the rows that change; returns how many.
    """
    s = schema.symbol_state
    held = {row.symbol: row.refetch_from for row in conn.execute(
        sa.select(s.c.symbol, s.c.refetch_from).where(s.c.dataset == dataset, s.c.refetch_from.is_not(None)))}
    changed = [{"symbol": sym, "dataset": dataset, "refetch_from": day}
               for sym, day in first_missing.items() if held.get(sym) != day]
    state.save_states(conn, changed)
    return len(changed)
