"""Session closes for `health-check`, which must not import pandas.

health-check asks "has a successful run covered every session that closed long enough
ago?", which needs each exchange's session closes; exchange-calendars needs pandas, and
health-check runs every few minutes under a monitor. So every `fetch`/`run`, which has
the calendars loaded anyway, saves the closes of its universe's exchanges from `BACK`
days before to `AHEAD` days after its run in `<data dir>/session-closes.json` (atomically:
temp file + rename), and health-check reads that file. Without it (a new data directory,
or the runs happen on another machine sharing the PostgreSQL warehouse), health-check
computes the same from the calendars and pays for the pandas import.

A file written by the latest run covers `AHEAD` days: when no run has written one for
longer than that, the last success is that old and health-check is critical anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Mapping

from .errors import StockpipeError

log = logging.getLogger("stockpipe")

FILE_NAME = "session-closes.json"
BACK, AHEAD = 31, 62  # days of sessions kept before and after the run
Closes = dict[str, list[tuple[dt.date, dt.datetime]]]  # exchange -> (session, close in UTC), in order


def exchanges_of(symbols: Iterable[str], overrides: Mapping[str, str]) -> set[str]:
    """The exchanges (MICs) the symbols trade on (no calendar is built)."""
    from .calendars import exchange_resolver

    resolve = exchange_resolver(overrides)
    return {resolve(s) for s in symbols}


def compute(exchanges: Iterable[str], now: dt.datetime) -> Closes:
    """Closes of each exchange's sessions from BACK days before `now` to AHEAD days after.

    A calendar that ends sooner (exchange-calendars stops some at a fixed date) is cut at
    a week, then a day ahead; one that cannot be built at all is left out with a warning.
    """
    from . import calendars

    day = now.astimezone(dt.timezone.utc).date()
    out: Closes = {}
    for exchange in sorted(exchanges):
        for ahead in (AHEAD, 7, 1):
            try:
                sessions = calendars.sessions_between(day - dt.timedelta(days=BACK), day + dt.timedelta(days=ahead),
                                                      exchange)
                out[exchange] = [(s, calendars.session_close(s, exchange)) for s in sessions]
                break
            except StockpipeError as exc:
                error = exc
        else:
            log.warning("no session closes for %s: %s", exchange, error)
    return out


def save(data_dir: Path, exchanges: Iterable[str], now: dt.datetime) -> None:
    """Write the closes for health-check; a failure is only a warning (the run's data is safe)."""
    closes = compute(exchanges, now)
    doc = {"saved_at": now.isoformat(),
           "exchanges": {ex: [[s.isoformat(), c.isoformat()] for s, c in rows] for ex, rows in closes.items()}}
    path = data_dir / FILE_NAME
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot save %s (%s): health-check will read the calendars instead", path, exc.strerror)
        tmp.unlink(missing_ok=True)


def load(data_dir: Path) -> Closes | None:
    """The closes the latest run saved; None when there is no usable file."""
    try:
        doc = json.loads((data_dir / FILE_NAME).read_text(encoding="utf-8"))
        return {ex: [(dt.date.fromisoformat(s), dt.datetime.fromisoformat(c)) for s, c in rows]
                for ex, rows in doc["exchanges"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
