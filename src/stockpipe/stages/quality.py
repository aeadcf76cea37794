"""Quality rules on the warehouse's per-symbol statistics. Pure.

Each rule has a name, a severity and a threshold; the result is one `Check` per
(rule, symbol) with the observed value, so `quality_results` says exactly what was seen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Sequence

from ..calendars import sessions_between
from ..models import Check

# (name, severity, what a failure means). Threshold: at most 0 offending rows.
COUNT_RULES = (
    ("price_positive", "error", "rows with a price <= 0"),
    ("volume_non_negative", "error", "rows with volume < 0"),
    ("high_encloses", "error", "rows with high < max(open, close)"),
    ("low_encloses", "error", "rows with low > min(open, close)"),
    ("duplicate_keys", "error", "duplicate (symbol, date) keys"),
)


def evaluate(
    stats: Sequence[Mapping[str, Any]],
    symbols: Sequence[str],
    latest_session: dt.date,
    stale_after_sessions: int,
) -> list[Check]:
    """Judge every rule for every symbol of the universe.

    A symbol with no rows at all fails only `stale` (a warning: the next fetch fills it).
    """
    by_symbol = {row["symbol"]: row for row in stats}
    checks: list[Check] = []
    for symbol in symbols:
        row = by_symbol.get(symbol)
        if row is not None:
            checks += [_count_check(name, severity, what, symbol, row[name]) for name, severity, what in COUNT_RULES]
        checks.append(_stale_check(symbol, row and row["last_date"], latest_session, stale_after_sessions))
    return checks


def _count_check(name: str, severity: str, what: str, symbol: str, observed: Any) -> Check:
    observed = int(observed or 0)
    detail = f"{observed} {what}" if observed else "ok"
    return Check(name, observed == 0, detail, severity, symbol, float(observed), 0.0)


def _stale_check(symbol: str, last: dt.date | None, latest: dt.date, allowed: int) -> Check:
    if last is None:
        return Check("stale", False, "no bars in the warehouse", "warn", symbol, None, float(allowed))
    missing = len(sessions_between(last + dt.timedelta(days=1), latest))
    detail = f"last bar {last.isoformat()}, {missing} session(s) behind {latest.isoformat()}"
    return Check("stale", missing <= allowed, detail, "warn", symbol, float(missing), float(allowed))
