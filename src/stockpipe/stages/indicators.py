"""The 34 indicator columns for many symbols at once, equal to TA-Lib bit for bit.

TA-Lib is the reference users compare with (PERFORMANCE.md section 4), so every column
TA-Lib has comes from TA-Lib itself, called once per symbol on contiguous numpy slices of
the rows sorted by (symbol, date). The 7 columns TA-Lib lacks are numpy over a chunk of
symbols at a time (the 52-week extremes use TA-Lib's MAX/MIN, which are exact).

Why TA-Lib per symbol rather than the time-major numpy design this module had (one Python
loop over bars, each step a few numpy operations across all symbols)? Measured side by
side on the bench's data (random walks, 504 bars per symbol, this 2-vCPU machine):
- the time-major module as it was (git 1fcaa92: SMA, EMA, RSI) took 1.0-1.6x the time of
  TA-Lib per symbol for the same 3 columns, at 2,000 and 20,000 symbols;
- extended to all 34 columns (a timing sketch with the full operation count and the
  transposes between time-major and (symbol, date) order, not yet exact) it took 2.2-4x
  the time of the TA-Lib calls per symbol: window operations over a whole chunk are bound
  by memory bandwidth, while TA-Lib's loops over one symbol stay in cache;
- it cannot be exact: TA-Lib 0.8 runs EMA-type recursions with fused multiply-add, which
  numpy lacks, and its zero tests (bands of 1e-14, some scaled by the operands) choose
  between 0.0 and a finite value on near-flat windows, where one different last bit
  moves CCI, BBANDS or MFI by far more than 1e-9;
- a symbol much longer than the others in the call runs every extra bar step at width 1:
  the 3-column version took 620 ms for one 10,000-bar symbol, TA-Lib 0.07 ms.
bench/bench_indicators.py keeps the comparisons that matter now (medians, sorted and
shuffled input, 2,000 and 20,000 symbols): this module takes 0.3-1.0x the time of a plain
TA-Lib-per-symbol loop (it is one, with talib's pandas wrapper bypassed and the inputs
gathered and the numpy columns computed a cache-sized chunk at a time), and is 6-13x
faster than pandas groupby and 40-100x faster than a per-symbol pandas loop.

Conventions (first non-NaN bar, 0-based, per symbol; NaN before it):
    sma_5/10/20/50/200: n-1; ema_12/26/50: n-1, seeded with the SMA of the first n closes;
    macd, macd_signal, macd_hist: 33 (MACD(12,26,9) as TA-Lib aligns it: both EMAs start
    at bar 25, the signal is seeded with an SMA); rsi_14: 14 (Wilder); bb_*: 19
    (BBANDS(20, 2, 2, SMA), population std); atr_14: 14 (Wilder, seeded with the SMA of
    the true range); stoch_k, stoch_d: 17 (STOCH(14, 3 SMA, 3 SMA): slow %K starts with
    %D); adx_14: 27; plus_di_14, minus_di_14: 14; cci_20: 19; willr_14: 13; mfi_14: 14;
    obv: 0 (starts at the first volume); roc_10, mom_10: 10.
    Where TA-Lib would divide by zero (a flat window, no volume, a zero close 10 bars
    back) it gives 0.0: rsi, stoch, willr, cci, mfi, adx and the DIs, roc; flat bands
    have zero width.
Columns TA-Lib lacks:
    return_1d = close / previous close - 1 and log_return_1d = ln(close / previous close),
    from bar 1 (a zero close gives inf, as numpy does); volatility_30d = sample std
    (ddof=1) of the last 30 log returns * sqrt(252), from bar 30; high_52w / low_52w =
    max(high) / min(low) of the last 252 sessions including today (intraday extremes, not
    closes), from bar 251; pct_from_high_52w = close / high_52w - 1, from bar 251;
    drawdown = close / running max(close) - 1, from bar 0.

Every value depends only on its own symbol's history up to its bar, computed in the same
order whatever else is in the frame: adding a bar to a symbol changes no earlier value of
any symbol, bit for bit (the pipeline writes only changed rows).

Memory: the result is one float64 array of 34 rows wrapped without a copy (2.7 GB at 10M
rows), plus symbol and date; the work beyond it is one chunk (~32k rows) of inputs and
scratch and the sort order. At 10M shuffled rows the process peaks at ~3.9 GB with the
0.63 GB input frame and the 2.96 GB result held: little headroom, so callers with more
rows should pass symbols in batches (transform_stage passes 2,000 at a time).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import talib

from stockpipe.models import INDICATOR_COLUMNS

# Columns filled by the per-symbol TA-Lib calls, in the order _talib_values returns them.
_TALIB_COLUMNS = (
    "sma_5", "sma_10", "sma_20", "sma_50", "sma_200", "ema_12", "ema_26", "ema_50",
    "macd", "macd_signal", "macd_hist", "rsi_14", "bb_middle", "bb_upper", "bb_lower",
    "atr_14", "stoch_k", "stoch_d", "adx_14", "plus_di_14", "minus_di_14", "cci_20",
    "willr_14", "mfi_14", "obv", "roc_10", "mom_10",
)
_REQUIRED = ("symbol", "date", "high", "low", "close", "volume")
_CHUNK_ROWS = 1 << 15  # rows gathered at a time: inputs (1 MB) and, with `since`, scratch (9 MB) stay in cache
_VOLATILITY_BARS = 30
_YEAR_BARS = 252  # sessions in a year: the 52-week window and the annualisation factor


def _unwrapped(function):
    """The TA-Lib C function without talib's pandas/polars dispatch wrapper (~2 us a call)."""
    return getattr(function, "__wrapped__", function)


