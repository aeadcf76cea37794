"""`status`: the universe from the run metadata alone — never a scan of a price table.

What it reads: symbol_state (one row per symbol: dates held, last success, consecutive
failures, needs_reprocess, rows_held, provider), the quota ledger, and for one symbol
(`--symbol`) its run_events, open quality failures and price_revisions. What it writes:
nothing; on a fresh machine it creates no database and reports the configured universe as
never loaded.

Each symbol of the universe (the configured one plus every symbol symbol_state knows) is in
exactly one state, the first that applies:

* skipped: failed `max_consecutive_failures` fetches in a row; planning asks for nothing
  until `stockpipe reset`;
* failing: its last fetch failed (consecutive_failures > 0);
* never loaded: no bar held yet (no state, or no last_date);
* current: holds its exchange's latest closed session (the trading calendar of its own
  exchange: a London and a New York symbol can differ at the same instant);
* stale: holds an older session.

They are counted per (exchange, provider), with the newest last success and the rows held
(symbol_state.rows_held, kept by load in the transaction of the rows). The latest closed
sessions come from the session closes a run saved (closes.py), else the calendars.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .. import calendars
from ..config import Settings, normalize_symbol
from ..errors import ExitCode, NoDataError
from ..outputs import _plain
from .context import Clock

DATASET = "prices_daily"
STATES = ("current", "stale", "failing", "skipped", "never_loaded")


@dataclass(frozen=True)
class StatusResult:
    """`status`: counts per (exchange, provider), quotas, and with --symbol one symbol's story."""

    now: dt.datetime
    groups: tuple[dict[str, Any], ...]  # exchange, provider, symbols, STATES..., reprocess, last_success, rows_held
    totals: dict[str, Any]
    quotas: tuple[dict[str, Any], ...]  # provider, calls, limit, remaining, resets_at
    latest_sessions: dict[str, dt.date]  # exchange -> its latest closed session
    max_consecutive_failures: int
    story: dict[str, Any] | None = None  # --symbol: state, events, quality failures, revisions
    command: str = "status"
    exit_code: int = ExitCode.OK
    notes: tuple[str, ...] = field(default_factory=tuple)

    def document(self) -> dict[str, Any]:
        return _plain({"now": self.now, "max_consecutive_failures": self.max_consecutive_failures,
                       "latest_sessions": self.latest_sessions, "totals": self.totals, "groups": list(self.groups),
                       "quotas": list(self.quotas), "symbol": self.story, "notes": list(self.notes)})


def status(settings: Settings, symbol: str | None = None, clock: Clock = calendars.utcnow) -> StatusResult:
    """The universe's state from metadata; with `symbol`, also that symbol's story.

    Raises:
        BadInputError: `symbol` is not a ticker.
        ConfigError: an exchange without a calendar; a warehouse behind with auto_migrate off.
        DatabaseUnavailableError: the database cannot be reached.
    """
    from ..storage import monitoring, reads, state, warehouse

    symbol = normalize_symbol(symbol, "--symbol") if symbol else None
    now = clock()
    engine, notes = _engine(settings)
    rows, quotas, story = [], [], None
    if engine is not None:
        with warehouse.snapshot(engine) as conn:  # one state while a nightly commits beside it
            rows = state.status_rows(conn, DATASET)
            quotas = monitoring.quotas(conn, now)
            if symbol:
                story = {"states": reads.symbol_states(conn, symbol), "events": state.recent_events(conn, symbol),
                         "quality_failures": reads.open_quality_failures(conn, symbol),
                         "revisions": _revisions(conn, symbol)}
    known = {row[0]: dict(zip(state.STATUS_COLUMNS, row)) for row in rows}
    universe = list(dict.fromkeys([*settings.symbols, *known, *([symbol] if symbol else [])]))
    exchange_of = calendars.exchange_resolver(settings.exchanges)
    latest = _latest_sessions({exchange_of(s) for s in universe}, settings, now)
    limit = settings.max_consecutive_failures
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for name in universe:
        row, exchange = known.get(name, {}), exchange_of(name)
        key = (exchange, row.get("provider") or "")
        group = groups.setdefault(key, _empty(*key))
        _count(group, row, classify(row, latest[exchange], limit))
    ordered = tuple(groups[k] for k in sorted(groups))
    if story is not None:
        row, exchange = known.get(symbol, {}), exchange_of(symbol)
        story = {"symbol": symbol, "exchange": exchange, "latest_session": latest[exchange],
                 "status": classify(row, latest[exchange], limit),
                 "last_error": next((s.get("last_error") for s in story["states"] if s["dataset"] == DATASET), None),
                 **story}
    return StatusResult(now, ordered, _totals(ordered), tuple(_quotas(settings, known, quotas)), latest, limit,
                        story, notes=tuple(notes))


