"""The `demo` provider: synthetic, deterministic, offline daily bars for any symbol.

No network, no key: anyone can try the tool. The same symbol and date always give the
same bar, whatever range is asked for, because every random number is a splitmix64
hash of (crc32(symbol), stream, day ordinal) - never a walk started at the range start.

How the series is built, per calendar day d (weekends are computed, then dropped):

* log price = symbol base (about $15-$300) + three sinusoids of symbol-specific period,
  amplitude and phase (years, months, weeks; bounded, so prices never run away)
  + a local random walk (sum of the last 20 days' hashed shocks) + white noise.
  Daily moves come out at about 1-2 %.
* Close = exp(log price) times the split state; open = the previous session's close
  with a small gap; high/low extend the open-close body by a small hashed amount.
* Splits every 504 days (72 weeks, so always on the same weekday) at a
  symbol-specific phase, alternating 2:1 forward (value 2.0) and 1:2 reverse (0.5),
  so traded prices stay bounded. Prices are as traded (unadjusted).
* Dividends every 91 days (13 weeks), cash of 0.2-0.8 % of that day's close.
* Volume: a symbol base (0.8M-16M shares) times log-normal noise, higher on big moves,
  and scaled by the split state (fewer shares trade at a higher price).

Bars exist on the sessions of the symbol's exchange only (exchange-calendars: weekends and
holidays have none; a split or dividend scheduled on a holiday moves to the next session),
and never after the latest closed session of the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import calendars
from ..errors import BadInputError, SymbolNotFoundError
from .base import ACTION_COLUMNS, BAR_COLUMNS, ParsedDaily, Payload, ProviderBase

_WALK_DAYS = 20  # length of the random-walk window
_SPLIT_PERIOD = 504  # days; a multiple of 7 and under two years
_DIVIDEND_PERIOD = 91  # days; a multiple of 7 (quarterly)
_MONDAY = dt.date(2000, 1, 3).toordinal()  # anchor that keeps events on weekdays
_EPOCH = dt.date(1970, 1, 1).toordinal()
_U64 = np.uint64
_NUMBERS = ("open", "high", "low", "close", "volume")  # bar columns the payload carries


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser; uint64 arrays wrap silently, which is what we want."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _uniforms(seed: int, streams: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Uniforms in (0, 1), shape (streams, days), each a pure function of (seed, stream, day)."""
    keys = _mix((streams.astype(_U64) << _U64(32)) + _U64(seed))[:, None]
    bits = _mix(keys + days.astype(_U64)[None, :])
    return ((bits >> _U64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _normals(seed: int, count: int, days: np.ndarray) -> np.ndarray:
    """`count` rows of standard normals over `days`, by Box-Muller on pairs of streams."""
    u = _uniforms(seed, np.arange(2 * count), days)
    return np.sqrt(-2.0 * np.log(u[:count])) * np.cos(2.0 * np.pi * u[count:])


def _log_price(p: np.ndarray, days: np.ndarray, shocks: np.ndarray, noise: np.ndarray):
    """Split-adjusted log price for consecutive calendar `days`.

    `shocks` covers `days` plus the walk window before them; `noise` covers `days`.
    """
    level = np.log(15.0) + p[0] * np.log(20.0)
    for period, amp, phase in ((2000 + 2000 * p[1], 0.4 * p[2], p[3]),
                               (150 + 250 * p[4], 0.15 * p[5], p[6]),
                               (30 + 40 * p[7], 0.03 * p[8], p[9])):
        level = level + amp * np.sin(2 * np.pi * (days / period + phase))
    # Sum the window in a fixed order (not a cumsum) so each day is bit-identical
    # whatever range it was computed in.
    walk = np.zeros(len(days))
    for k in range(_WALK_DAYS):
        walk += shocks[k : k + len(days)]
    return level + 0.008 * walk + 0.006 * noise


def _phase(u: float, period: int) -> int:
    """A day offset whose events fall on a weekday (period is a multiple of 7)."""
    slot = int(u * (period // 7) * 5)
    return 7 * (slot // 5) + slot % 5


def _series(symbol: str, start: dt.date, end: dt.date, exchange: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bars and actions for the exchange's sessions in [start, end], as JSON-ready columns."""
    seed = zlib.crc32(symbol.encode("utf-8"))
    p = _uniforms(seed, np.array([1000]), np.arange(16))[0]  # the symbol's shape
    lo, hi = start.toordinal(), end.toordinal()
    # Days before `lo`: the previous session (a long weekend is 4 days) plus the walk window.
    ext = np.arange(lo - 6 - _WALK_DAYS + 1, hi + 1)
    z = _normals(seed, 6, ext)  # row 0: walk shocks; rows 1-5: per-day noise
    days = ext[_WALK_DAYS - 1 :]
    log_p = _log_price(p, days, z[0], z[1, _WALK_DAYS - 1 :])
    since_split = days - _MONDAY - _phase(p[10], _SPLIT_PERIOD)
    state = 1.0 + (since_split // _SPLIT_PERIOD) % 2  # x2 after a reverse split
    session = _session_mask(days, exchange)
    last_session = np.maximum.accumulate(np.where(session, np.arange(len(days)), 0))
    idx = np.flatnonzero((days >= lo) & session)
    prev = last_session[idx - 1]  # the previous session, across weekends and holidays
    d, mult, noise = days[idx], state[idx], z[2:, _WALK_DAYS - 1 :][:, idx]
    open_, high, low, close = _ohlc(log_p[prev], log_p[idx], mult, noise[:3])
    # Share volume rises on big moves and falls when a reverse split doubles the price.
    move = np.abs(log_p[idx] - log_p[prev])
    volume = np.rint(8e5 * 20.0 ** p[11] * np.exp(0.35 * noise[3] + 8 * move) / mult)
    dates = np.datetime_as_string((d - _EPOCH).astype("datetime64[D]")).tolist()
    bars = {"date": dates, "open": open_.tolist(), "high": high.tolist(), "low": low.tolist(),
            "close": close.tolist(), "volume": np.maximum(volume, 1).astype(np.int64).tolist()}
    return bars, _actions(p, since_split, days, idx, prev, close, dates)


def _session_mask(days: np.ndarray, exchange: str) -> np.ndarray:
    """Which day ordinals are sessions of the exchange (weekends and holidays are not)."""
    sessions = calendars.sessions_between(dt.date.fromordinal(int(days[0])), dt.date.fromordinal(int(days[-1])),
                                          exchange)
    return np.isin(days, np.array([s.toordinal() for s in sessions], dtype=days.dtype))


def _ohlc(prev_log: np.ndarray, log_p: np.ndarray, mult: np.ndarray, z: np.ndarray):
    """Rounded open, high, low, close; z holds three rows of normals (gap, wicks)."""
    close = np.round(np.exp(log_p) * mult, 2)
    open_ = np.round(np.exp(prev_log + 0.004 * z[0]) * mult, 2)
    body_hi, body_lo = np.maximum(open_, close), np.minimum(open_, close)
    # Round the wicks first, then re-apply the body: rounding must not break high >= close.
    high = np.maximum(np.round(body_hi * np.exp(0.007 * np.abs(z[1])), 2), body_hi)
    low = np.minimum(np.round(body_lo * np.exp(-0.007 * np.abs(z[2])), 2), body_lo)
    return open_, high, np.maximum(low, 0.01), close


def _actions(p: np.ndarray, since_split: np.ndarray, days: np.ndarray, idx: np.ndarray, prev: np.ndarray,
             close: np.ndarray, dates: list[str]) -> dict[str, list[Any]]:
    """Splits and dividends, each on the first session on or after its scheduled day.

    An event falls on session i when its period counter changes between the previous
    session and i, so an event scheduled on a holiday moves to the next session, where
    the prices change.
    """
    def crossings(counter: np.ndarray, period: int) -> np.ndarray:
        return np.flatnonzero(counter[idx] // period != counter[prev] // period)

    # Even-numbered splits are 2:1 forward, odd ones 1:2 reverse (see `state` above).
    rows = [(dates[i], "split", 2.0 if since_split[idx[i]] // _SPLIT_PERIOD % 2 == 0 else 0.5)
            for i in crossings(since_split, _SPLIT_PERIOD)]
    div_yield = 0.002 + 0.006 * p[12]
    since_dividend = days - _MONDAY - _phase(p[13], _DIVIDEND_PERIOD)
    rows += [(dates[i], "dividend", max(round(float(div_yield * close[i]), 4), 0.0001))
             for i in crossings(since_dividend, _DIVIDEND_PERIOD)]
    rows.sort()
    return {"date": [r[0] for r in rows], "kind": [r[1] for r in rows],
            "value": [r[2] for r in rows]}


def _to_datetime(dates: list[str]) -> np.ndarray:
    """ISO dates to naive midnight datetime64 (pandas' default unit for parsed dates)."""
    return np.array(dates, dtype="datetime64[D]").astype("datetime64[us]")


class DemoProvider(ProviderBase):
    """Synthetic, deterministic, offline daily bars for any symbol."""

    name = "demo"

    def __init__(self, clock: Callable[[], dt.datetime] = calendars.utcnow,
                 exchange_of: Callable[[str], str] = calendars.exchange_for) -> None:
        """Make a demo provider.

        Args:
            clock: returns an aware "now"; bars stop at its latest closed session.
            exchange_of: symbol -> exchange MIC; bars fall on that exchange's sessions.
        """
        self._clock = clock
        self._exchange_of = exchange_of

    @classmethod
    def from_settings(cls, settings: Any, clock: Callable[[], dt.datetime] = calendars.utcnow) -> "DemoProvider":
        """The demo needs no settings; `clock` is the pipeline's, so both agree on "now"."""
        return cls(clock=clock, exchange_of=calendars.exchange_resolver(settings.exchanges or {}))

    def fetch_daily(self, symbol: str, start: dt.date, end: dt.date) -> Payload:
        """Generate the bars for `symbol` in [start, end], clamped to the latest close.

        Raises:
            SymbolNotFoundError: the symbol is empty.
        """
        if not symbol.strip():
            raise SymbolNotFoundError("demo: empty symbol; give a ticker such as AAPL")
        exchange = self._exchange_of(symbol)
        end = min(end, calendars.latest_closed_session(self._clock(), exchange))
        if start > end:
            bars: dict[str, Any] = {c: [] for c in ("date", *_NUMBERS)}
            actions: dict[str, Any] = {c: [] for c in ACTION_COLUMNS}
        else:
            bars, actions = _series(symbol, start, end, exchange)
        doc = {"symbol": symbol, "synthetic": True, "bars": bars, "actions": actions}
        content = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        return Payload(provider=self.name, symbol=symbol, content=content,
                       media_type="application/json", api_calls=0, source="demo (synthetic data)")

    def parse_daily(self, payload: Payload, start: dt.date, end: dt.date) -> ParsedDaily:
        """Decode a demo payload into bars and actions within [start, end].

        Raises:
            BadInputError: the payload is not a demo JSON document.
        """
        try:
            doc = json.loads(payload.content)
            bars = {c: np.asarray(doc["bars"][c], dtype=np.float64) for c in _NUMBERS}
            bars["date"] = _to_datetime(doc["bars"]["date"])
            bars["adj_close"] = np.full(len(bars["date"]), np.nan)
            actions = {"date": _to_datetime(doc["actions"]["date"]),
                       "kind": pd.array(doc["actions"]["kind"], dtype="str"),
                       "value": np.asarray(doc["actions"]["value"], dtype=np.float64)}
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInputError(f"demo payload for {payload.symbol} is unreadable ({exc}); "
                                "re-fetch it with --provider demo") from exc
        lo, hi = np.datetime64(start, "us"), np.datetime64(end, "us")
        return ParsedDaily(symbol=payload.symbol, bars=_frame(bars, BAR_COLUMNS, lo, hi),
                           actions=_frame(actions, ACTION_COLUMNS, lo, hi))


def _frame(columns: dict[str, Any], order: tuple[str, ...], lo: np.datetime64,
           hi: np.datetime64) -> pd.DataFrame:
    """A frame of the rows with lo <= date <= hi, sorted by date (numpy first: it is fast)."""
    dates = columns["date"]
    keep = np.flatnonzero((dates >= lo) & (dates <= hi))
    rows = keep[np.argsort(dates[keep], kind="stable")]
    return pd.DataFrame({name: columns[name][rows] for name in order})
