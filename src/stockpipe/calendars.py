"""Trading sessions per exchange, from exchange-calendars: "is there a new close?".

A symbol trades on one exchange (an ISO 10383 MIC such as XNYS, XLON, XTKS), found by
`exchange_for` from the whole symbol or its suffix (`VOD.L`, `7203.T`), with the config's
`[exchanges]` table over the built-in `DEFAULT_SUFFIXES`. Everything else asks that
exchange's calendar: holidays, early closes (13:00 New York the day after Thanksgiving),
daylight-saving changes and lunch breaks all come from exchange-calendars; nothing here
lists a holiday by hand.

Decisions:
    * The trading date is the exchange's own session date, found from an aware instant
      (`now`, in any zone): never the machine's local date. A naive `now` is refused.
    * A session counts as closed at its real close, early closes included, so at 12:59 New
      York on the day after Thanksgiving the latest closed session is still Wednesday.
    * One calendar per exchange per process, built lazily on first use (get_calendar
      takes 0.1-1 s), then kept as two sorted lists (session date ordinals, close
      instants) so each question is a binary search (microseconds, no pandas). It covers
      1990 (or the calendar's earliest date, e.g. 1997 for XTKS) to a year after today,
      and is rebuilt wider, once, if a question reaches outside that.
    * Before the earliest date a calendar can evaluate, no sessions are known:
      `sessions_between` returns only known sessions and `is_session` says False. Past
      the last date one knows (exchange-calendars 4.13 stops XSHG, XSES and XBOM at
      2026-12-31) every question raises ConfigError ("upgrade exchange-calendars"), as
      do an unknown MIC and a calendar exchange-calendars cannot build (ASEX, XTAE).
    * exchange_calendars and pandas are imported inside functions, so importing this
      module stays cheap (`health-check` and `--help` never import pandas).
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

from .errors import ConfigError

log = logging.getLogger("stockpipe")

DEFAULT_EXCHANGE = "XNYS"

# Yahoo-style symbol suffix -> MIC of the exchange-calendars calendar. The config's
# [exchanges] table adds to and overrides these (keys: ".SUFFIX" or a whole symbol).
DEFAULT_SUFFIXES: dict[str, str] = {
    ".L": "XLON", ".IL": "XLON",  # London (IL: international order book)
    ".DE": "XETR",  # Xetra
    ".F": "XFRA",  # Frankfurt floor
    ".SG": "XSTU", ".DU": "XDUS", ".HM": "XHAM",  # Stuttgart, Düsseldorf, Hamburg
    ".PA": "XPAR", ".AS": "XAMS", ".BR": "XBRU", ".LS": "XLIS",  # Euronext
    ".MI": "XMIL", ".MC": "XMAD", ".SW": "XSWX", ".VX": "XSWX", ".VI": "XWBO",
    ".IR": "XDUB", ".ST": "XSTO", ".OL": "XOSL", ".CO": "XCSE", ".HE": "XHEL", ".IC": "XICE",
    ".WA": "XWAR", ".PR": "XPRA", ".BD": "XBUD", ".IS": "XIST",
    ".TO": "XTSE", ".V": "XTSX", ".MX": "XMEX", ".SA": "BVMF", ".SN": "XSGO", ".BA": "XBUE",
    ".T": "XTKS", ".HK": "XHKG", ".SS": "XSHG", ".KS": "XKRX", ".TW": "XTAI", ".BO": "XBOM",
    ".SI": "XSES", ".KL": "XKLS", ".BK": "XBKK", ".JK": "XIDX",
    ".AX": "XASX", ".NZ": "XNZE", ".JO": "XJSE", ".SR": "XSAU",
}
# Not mapped: Athens (ASEX) and Tel Aviv (XTAE) fail to build in exchange-calendars 4.13.

_HISTORY_FROM = dt.date(1990, 1, 1)  # default start of a calendar's coverage
_FLOOR = dt.date(1900, 1, 1)  # the earliest date ever asked of exchange-calendars
_AHEAD = dt.timedelta(days=366)  # coverage past today (and past any date asked about)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ------------------------------------------------------------------ symbol -> exchange


def exchange_for(symbol: str, overrides: Mapping[str, str] | None = None) -> str:
    """The exchange (MIC) whose calendar `symbol` trades on.

    First match wins: `overrides[symbol]` (a whole symbol), `overrides[".SUFFIX"]`,
    `DEFAULT_SUFFIXES[".SUFFIX"]`; then a one-letter suffix is a US class share (BRK.B,
    BF.A) and no suffix at all is US: both `DEFAULT_EXCHANGE` (XNYS; XNAS has the same
    sessions). An unknown longer suffix is planned on XNYS with a warning: map it in the
    config's [exchanges] table.

    Args:
        symbol: a ticker.
        overrides: the config's [exchanges] table (Settings.exchanges); keys and values
            are matched case-insensitively.
    """
    return exchange_resolver(overrides)(symbol)


def exchange_resolver(overrides: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """`exchange_for` with `overrides` read once: for mapping a whole universe."""
    table = {str(k).strip().upper(): str(v).strip().upper() for k, v in (overrides or {}).items()}

    def resolve(symbol: str) -> str:
        symbol = symbol.strip().upper()
        if symbol in table:
            return table[symbol]
        head, dot, tail = symbol.rpartition(".")
        if not dot or not head or not tail:
            return DEFAULT_EXCHANGE
        suffix = "." + tail
        if suffix in table:
            return table[suffix]
        if suffix in DEFAULT_SUFFIXES:
            return DEFAULT_SUFFIXES[suffix]
        if len(tail) > 1:
            _warn_unknown_suffix(suffix)
        return DEFAULT_EXCHANGE

    return resolve


_warned: set[str] = set()


def _warn_unknown_suffix(suffix: str) -> None:
    if suffix not in _warned:
        _warned.add(suffix)
        log.warning("unknown symbol suffix %s: planning on the %s calendar; map it in the config's "
                    "[exchanges] table (e.g. \"%s\" = \"XLON\")", suffix, DEFAULT_EXCHANGE, suffix)


# ------------------------------------------------------------------------ sessions


def check_exchanges(overrides: Mapping[str, str]) -> None:
    """Refuse an [exchanges] value exchange-calendars does not know (imports it: call only
    with a non-empty table, from commands that need the calendars anyway).

    Raises:
        ConfigError: names the key, the value, the nearest known MIC and the source.
    """
    if not overrides:
        return
    import difflib

    import exchange_calendars as xcals

    names = sorted(xcals.get_calendar_names(include_aliases=True))
    for key, mic in overrides.items():
        if mic not in names:
            near = difflib.get_close_matches(str(mic), names, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise ConfigError(f"[exchanges] {key} = {mic!r} is not an exchange exchange_calendars knows: {hint}use one "
                              "of its MICs (XNYS, XNAS, XLON, XETR, XTKS, ...: exchange_calendars.get_calendar_names())")


def is_session(day: dt.date, exchange: str = DEFAULT_EXCHANGE) -> bool:
    """Whether `day` is a trading session (full or early close) of `exchange`."""
    table = _covering(exchange, day, day)
    i = bisect.bisect_left(table.days, day.toordinal())
    return i < len(table.days) and table.days[i] == day.toordinal()


def latest_closed_session(now: dt.datetime, exchange: str = DEFAULT_EXCHANGE) -> dt.date:
    """The trading date of the newest session of `exchange` whose close is at or before `now`.

    Early closes count at their real time (13:00 New York the day after Thanksgiving).

    Args:
        now: an aware datetime, in any zone.
        exchange: MIC of the exchange.

    Raises:
        ValueError: `now` is naive, or no session of the calendar closed by then.
        ConfigError: `exchange` is not a calendar exchange-calendars knows.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("latest_closed_session needs an aware datetime: the machine's local time "
                         "is never the trading date")
    utc_day = now.astimezone(dt.timezone.utc).date()
    # A session dated after the UTC date plus one cannot have closed yet; the one before
    # `now` is within a few weeks (the longest market closures are days).
    table = _covering(exchange, utc_day - dt.timedelta(days=31), utc_day + dt.timedelta(days=1))
    i = bisect.bisect_right(table.closes, now.timestamp()) - 1
    if i < 0:
        raise ValueError(f"no session of {table.exchange} closed by {now.isoformat()} "
                         f"(its calendar starts {table.first.isoformat()})")
    return dt.date.fromordinal(table.days[i])


