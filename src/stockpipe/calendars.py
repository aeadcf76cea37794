"""Trading sessions: which date is the latest closed session, and which dates are sessions.

The trunk knows weekday sessions with the exchange's closing time in its own time zone
(so the trading date is never the machine's local date). Holidays come with
exchange-calendars in the calendars issue; until then a holiday looks like a session
that produced no bar.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

# exchange -> (time zone, local closing time)
EXCHANGES: dict[str, tuple[str, dt.time]] = {
    "XNYS": ("America/New_York", dt.time(16, 0)),
    "XNAS": ("America/New_York", dt.time(16, 0)),
    "XLON": ("Europe/London", dt.time(16, 30)),
    "XETR": ("Europe/Berlin", dt.time(17, 30)),
    "XTKS": ("Asia/Tokyo", dt.time(15, 0)),
}
DEFAULT_EXCHANGE = "XNYS"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def exchange_for(symbol: str, overrides: dict[str, str] | None = None) -> str:
    """The exchange (MIC) whose calendar a symbol trades on (by suffix, then overrides)."""
    overrides = overrides or {}
    if symbol in overrides:
        return overrides[symbol]
    suffix = symbol.rsplit(".", 1)[1] if "." in symbol else ""
    return overrides.get("." + suffix, DEFAULT_EXCHANGE) if suffix else DEFAULT_EXCHANGE


def is_session(day: dt.date, exchange: str = DEFAULT_EXCHANGE) -> bool:
    return day.weekday() < 5


def latest_closed_session(now: dt.datetime, exchange: str = DEFAULT_EXCHANGE) -> dt.date:
    """The trading date of the newest session whose close is at or before `now`.

    Args:
        now: an aware datetime (any zone).
        exchange: MIC of the exchange.
    """
    zone, close = EXCHANGES.get(exchange, EXCHANGES[DEFAULT_EXCHANGE])
    local = now.astimezone(ZoneInfo(zone))
    day = local.date() if local.time() >= close else local.date() - dt.timedelta(days=1)
    while not is_session(day):
        day -= dt.timedelta(days=1)
    return day


def sessions_between(start: dt.date, end: dt.date, exchange: str = DEFAULT_EXCHANGE) -> list[dt.date]:
    """Every session date in [start, end]."""
    days = (end - start).days + 1
    return [d for d in (start + dt.timedelta(days=i) for i in range(max(days, 0))) if is_session(d)]
