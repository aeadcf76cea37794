"""`stockpipe plot`'s picture, drawn with matplotlib (the optional extra `stockpipe[plot]`).

Pure: it takes the series already aligned to the exchange's sessions and returns the PNG
or SVG bytes; it reads and writes nothing. The x axis has one slot per session of the
calendar (no weekend or holiday slots), and a session the data lacks stays an empty slot:
lines break there (NaN), nothing is interpolated.

Why matplotlib and not mplfinance (measured, bench/bench_plot.py on this 2-core machine,
500 bars, 4 panels, medians of 3 cold processes): rendering takes the same time (this
module's full chart 0.85 s, mplfinance's simpler one 0.88 s; imports 0.14 s vs 0.63 s), but
mplfinance 0.12.10b0 is a beta last released in 2023 whose import fails on a
clean install (it imports `six` without declaring it), and it places bars by row number,
so a missing session would vanish instead of staying a gap. matplotlib's object API
(`Figure`, no pyplot) also keeps no global state between plots.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import ConfigError

INSTALL_HINT = "plot needs matplotlib: pip install 'stockpipe[plot]' (or: pip install matplotlib)"
UP, DOWN = "#2e9d5b", "#d1493f"
PANELS = ("price", "volume", "rsi", "macd")


def require() -> None:
    """Raises ConfigError (exit 4) saying how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401 - only asking whether it is installed
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None


@dataclass(frozen=True)
class Chart:
    """What one picture shows: `series` maps a name (open, high, low, close, volume, sma_20,
    sma_50, bb_upper, bb_middle, bb_lower, rsi_14, macd, macd_signal, macd_hist) to values
    aligned to `sessions`, NaN where the data has no bar."""

    title: str
    sessions: Sequence[dt.date]
    series: dict[str, Any]
    actions: Sequence[tuple[dt.date, str, float]] = ()  # (ex-date, split | dividend, value)
    style: str = "candle"  # or "line"
    notes: Sequence[str] = field(default_factory=tuple)


def draw(chart: Chart, fmt: str) -> bytes:
    """The chart as `fmt` (png or svg) bytes; SVG keeps its text as text (searchable).

    Raises:
        ConfigError: matplotlib is not installed.
    """
    require()
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.25}):
        fig = Figure(figsize=(11, 8), dpi=100, layout="constrained")
        axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1.1, 1.2, 1.2]})
        fig.suptitle(chart.title, fontsize=11, fontweight="bold")
        _price(axes[0], chart)
        _volume(axes[1], chart)
        _rsi(axes[2], chart)
        _macd(axes[3], chart)
        _mark_actions(axes, chart)
        _date_ticks(axes[3], chart.sessions)
        fig.draw_without_rendering()  # lays the panels out, so their boxes are known
        boxes = json.dumps(panel_boxes(fig, axes))
        buffer = io.BytesIO()
        metadata = {"Title": chart.title, "Description": f"panels {boxes}"}
        fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def panel_boxes(fig, axes) -> dict[str, list[int]]:
    """Each panel's box in image pixels, [left, top, right, bottom] from the top left corner
    (written into the file's Description, so a test or a tool can find the panels)."""
    height = fig.bbox.height
    boxes = {}
    for name, ax in zip(PANELS, axes):
        box = ax.get_window_extent()
        boxes[name] = [round(box.x0), round(height - box.y1), round(box.x1), round(height - box.y0)]
    return boxes


def _x(chart: Chart):
    import numpy as np

    return np.arange(len(chart.sessions))


def _price(ax, chart: Chart) -> None:
    import numpy as np

    s, x = chart.series, _x(chart)
    ax.fill_between(x, s["bb_lower"], s["bb_upper"], color="#7aa6d6", alpha=0.18, label="Bollinger (20, 2)",
                    linewidth=0)
    if chart.style == "line":
        ax.plot(x, s["close"], color="#1f3b5c", linewidth=1.2, label="close")
    else:
        up = np.asarray(s["close"]) >= np.asarray(s["open"])
        colours = np.where(up, UP, DOWN)
        ax.vlines(x, s["low"], s["high"], colors=colours, linewidth=0.7)
        _boxes(ax, x, s["open"], s["close"], 0.7, colours)
    ax.plot(x, s["sma_20"], color="#e08a1e", linewidth=1.0, label="SMA 20")
    ax.plot(x, s["sma_50"], color="#7b3fa0", linewidth=1.0, label="SMA 50")
    ax.set_ylabel("price")
    ax.legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
    for i, note in enumerate(chart.notes):
        ax.annotate(note, (0.995, 0.98 - 0.06 * i), xycoords="axes fraction", ha="right", va="top", fontsize=8,
                    color="#555555")