def sessions_between(start: dt.date, end: dt.date, exchange: str = DEFAULT_EXCHANGE) -> list[dt.date]:
    """Every session date of `exchange` in [start, end] (both included), in order."""
    if start > end:
        return []
    table = _covering(exchange, start, end)
    lo = bisect.bisect_left(table.days, start.toordinal())
    hi = bisect.bisect_right(table.days, end.toordinal())
    return [dt.date.fromordinal(d) for d in table.days[lo:hi]]


def timezone(exchange: str = DEFAULT_EXCHANGE) -> str:
    """The exchange's IANA time zone (its trading dates are dates in this zone)."""
    today = utcnow().date()
    return _covering(exchange, today, today).tz


def previous_session(day: dt.date, exchange: str = DEFAULT_EXCHANGE) -> dt.date | None:
    """The last session of `exchange` on or before `day` (None: none is known)."""
    table = _covering(exchange, day - dt.timedelta(days=31), day)
    i = bisect.bisect_right(table.days, day.toordinal()) - 1
    return dt.date.fromordinal(table.days[i]) if i >= 0 else None


def session_close(day: dt.date, exchange: str = DEFAULT_EXCHANGE) -> dt.datetime:
    """The close of session `day` of `exchange`, as an aware UTC datetime.

    Raises:
        ValueError: `day` is not a session.
    """
    table = _covering(exchange, day, day)
    i = bisect.bisect_left(table.days, day.toordinal())
    if i == len(table.days) or table.days[i] != day.toordinal():
        raise ValueError(f"{day.isoformat()} is not a session of {table.exchange}")
    return dt.datetime.fromtimestamp(table.closes[i], dt.timezone.utc)


