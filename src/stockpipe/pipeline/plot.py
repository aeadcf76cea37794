"""`plot SYMBOL --out FILE.png|.svg`: a symbol's bars from the warehouse as a picture.

The overlays (SMA 20/50, Bollinger 20/2, RSI 14, MACD 12/26/9) are computed here by the
same TA-Lib code as indicators_daily (stages/indicators.py), over the symbol's whole held
history and then cut to the window, but from the series drawn: as traded by default, or
adjusted for splits and dividends with --adjusted. So the lines always sit on the candles;
indicators_daily itself is on split-adjusted prices, which differ from both before a split.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from .. import calendars, charts, files
from ..config import Settings
from ..errors import NoDataError, UsageError
from ..outputs import WrittenResult
from ..storage import reads
from .reading import open_reader

DEFAULT_DAYS = 365  # calendar days drawn before the last bar when --start is not given
OVERLAYS = ("sma_20", "sma_50", "bb_upper", "bb_middle", "bb_lower", "rsi_14", "macd", "macd_signal", "macd_hist")
STYLES = ("candle", "line")


def plot(settings: Settings, symbol: str, out: Path, start: dt.date | None = None, end: dt.date | None = None,
         adjusted: bool = False, style: str = "candle") -> WrittenResult:
    """Draw `symbol`'s bars in [start, end] (default: the year up to its last bar) into `out`.

    Raises:
        ConfigError: matplotlib is missing (the message says how to install it).
        UsageError: `out` is not a .png or .svg in an existing directory, or a bad style.
        NoDataError: the warehouse holds no bar of the symbol in the window.
    """
    charts.require()
    files.check_output(out, "--out", (".png", ".svg"))
    if style not in STYLES:
        raise UsageError(f"--style {style!r}: use one of {', '.join(STYLES)}")
    with open_reader(settings).connect() as conn:
        held = reads.bars(conn, symbol, adjusted=adjusted, end=end)
        actions = reads.actions(conn, symbol, end=end)
    if not held:
        raise NoDataError(f"the warehouse holds no bars for {symbol}"
                          + (f" up to {end}" if end else "") + f": fetch it first (`stockpipe run --symbol {symbol}`)")
    frame = _with_overlays(symbol, held)
    last = frame["date"].iloc[-1]
    first = start or last - dt.timedelta(days=DEFAULT_DAYS)
    frame = frame[frame["date"] >= first]
    if frame.empty:
        raise NoDataError(f"the warehouse holds no bars for {symbol} from {first} on (its last is {last})")
    chart = _chart(settings, symbol, frame, actions, adjusted, style)
    fmt = out.suffix.lower().lstrip(".")
    files.write_atomic(out, charts.draw(chart, fmt))
    sessions = len(chart.sessions)
    what = (f"{symbol} {chart.sessions[0]}..{chart.sessions[-1]}, {len(frame)} bars over {sessions} sessions, "
            + ("adjusted" if adjusted else "as traded"))
    return WrittenResult("plot", out, what, {"symbol": symbol, "format": fmt, "bars": len(frame), "sessions": sessions,
                                             "start": chart.sessions[0], "end": chart.sessions[-1],
                                             "adjusted": adjusted})


def _with_overlays(symbol: str, held: list[dict]):
    """The bars as a frame (date as datetime.date) with the OVERLAYS columns."""
    import pandas as pd

    from ..stages.indicators import compute_indicators

    bars = pd.DataFrame(held)
    bars["symbol"] = symbol
    bars["date"] = pd.to_datetime(bars["date"])
    computed = compute_indicators(bars[["symbol", "date", "open", "high", "low", "close", "volume"]].astype(
        {"open": float, "high": float, "low": float, "close": float, "volume": float}))
    frame = bars.drop(columns="symbol").reset_index(drop=True)
    frame[list(OVERLAYS)] = computed[list(OVERLAYS)].to_numpy()
    frame["date"] = frame["date"].dt.date
    return frame


def _chart(settings: Settings, symbol: str, frame, actions: list[dict], adjusted: bool, style: str) -> charts.Chart:
    import numpy as np

    exchange = calendars.exchange_for(symbol, settings.exchanges)
    sessions = calendars.sessions_between(frame["date"].iloc[0], frame["date"].iloc[-1], exchange)
    held_days = set(frame["date"])
    sessions = sorted(set(sessions) | held_days)  # a bar on a day the calendar lacks keeps its slot too
    slot = {day: i for i, day in enumerate(sessions)}
    positions = np.array([slot[d] for d in frame["date"]])
    series = {}
    for name in ("open", "high", "low", "close", "volume", *OVERLAYS):
        values = np.full(len(sessions), np.nan)
        values[positions] = frame[name].to_numpy(dtype=float)
        series[name] = values
    providers = sorted(set(frame["provider"]))
    label = ", ".join(f"{p} (synthetic data)" if p == "demo" else p for p in providers)
    how = "adjusted for splits and dividends" if adjusted else "as traded"
    title = f"{symbol}  ·  daily, {how}  ·  provider {label}"
    gaps = len(sessions) - len(held_days)
    notes = (f"{gaps} session(s) without a bar left empty",) if gaps else ()
    marks = tuple((a["date"], a["kind"], float(a["value"])) for a in actions if a["date"] in slot)
    return charts.Chart(title, sessions, series, marks, style, notes)