def classify(row: Mapping[str, Any], latest: dt.date, max_failures: int) -> str:
    """One symbol's state (module docstring) from its symbol_state row ({} when it has none)."""
    failures = row.get("consecutive_failures") or 0
    if failures >= max_failures:
        return "skipped"
    if failures:
        return "failing"
    last = row.get("last_date")
    if last is None:
        return "never_loaded"
    return "current" if last >= latest else "stale"


def _engine(settings: Settings):
    """A reader on the warehouse, or None when there is none yet (nothing is created)."""
    from .reading import open_reader

    try:
        return open_reader(settings), []
    except NoDataError as exc:
        return None, [str(exc)]


def _empty(exchange: str, provider: str) -> dict[str, Any]:
    return {"exchange": exchange, "provider": provider, "symbols": 0, **dict.fromkeys(STATES, 0), "reprocess": 0,
            "last_success": None, "rows_held": 0}


def _count(group: dict[str, Any], row: Mapping[str, Any], state: str) -> None:
    group["symbols"] += 1
    group[state] += 1
    group["reprocess"] += bool(row.get("needs_reprocess"))
    group["rows_held"] += int(row.get("rows_held") or 0)
    success = _utc(row.get("last_success_at"))
    if success is not None and (group["last_success"] is None or success > group["last_success"]):
        group["last_success"] = success


def _totals(groups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    totals = {name: sum(g[name] for g in groups) for name in ("symbols", *STATES, "reprocess", "rows_held")}
    successes = [g["last_success"] for g in groups if g["last_success"] is not None]
    return totals | {"last_success": max(successes, default=None)}


def _utc(value):
    from ..storage.schema import read_utc

    return read_utc(value)


def _latest_sessions(exchanges: set[str], settings: Settings, now: dt.datetime) -> dict[str, dt.date]:
    """Exchange -> its latest closed session at `now`: from the closes a run saved when they
    cover `now` (no pandas), else from the calendar."""
    from .. import closes

    saved = closes.load(settings.data_dir) or {}
    out = {}
    for exchange in sorted(exchanges):
        rows = saved.get(exchange) or []
        if rows and rows[0][1] <= now < rows[-1][1]:
            out[exchange] = max(day for day, close in rows if close <= now)
        else:
            out[exchange] = calendars.latest_closed_session(now, exchange)
    return out


def _quotas(settings: Settings, known: Mapping[str, Mapping[str, Any]], open_windows) -> list[dict[str, Any]]:
    """Quota left today per provider of the chain or of symbol_state: the ledger's open window,
    else the whole daily limit (no call made yet today)."""
    from .forecast import daily_limit

    windows = {q.provider: q for q in open_windows}
    providers = dict.fromkeys([*settings.providers, *sorted({r["provider"] for r in known.values() if r["provider"]}),
                               *windows])
    out = []
    for name in providers:
        window, limit = windows.get(name), daily_limit(settings, name)
        if window is None and limit is None:
            continue
        calls = window.calls if window else 0
        limit = window.limit if window and window.limit is not None else limit
        out.append({"provider": name, "calls": calls, "limit": limit,
                    "remaining": None if limit is None else max(0, limit - calls),
                    "resets_at": window.resets_at if window else None})
    return out


def _revisions(conn, symbol: str, limit: int = 20) -> list[dict[str, Any]]:
    """The symbol's newest price_revisions rows."""
    import sqlalchemy as sa

    from ..storage import schema

    rev = schema.price_revisions
    query = (sa.select(rev.c.date, rev.c.column, rev.c.old, rev.c.new, rev.c.provider, rev.c.run_id, rev.c.seen_at)
             .where(rev.c.symbol == symbol).order_by(rev.c.seen_at.desc(), rev.c.date.desc()).limit(limit))
    return [dict(r) | {"seen_at": _utc(r["seen_at"])} for r in conn.execute(query).mappings()]