# ------------------------------------------------------------------------ the cache


@dataclass(frozen=True)
class _Table:
    """One exchange's sessions in [first, last]: date ordinals and close instants, sorted."""

    exchange: str
    first: dt.date  # coverage (the calendar may start later: the first session)
    last: dt.date
    floor: dt.date  # the earliest date the calendar can evaluate
    ceiling: dt.date | None  # the latest, when the calendar has a limit
    days: list[int]
    closes: list[float]  # POSIX seconds
    tz: str = "America/New_York"  # the exchange's IANA time zone


_tables: dict[str, _Table] = {}
_lock = threading.Lock()


def _covering(exchange: str, lo: dt.date, hi: dt.date) -> _Table:
    """The cached table of `exchange`, rebuilt wider when [lo, hi] reaches outside it.

    Raises:
        ConfigError: an unknown exchange, or `hi` past the last date its calendar knows.
    """
    name = exchange.strip().upper()
    table = _tables.get(name)
    if table is None or not _covers(table, lo, hi):
        with _lock:
            table = _tables.get(name)
            if table is None or not _covers(table, lo, hi):
                first = min(lo, table.first if table else _HISTORY_FROM, _HISTORY_FROM)
                last = max(hi, table.last if table else hi, utcnow().date()) + _AHEAD
                table = _build(name, first, last)
                _tables[name] = table
    if table.ceiling is not None and hi > table.ceiling:
        raise ConfigError(f"the {name} calendar of exchange-calendars knows sessions only up to "
                          f"{table.ceiling.isoformat()}: upgrade exchange-calendars")
    return table


def _covers(table: _Table, lo: dt.date, hi: dt.date) -> bool:
    return max(lo, table.floor) >= table.first and (hi <= table.last or table.last == table.ceiling)


def _build(name: str, first: dt.date, last: dt.date) -> _Table:
    import exchange_calendars as xcals
    from exchange_calendars.errors import InvalidCalendarName

    first = max(first, _FLOOR)
    try:
        with warnings.catch_warnings():
            # exchange-calendars 4.13 uses pandas APIs that pandas 3.1 deprecates: not ours to fix
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            try:
                calendar = xcals.get_calendar(name, start=first.isoformat(), end=last.isoformat())
            except ValueError:  # outside the calendar's bounds (XTKS starts 1997): clip to them
                bounds = xcals.get_calendar(name)
                first = max(first, _date(bounds.bound_min()) or first)
                last = min(last, _date(bounds.bound_max()) or last)
                calendar = xcals.get_calendar(name, start=first.isoformat(), end=last.isoformat())
    except InvalidCalendarName:
        raise ConfigError(f"unknown exchange {name!r}: use a MIC exchange-calendars knows (XNYS, XNAS, XLON, "
                          "XETR, XTKS, ...) in the config's [exchanges] table") from None
    except (ValueError, NotImplementedError) as exc:
        raise ConfigError(f"exchange-calendars cannot build the {name} calendar ({str(exc)[:200]}): map its "
                          "symbols to another exchange in the config's [exchanges] table") from None
    floor = max(_date(calendar.bound_min()) or _FLOOR, _FLOOR)
    days = (calendar.sessions.to_numpy().astype("datetime64[D]").astype("int64") + _EPOCH_ORDINAL).tolist()
    closes = (calendar.closes.dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype("int64") / 1e9).tolist()
    log.debug("calendar %s: %d sessions %s..%s", name, len(days), first, last)
    return _Table(name, first, last, floor, _date(calendar.bound_max()), days, closes, str(calendar.tz))


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _date(value) -> dt.date | None:
    return None if value is None else value.date()


def _clear_cache() -> None:
    """Forget every built calendar (for tests)."""
    with _lock:
        _tables.clear()
