"""SMA, EMA and Wilder RSI for many symbols at once, equal to TA-Lib after its warm-up.

TA-Lib is the reference users compare with (PERFORMANCE.md section 4): same warm-up (NaN)
bars, same seeds, same order of floating-point operations in the recursions.

No loop runs per symbol. Rows are sorted by (symbol, date), then copied into a *time-major
ragged* buffer: bar 0 of every symbol, then bar 1 of every symbol that has one, and so on,
symbols ranked longest first. Bar t is then one slice whose first entries are bar t-1's
symbols, so each indicator is one Python loop over the time axis, each step a few numpy
operations over all symbols, with no padding stored; results are gathered back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpipe.models import INDICATOR_COLUMNS

# SMA running sums are summed afresh every this many bars, so their rounding error stays
# that of a few dozen steps however long the history (a plain cumsum drifts with length).
_RESTART = 64


@dataclass(frozen=True)
class _Layout:
    """Where each row sits, once sorted, and in the time-major buffer."""

    order: np.ndarray | slice  # input positions in (symbol, date) order; a slice if sorted
    slot: np.ndarray  # index of each sorted row in the time-major buffer
    # Python ints, not numpy arrays: the time loops index them every step, and with few
    # long symbols that per-step overhead is the whole cost.
    active: list[int]  # active[t]: how many symbols have a bar t
    start: list[int]  # start[t]: where bar t begins in the time-major buffer


def compute_indicators(
    prices: pd.DataFrame, *, sma: int = 20, ema: int = 12, rsi: int = 14
) -> pd.DataFrame:
    """Compute sma_20, ema_12 and rsi_14 on close for every symbol, as TA-Lib does.

    Args:
        prices: columns symbol, date and close (finite floats) at least, any row order,
            each symbol's whole history (a recursion starts at a symbol's first bar).
        sma: SMA period; the output column keeps its name `sma_20` whatever the period.
        ema: EMA period, seeded with the SMA of the first `ema` closes.
        rsi: Wilder RSI period.

    Returns:
        One row per input row, sorted by (symbol, date): symbol, date, then
        models.INDICATOR_COLUMNS as float64, NaN on TA-Lib's warm-up bars.

    Raises:
        ValueError: a period below 2 (TA-Lib's minimum) or a missing column.
    """
    _check_input(prices, (sma, ema, rsi))
    layout, symbols = _build_layout(prices)
    by_bar = np.empty(len(layout.slot))
    by_bar[layout.slot] = prices["close"].to_numpy(dtype=np.float64)[layout.order]
    # One time-major work buffer serves SMA, then EMA, then RSI's (gain, loss) pairs: at
    # 10M rows each fresh 80 MB array costs as much in page faults as in arithmetic.
    work = np.empty((len(by_bar), 2))
    values = [f(by_bar, layout, n, work) for f, n in ((_sma, sma), (_ema, ema), (_rsi, rsi))]
    # Taking symbols from the few uniques is ~5x faster than taking the string column.
    columns = {"symbol": symbols, "date": prices["date"].array[layout.order]}
    return pd.DataFrame({**columns, **dict(zip(INDICATOR_COLUMNS, values))}, copy=False)


def _check_input(prices: pd.DataFrame, periods: tuple[int, ...]) -> None:
    """Reject what TA-Lib would reject, with the fix in the message."""
    missing = {"symbol", "date", "close"} - set(prices.columns)
    if missing:
        raise ValueError(f"compute_indicators needs columns {sorted(missing)}: add them")
    if min(periods) < 2:
        raise ValueError(f"indicator periods must be >= 2 (TA-Lib's minimum), got {periods}")


def _build_layout(prices: pd.DataFrame) -> tuple[_Layout, pd.Index]:
    """Where each row goes, and the symbol of each row in (symbol, date) order."""
    codes, symbols = pd.factorize(prices["symbol"], sort=True)
    order = _sort_order(codes, pd.DatetimeIndex(prices["date"]).asi8)
    codes = codes[order]
    symbols = symbols.take(codes)
    counts = np.bincount(codes)
    # Longest symbols first, so the symbols with a bar t are a prefix of those with t-1.
    rank = np.argsort(np.argsort(-counts, kind="stable"))
    ends = np.bincount(counts, minlength=counts.max(initial=0) + 1)
    active = len(counts) - np.cumsum(ends)[:-1]
    start = np.concatenate(([0], np.cumsum(active)))
    # slot = start[bar number] + rank[symbol], in place: mode="clip" does not buffer, and
    # each output element reads only its own index.
    slot = np.arange(len(codes))
    slot -= np.repeat(np.cumsum(counts) - counts, counts)
    np.take(start, slot, out=slot, mode="clip")
    slot += np.take(rank, codes, out=codes, mode="clip")
    return _Layout(order, slot, active.tolist(), start.tolist()), symbols


def _sort_order(codes: np.ndarray, dates: np.ndarray) -> np.ndarray | slice:
    """Positions in (symbol, date) order, from symbol codes and int64 dates.

    Rows already in order (the lake's own order) give slice(None): taking them is a view.
    Duplicate (symbol, date) rows come out in no set order.
    """
    steps = np.diff(codes)
    if np.all((steps > 0) | ((steps == 0) & (dates[1:] >= dates[:-1]))):
        return slice(None)
    # One int64 key sorts ~10x faster than np.lexsort. Dense date ranks keep it small:
    # codes and ranks are each below len(codes), so the product cannot overflow.
    ranks, _ = pd.factorize(dates, sort=True)
    key = codes * (ranks.max() + 1)
    key += ranks
    return np.argsort(key)


def _bar(layout: _Layout, t: int, width: int) -> slice:
    """The buffer slice of bar t restricted to the first `width` symbols."""
    return slice(layout.start[t], layout.start[t] + width)


def _window_sum(buffer: np.ndarray, layout: _Layout, first: int, last: int) -> np.ndarray:
    """Sum of bars first..last for the symbols that reach `last`, in TA-Lib's order."""
    width = layout.active[last]
    total = buffer[_bar(layout, first, width)].copy()
    for t in range(first + 1, last + 1):
        total += buffer[_bar(layout, t, width)]
    return total


def _sma(by_bar: np.ndarray, layout: _Layout, n: int, work: np.ndarray) -> np.ndarray:
    """TA-Lib SMA: first value at bar n-1, from running window sums.

    A running sum (add the new close, drop the oldest) gathers rounding error with every
    step, so it is summed afresh every _RESTART bars: no drift on long histories.
    """
    sums = work.reshape(-1)[: len(by_bar)]
    first = layout.start[min(n - 1, len(layout.active))]
    sums[:first] = np.nan
    for t in range(n - 1, len(layout.active)):
        width = layout.active[t]
        cur = sums[_bar(layout, t, width)]
        if (t - n + 1) % _RESTART == 0:
            cur[:] = _window_sum(by_bar, layout, t - n + 1, t)
        else:  # TA-Lib's order: (previous total - oldest close) + newest close
            oldest = by_bar[_bar(layout, t - n, width)]
            np.subtract(sums[_bar(layout, t - 1, width)], oldest, out=cur)
            cur += by_bar[_bar(layout, t, width)]
    sums[first:] /= n
    return sums[layout.slot]


def _ema(by_bar: np.ndarray, layout: _Layout, n: int, work: np.ndarray) -> np.ndarray:
    """TA-Lib EMA: SMA of the first n closes at bar n-1, then prev + k*(x - prev)."""
    out = work.reshape(-1)[: len(by_bar)]
    out[: layout.start[min(n - 1, len(layout.active))]] = np.nan  # later bars all get written
    if len(layout.active) >= n:
        out[_bar(layout, n - 1, layout.active[n - 1])] = _window_sum(by_bar, layout, 0, n - 1) / n
    k = 2.0 / (n + 1)
    for t in range(n, len(layout.active)):
        width = layout.active[t]
        prev, cur = out[_bar(layout, t - 1, width)], out[_bar(layout, t, width)]
        np.subtract(by_bar[_bar(layout, t, width)], prev, out=cur)
        cur *= k
        cur += prev
    return out[layout.slot]


def _rsi(by_bar: np.ndarray, layout: _Layout, n: int, work: np.ndarray) -> np.ndarray:
    """TA-Lib RSI: Wilder averages seeded with the mean of bars 1..n, first value at bar n."""
    if len(layout.active) <= n:
        return np.full(len(by_bar), np.nan)
    avg = _gains_losses(by_bar, layout, work)
    avg[_bar(layout, n, layout.active[n])] = _window_sum(avg, layout, 1, n) / n
    scratch = np.empty((layout.active[0], 2))
    for t in range(n + 1, len(layout.active)):
        width = layout.active[t]
        cur, part = avg[_bar(layout, t, width)], scratch[:width]
        # TA-Lib's order: (prev * (n-1) + current) / n, gain and loss side by side.
        np.multiply(avg[_bar(layout, t - 1, width)], n - 1, out=part)
        np.add(part, cur, out=cur)
        cur /= n
    return _rsi_from_averages(avg, layout, n)


def _gains_losses(by_bar: np.ndarray, layout: _Layout, pairs: np.ndarray) -> np.ndarray:
    """(gain, loss) of each bar against the bar before, time-major, into `pairs`."""
    pairs[: layout.start[1]] = 0.0  # bar 0 has no previous close
    for t in range(1, len(layout.active)):
        width = layout.active[t]
        now = _bar(layout, t, width)
        np.subtract(by_bar[now], by_bar[_bar(layout, t - 1, width)], out=pairs[now, 0])
    np.negative(pairs[:, 0], out=pairs[:, 1])
    np.maximum(pairs, 0.0, out=pairs)
    return pairs


def _rsi_from_averages(avg: np.ndarray, layout: _Layout, n: int) -> np.ndarray:
    """100 * gain / (gain + loss), 0 where both are exactly 0 (TA-Lib on a flat series)."""
    first = layout.start[n]  # bars before n are warm-up
    gain, total = avg[first:, 0], avg[first:, 1]  # in place: no fresh 10M-row arrays
    total += gain
    with np.errstate(invalid="ignore"):
        np.divide(gain, total, out=gain)
    # Gains and losses are >= 0, so 0/0 is the only NaN here; fmax turns it into 0.
    np.fmax(gain, 0.0, out=gain)
    gain *= 100.0
    avg[:first, 0] = np.nan
    return avg[:, 0][layout.slot]