_SMA, _EMA, _MACD, _RSI, _BBANDS, _ATR, _STOCH, _ADX, _PLUS_DI, _MINUS_DI = map(
    _unwrapped,
    (talib.SMA, talib.EMA, talib.MACD, talib.RSI, talib.BBANDS, talib.ATR, talib.STOCH,
     talib.ADX, talib.PLUS_DI, talib.MINUS_DI),
)
_CCI, _WILLR, _MFI, _OBV, _ROC, _MOM, _MAX, _MIN = map(
    _unwrapped,
    (talib.CCI, talib.WILLR, talib.MFI, talib.OBV, talib.ROC, talib.MOM, talib.MAX, talib.MIN),
)
_ROW = {name: row for row, name in enumerate(INDICATOR_COLUMNS)}


def _rows(names: tuple[str, ...]) -> slice | list[int]:
    """Output rows of `names`: a slice when they are consecutive (no fancy indexing)."""
    rows = [_ROW[name] for name in names]
    consecutive = rows == list(range(rows[0], rows[0] + len(rows)))
    return slice(rows[0], rows[0] + len(rows)) if consecutive else rows


_TALIB_ROWS = _rows(_TALIB_COLUMNS)


def compute_indicators(prices: pd.DataFrame, since: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Compute models.INDICATOR_COLUMNS for every row, per symbol, as TA-Lib does.

    Args:
        prices: columns symbol, date, high, low, close and volume (finite numbers; other
            columns are ignored), any row order, each symbol's whole history (recursions
            start at a symbol's first bar), already split-adjusted.
        since: symbol -> the first date wanted (None: all of the symbol's rows; a symbol
            absent: all). Every row is still computed (recursions need their history) but
            only these are returned, and only they are held beyond one chunk's scratch:
            the nightly of 1M rows of history returns its 2,000 new rows, without the
            272 MB of a full result (each value has the same bits either way).

    Returns:
        One row per input row wanted, sorted by (symbol, date): symbol, date, then
        models.INDICATOR_COLUMNS as float64, NaN on each column's warm-up bars.

    Raises:
        ValueError: a required column is missing.
    """
    missing = [name for name in _REQUIRED if name not in prices.columns]
    if missing:
        raise ValueError(f"compute_indicators needs columns {missing}: add them")
    order, symbols, counts = _sort(prices)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    inputs = [_numbers(prices[name]) for name in ("close", "high", "low", "volume")]
    keep = None if since is None else _wanted(_dates(prices["date"], order), symbols, counts, since)
    # One array for all outputs, a row per column: the frame below wraps it without a copy
    # (at 10M rows it is 2.7 GB, so a second copy would not fit the 4 GB budget). With
    # `since`, each chunk is computed in one reused scratch and its wanted rows copied out.
    values = np.empty((len(INDICATOR_COLUMNS), len(prices) if keep is None else int(keep.sum())))
    scratch, kept = None, 0
    for first, last in _chunks(bounds):
        lo, hi = int(bounds[first]), int(bounds[last])
        rows = slice(lo, hi) if isinstance(order, slice) else order[lo:hi]
        close, high, low, volume = (
            np.ascontiguousarray(column[rows], dtype=np.float64) for column in inputs
        )
        edges = bounds[first : last + 1] - lo
        if keep is None:
            out = values[:, lo:hi]
        else:
            scratch = scratch if scratch is not None and scratch.shape[1] >= hi - lo else np.empty(
                (len(INDICATOR_COLUMNS), max(hi - lo, _CHUNK_ROWS)))
            out = scratch[:, : hi - lo]
        with np.errstate(divide="ignore", invalid="ignore"):
            _talib_columns(out, close, high, low, volume, edges)
            _numpy_columns(out, close, edges)
        if keep is not None:
            wanted = keep[lo:hi]
            taken = int(wanted.sum())
            values[:, kept : kept + taken] = out[:, wanted]
            kept += taken
    del scratch
    frame = pd.DataFrame(values.T, columns=list(INDICATOR_COLUMNS), copy=False)
    dates = _dates(prices["date"], order)
    del order  # freed before the symbol codes are made: the peak of the whole call is here
    # Taking symbols from the few uniques is ~5x faster than taking the string column.
    # intp codes: int32 would be widened to a temporary copy by the take, a higher peak.
    codes = np.repeat(np.arange(len(symbols)), counts)
    if keep is not None:
        dates, codes = dates[keep].reset_index(drop=True), codes[keep]
    frame.insert(0, "date", dates)
    frame.insert(0, "symbol", symbols.take(codes))
    return frame


def _wanted(dates: pd.Series, symbols: pd.Index, counts: np.ndarray, since: Mapping[str, Any]) -> np.ndarray:
    """Which rows (in (symbol, date) order) `since` asks for: on or after their symbol's
    first wanted date (None or absent: every row; NaT is the smallest int64)."""
    firsts = pd.DatetimeIndex([since.get(s) for s in symbols]).as_unit("ns").asi8
    return pd.DatetimeIndex(dates).as_unit("ns").asi8 >= np.repeat(firsts, counts)


def _dates(dates: pd.Series, order: np.ndarray | slice) -> pd.Series:
    """The date column in output order, without a full-size temporary.

    Sorted input: a Series view of the caller's dates (no copy) that copy-on-write keeps
    apart from later writes to either frame. Otherwise datetime64 dates are taken a chunk
    at a time: a single take would first widen all the int32 positions to int64, 80 MB
    more at the peak of the call at 10M rows.
    """
    if isinstance(order, slice):
        return dates.iloc[order].reset_index(drop=True)
    values = dates.to_numpy()
    if values.dtype.kind != "M":  # dates as objects, tz-aware timestamps: pandas takes them
        return pd.Series(dates.array.take(order), copy=False)
    taken = np.empty_like(values)
    for lo in range(0, len(order), _CHUNK_ROWS):
        np.take(values, order[lo : lo + _CHUNK_ROWS], out=taken[lo : lo + _CHUNK_ROWS])
    return pd.Series(taken, copy=False)  # DataFrame.insert copies a bare array, not this


def _numbers(column: pd.Series) -> np.ndarray:
    """A numeric column as numpy without a copy when it is one (int volume is cast per chunk)."""
    values = column.to_numpy()
    return values if values.dtype.kind in "fiu" else column.to_numpy(dtype=np.float64)


def _sort(prices: pd.DataFrame) -> tuple[np.ndarray | slice, pd.Index, np.ndarray]:
    """Row order by (symbol, date), the distinct symbols sorted, and rows per symbol."""
    codes, symbols = pd.factorize(prices["symbol"], sort=True)
    order = _sort_order(codes, pd.DatetimeIndex(prices["date"]).asi8)
    return order, symbols, np.bincount(codes, minlength=len(symbols))


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
    order = np.argsort(key)
    # int32 positions halve what is kept for the whole run (40 MB at 10M rows).
    return order.astype(np.int32) if len(order) < 2**31 else order


def _chunks(bounds: np.ndarray):
    """(first, last) symbol ranges of about _CHUNK_ROWS rows; a longer symbol is its own."""
    first, symbols = 0, len(bounds) - 1
    while first < symbols:
        last = int(np.searchsorted(bounds, bounds[first] + _CHUNK_ROWS, side="right")) - 1
        last = max(last, first + 1)
        yield first, last
        first = last


def _talib_columns(
    out: np.ndarray, close: np.ndarray, high: np.ndarray, low: np.ndarray,
    volume: np.ndarray, edges: np.ndarray,
) -> None:
    """The TA-Lib columns, high_52w, low_52w and the running max, one symbol at a time."""
    high_52w, low_52w, running_max = _ROW["high_52w"], _ROW["low_52w"], _ROW["drawdown"]
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        c, h, l = close[lo:hi], high[lo:hi], low[lo:hi]
        rows = out[:, lo:hi]
        rows[_TALIB_ROWS] = _talib_values(c, h, l, volume[lo:hi])
        rows[high_52w] = _MAX(h, _YEAR_BARS)  # max is exact: any method gives these bits
        rows[low_52w] = _MIN(l, _YEAR_BARS)
        np.maximum.accumulate(c, out=rows[running_max])  # drawdown's, divided out later


def _talib_values(c: np.ndarray, h: np.ndarray, l: np.ndarray, v: np.ndarray) -> tuple:
    """One symbol's TA-Lib outputs, in _TALIB_COLUMNS order."""
    upper, middle, lower = _BBANDS(c, 20, 2.0, 2.0, 0)  # matype 0 = SMA
    return (
        _SMA(c, 5), _SMA(c, 10), _SMA(c, 20), _SMA(c, 50), _SMA(c, 200),
        _EMA(c, 12), _EMA(c, 26), _EMA(c, 50),
        *_MACD(c, 12, 26, 9),
        _RSI(c, 14),
        middle, upper, lower,
        _ATR(h, l, c, 14),
        *_STOCH(h, l, c, 14, 3, 0, 3, 0),  # slow %K, %D: SMA-smoothed
        _ADX(h, l, c, 14), _PLUS_DI(h, l, c, 14), _MINUS_DI(h, l, c, 14),
        _CCI(h, l, c, 20), _WILLR(h, l, c, 14), _MFI(h, l, c, v, 14), _OBV(c, v),
        _ROC(c, 10), _MOM(c, 10),
    )


def _numpy_columns(out: np.ndarray, close: np.ndarray, edges: np.ndarray) -> None:
    """Returns, volatility, distance from the 52-week high and drawdown, for one chunk.

    Expects high_52w and, in drawdown's row, the running max of close already filled.
    """
    starts = edges[:-1]
    ratio, log_return = out[_ROW["return_1d"]], out[_ROW["log_return_1d"]]
    np.divide(close[1:], close[:-1], out=ratio[1:])
    ratio[starts] = np.nan  # a symbol's first bar has no previous close
    np.log(ratio, out=log_return)
    ratio -= 1.0
    volatility = out[_ROW["volatility_30d"]]
    _rolling_sample_std(log_return, edges, _VOLATILITY_BARS, out=volatility)
    volatility *= math.sqrt(_YEAR_BARS)
    from_high = out[_ROW["pct_from_high_52w"]]
    np.divide(close, out[_ROW["high_52w"]], out=from_high)
    from_high -= 1.0
    drawdown = out[_ROW["drawdown"]]
    np.divide(close, drawdown, out=drawdown)
    drawdown -= 1.0


def _rolling_sample_std(x: np.ndarray, edges: np.ndarray, n: int, *, out: np.ndarray) -> None:
    """Sample std of x over the n bars ending at each bar, per symbol, into `out`.

    x's first bar of each symbol is NaN (no return), so the first value is at bar n.
    """
    lengths = np.diff(edges)
    bar = np.arange(len(x)) - np.repeat(edges[:-1], lengths)
    total, squares = _window_sums(x, n), _window_sums(np.square(x), n)
    # (sum of squares - n * mean^2) / (n - 1): log returns have a mean far below their
    # std, so this loses nothing measurable; windows of zero returns give exactly 0.
    squares -= total * total / n
    squares /= n - 1
    np.maximum(squares, 0.0, out=squares)
    np.sqrt(squares, out=out)
    out[bar < n] = np.nan


def _window_sums(x: np.ndarray, n: int) -> np.ndarray:
    """sums[i] = x[i-n+1] + ... + x[i] for i >= n-1; entries before are meaningless.

    Built from sums over 1, 2, 4, ... bars (n = 30 takes 7 vectorised additions instead
    of 29), always added in the same tree whatever i is: a window's bits depend only on
    its own n values, never on its position in the array or on other symbols' rows.
    A sum of at most n terms has no running total that drifts over long histories.
    """
    sums, covered, power, width = None, 0, x, 1  # power[i]: sum of `width` bars ending at i
    while width <= n:
        if n & width:  # add the `width` bars that end `covered` bars before i
            if sums is None:
                sums = power.copy()
            elif covered < len(x):
                sums[covered:] += power[: len(x) - covered]
            covered += width
        if 2 * width <= n:
            doubled = np.empty_like(power)
            doubled[:width] = np.nan
            np.add(power[:-width], power[width:], out=doubled[width:])
            power = doubled
        width *= 2
    return sums