def _volume(ax, chart: Chart) -> None:
    import numpy as np

    s = chart.series
    up = np.asarray(s["close"]) >= np.asarray(s["open"])
    _boxes(ax, _x(chart), np.zeros(len(chart.sessions)), s["volume"], 0.8, np.where(up, UP, DOWN), alpha=0.7)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("volume")


def _rsi(ax, chart: Chart) -> None:
    ax.plot(_x(chart), chart.series["rsi_14"], color="#1f77b4", linewidth=1.0)
    for level in (30, 70):
        ax.axhline(level, color="#999999", linewidth=0.7, linestyle="--")
    ax.set_ylim(0, 100)
    ax.set_ylabel("RSI 14")


def _macd(ax, chart: Chart) -> None:
    import numpy as np

    s, x = chart.series, _x(chart)
    hist = np.asarray(s["macd_hist"], dtype=float)
    _boxes(ax, x, np.zeros(len(x)), hist, 0.8, np.where(hist >= 0, UP, DOWN), alpha=0.6)
    ax.plot(x, s["macd"], color="#1f3b5c", linewidth=1.0, label="MACD 12/26")
    ax.plot(x, s["macd_signal"], color="#e08a1e", linewidth=1.0, label="signal 9")
    ax.set_ylabel("MACD")
    ax.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)


def _boxes(ax, x, bottom, top, width: float, colours, alpha: float = 1.0) -> None:
    """Bars from `bottom` to `top` at `x`, one PolyCollection (ax.bar makes a patch per bar,
    several times slower); NaN bars are left out."""
    import numpy as np
    from matplotlib.collections import PolyCollection

    x, bottom, top = (np.asarray(a, dtype=float) for a in (x, bottom, top))
    keep = np.isfinite(bottom) & np.isfinite(top)
    x, bottom, top, colours = x[keep], bottom[keep], top[keep], np.asarray(colours)[keep]
    half = width / 2
    corners = np.stack([np.column_stack(pair) for pair in ((x - half, bottom), (x - half, top), (x + half, top),
                                                           (x + half, bottom))], axis=1)
    ax.add_collection(PolyCollection(corners, facecolors=colours, edgecolors="none", alpha=alpha))
    ax.update_datalim(np.column_stack([np.concatenate([x, x]), np.concatenate([bottom, top])]))
    ax.autoscale_view()


def _mark_actions(axes, chart: Chart) -> None:
    """A dotted line through every panel at each ex-date, and a labelled marker on the time
    axis of the price panel: S for a split (its ratio), D for a dividend (cash per share)."""
    slot = {day: i for i, day in enumerate(chart.sessions)}
    price = axes[0]
    for day, kind, value in chart.actions:
        if day not in slot:
            continue
        colour = "#b8860b" if kind == "dividend" else "#c0392b"
        for ax in axes:
            ax.axvline(slot[day], color=colour, linewidth=0.8, linestyle=":", alpha=0.9)
        label = f"S {value:g}:1" if kind == "split" else f"D {value:g}"
        price.annotate(label, (slot[day], 0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                       textcoords="offset points", ha="center", va="bottom", fontsize=7, color=colour,
                       fontweight="bold")
        price.plot([slot[day]], [0], marker="^", color=colour, markersize=6, transform=price.get_xaxis_transform(),
                   clip_on=False)


def _date_ticks(ax, sessions: Sequence[dt.date]) -> None:
    """A labelled tick at the first session of each month (every few months when many)."""
    firsts = [i for i, day in enumerate(sessions) if i == 0 or day.month != sessions[i - 1].month]
    step = max(1, len(firsts) // 12)
    ticks = firsts[::step]
    ax.set_xticks(ticks, [sessions[i].strftime("%Y-%m") for i in ticks])
    ax.set_xlim(-1, len(sessions))
