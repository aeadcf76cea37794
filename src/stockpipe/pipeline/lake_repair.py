"""`verify --repair` for damaged lake files (pipeline/verify.py finds them): quarantine them
(storage/lake_files.py), then make the next plain run put their rows back — the symbols a
prices_daily or corporate_actions file held are refetched from the file's first date
(`symbol_state.refetch_from`, `last_date` set back to what the lake still holds), a derived
table's transform watermark is reset so the next transform recomputes it. Quotes, intraday
bars and rejects cannot be asked for again: how many rows went is said.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ..config import Settings
from ..models import DATASETS
from ..storage import lake_files, lake_stats, schema, state

PRICES = DATASETS["prices_daily"]
REFETCHED = ("prices_daily", "corporate_actions")  # a daily fetch asks for these again
DERIVED = {"indicators_daily": ("indicators_daily", ("prices_daily", "corporate_actions")),
           "adjustments": ("indicators_daily", ("prices_daily", "corporate_actions")),
           "quotes_daily": ("quotes_daily", ("quotes",))}  # table -> (watermark holder, its inputs)


def repair_files(settings: Settings, engine, damaged: list[lake_stats.FileProblem], now: dt.datetime) -> list[str]:
    """Quarantine the files, then make the next run put their rows back; returns what was done."""
    from ..storage.lake import Commit, Lake

    quarantine_dir = settings.data_dir / lake_files.QUARANTINE
    done: list[str] = []
    held = held_states(engine)
    marks: dict[str, dt.date] = {}
    lost: dict[str, int] = {}
    for problem in damaged:
        file = problem.file
        if file.table in REFETCHED:
            for symbol, first in _symbols_of(file, held).items():
                marks[symbol] = min(marks.get(symbol, first), first)
        elif file.table not in DERIVED:
            lost[file.table] = lost.get(file.table, 0) + (file.rows or 0)
    lake_files.quarantine(settings.lake_dir, quarantine_dir, damaged, now)
    done.append(f"{len(damaged)} damaged lake file(s) moved to {quarantine_dir} and removed from their tables")
    lake = Lake(settings.lake_dir)
    for holder, inputs in sorted({DERIVED[p.file.table] for p in damaged if p.file.table in DERIVED}):
        lake.mark(DATASETS[holder], Commit("", "verify --repair", {f"transform:{name}": -1 for name in inputs}))
        done.append(f"{holder}: the next transform recomputes it from {', '.join(inputs)}")
    if marks and engine is not None:
        _mark_refetch(engine, settings, marks)
        done.append(f"{len(marks)} symbol(s) refetched by the next fetch: {', '.join(sorted(marks)[:10])}")
    for table, rows in sorted(lost.items()):
        done.append(f"{table}: {rows} row(s) lost with the file (a vendor cannot send them again)")
    return done


def held_states(engine) -> dict[str, tuple[dt.date | None, dt.date | None]]:
    """symbol -> (first_date, last_date) of its prices_daily symbol_state (none without an engine)."""
    if engine is None:
        return {}
    table = schema.symbol_state
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.symbol, table.c.first_date, table.c.last_date)
                            .where(table.c.dataset == PRICES.name))
        return {row.symbol: (row.first_date, row.last_date) for row in rows}


def _symbols_of(file: lake_stats.LakeFile, held) -> dict[str, dt.date]:
    """The symbols a damaged file may have held (between its log's min and max symbol) ->
    the first date to refetch for each (the file's first date, not before the symbol's own)."""
    low, high = file.stats.get("min.symbol"), file.stats.get("max.symbol")
    since = file.stats.get("min.date")
    if since is None and file.month:
        since = dt.date.fromisoformat(file.month + "-01")
    until = file.stats.get("max.date")
    out = {}
    for symbol, (first, _) in held.items():
        if low is not None and high is not None and not low <= symbol <= high:
            continue
        if first is not None and until is not None and first > until:  # the symbol starts after the file
            continue
        out[symbol] = max((d for d in (since, first) if d is not None), default=dt.date(1900, 1, 1))
    return out


def _mark_refetch(engine, settings: Settings, marks: dict[str, dt.date]) -> None:
    """Lower each symbol's last_date to what the lake still holds and set refetch_from."""
    newest = lake_newest(settings)
    with engine.begin() as conn:
        known = state.read_states(conn, PRICES.name, sorted(marks))
        rows = []
        for symbol, since in marks.items():
            row = known.get(symbol, {})
            last, kept = row.get("last_date"), newest.get(symbol)
            refetch = min(d for d in (since, row.get("refetch_from")) if d is not None)
            rows.append({"symbol": symbol, "dataset": PRICES.name, "refetch_from": refetch,
                         "last_date": kept if last is None or kept is None or kept < last else last})
        state.save_states(conn, rows)


def lake_newest(settings: Settings) -> dict[str, dt.date]:
    """symbol -> the newest prices_daily date the lake holds."""
    from ..storage.lake import Lake

    rows = Lake(settings.lake_dir).read(PRICES, columns=["symbol", "date"])
    if not rows.num_rows:
        return {}
    newest = rows.group_by("symbol").aggregate([("date", "max")])
    return dict(zip(newest["symbol"].to_pylist(), newest["date_max"].to_pylist()))
