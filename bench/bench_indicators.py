"""Time compute_indicators (all 34 columns) against the alternatives, side by side in one run.

Methods, each taking the same prices frame and returning the same indicators frame (sorted
by symbol, date), so grouping, sorting and building the frame are in every time:
- compute_indicators: the module.
- TA-Lib per symbol: a plain loop calling TA-Lib on each symbol's contiguous numpy slices
  for the 27 TA-Lib columns (22 calls), and the module's own numpy for the other 7
  (high_52w and low_52w come from TA-Lib MAX/MIN in both).
- pandas groupby: groupby().rolling()/.ewm()/.shift() for every column, seeded as TA-Lib
  seeds so that the values agree.
- naive per-symbol loop: the same pandas on each symbol's group, then concat. Slow: it runs
  on at most --loop-symbols symbols and is extrapolated linearly (printed as such).
Goals (shared PERFORMANCE.md): compute_indicators <= 1.5x TA-Lib per symbol, >= 2.5x
faster than pandas groupby, >= 40x faster than the per-symbol loop, and a peak below 4 GB
at 10M rows (20,000 symbols x 504 bars), measured in a fresh process (getrusage and
tracemalloc) holding the input frame and the result.

Values: every method's max |difference| from TA-Lib per symbol, on the first
--check-symbols symbols (the timed runs keep no results: at 10M rows each is 3 GB).

Usage:
    python bench/bench_indicators.py [--symbols 2000] [--bars 504] [--repeat 3]
        [--order sorted|shuffled|both] [--loop-symbols 2000] [--check-symbols 200]
        [--no-memory]
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import talib

# Bench the working tree, not whatever stockpipe the virtualenv has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from stockpipe.models import INDICATOR_COLUMNS  # noqa: E402 (needs the path above)
from stockpipe.stages import indicators  # noqa: E402 (same)
from stockpipe.stages.indicators import compute_indicators  # noqa: E402 (same)

MEMORY_GOAL_GB = 4.0


def make_prices(n_symbols: int, n_bars: int, *, shuffle: bool, seed: int = 7) -> pd.DataFrame:
    """Random-walk OHLCV (log returns ~ N(0, 2%)) for n_symbols x n_bars business days,
    high >= max(open, close) and low <= min(open, close), float volume."""
    rng = np.random.default_rng(seed)
    shape = (n_symbols, n_bars)
    close = rng.normal(0.0, 0.02, shape)
    np.cumsum(close, axis=1, out=close)
    np.exp(close, out=close)
    close *= rng.uniform(5.0, 500.0, size=(n_symbols, 1))
    open_ = close * np.exp(rng.normal(0.0, 0.005, shape))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.02, shape))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.02, shape))
    symbols = np.array([f"S{i:05d}" for i in range(n_symbols)], dtype=object)
    prices = pd.DataFrame(
        {
            "symbol": pd.array(np.repeat(symbols, n_bars), dtype="str"),
            "date": np.tile(pd.bdate_range("2020-01-01", periods=n_bars).to_numpy(), n_symbols),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": rng.integers(0, 5_000_000, n_symbols * n_bars).astype(np.float64),
        },
        copy=False,
    )
    if shuffle:
        prices = prices.sample(frac=1.0, random_state=seed, ignore_index=True)
    return prices


# --------------------------------------------------------------------- TA-Lib per symbol


def _c_function(name: str):
    """talib.<name> without its pandas/polars dispatch wrapper: the strongest baseline."""
    function = getattr(talib, name)
    return getattr(function, "__wrapped__", function)


(SMA, EMA, MACD, RSI, BBANDS, ATR, STOCH, ADX, PLUS_DI, MINUS_DI, CCI, WILLR, MFI, OBV,
 ROC, MOM, MAX, MIN) = map(_c_function, (
    "SMA", "EMA", "MACD", "RSI", "BBANDS", "ATR", "STOCH", "ADX", "PLUS_DI", "MINUS_DI",
    "CCI", "WILLR", "MFI", "OBV", "ROC", "MOM", "MAX", "MIN"))
ROW = {name: row for row, name in enumerate(INDICATOR_COLUMNS)}


def sorted_groups(prices: pd.DataFrame) -> tuple:
    """Row order by (symbol, date), symbol bounds in that order, symbols, rows per symbol.

    The same tricks as compute_indicators (no sort when already sorted, else one int64
    key), so the comparison is about computing the indicators.
    """
    codes, symbols = pd.factorize(prices["symbol"], sort=True)
    dates = pd.DatetimeIndex(prices["date"]).asi8
    steps = np.diff(codes)
    if np.all((steps > 0) | ((steps == 0) & (dates[1:] >= dates[:-1]))):
        order = slice(None)
    else:
        ranks, _ = pd.factorize(dates, sort=True)
        order = np.argsort(codes.astype(np.int64) * (ranks.max() + 1) + ranks)
    counts = np.bincount(codes, minlength=len(symbols))
    return order, np.concatenate(([0], np.cumsum(counts))), symbols, counts


def talib_per_symbol(prices: pd.DataFrame) -> pd.DataFrame:
    """TA-Lib once per symbol on contiguous slices, then the module's numpy for the rest.

    Written as lean as a careful user would: output rows resolved once, C functions
    unwrapped, inputs gathered once (no chunks: this baseline ignores memory).
    """
    order, bounds, symbols, counts = sorted_groups(prices)
    c, h, l, v = (np.ascontiguousarray(prices[name].to_numpy(dtype=np.float64)[order])
                  for name in ("close", "high", "low", "volume"))
    values = np.empty((len(INDICATOR_COLUMNS), len(prices)))
    smas = [(ROW[f"sma_{n}"], n) for n in (5, 10, 20, 50, 200)]
    emas = [(ROW[f"ema_{n}"], n) for n in (12, 26, 50)]
    macd = [ROW[name] for name in ("macd", "macd_signal", "macd_hist")]
    bbands = [ROW[name] for name in ("bb_upper", "bb_middle", "bb_lower")]
    stoch = [ROW["stoch_k"], ROW["stoch_d"]]
    rsi, atr, adx, plus_di, minus_di, cci, willr, mfi, obv, roc, mom, high, low, peak = (
        ROW[name] for name in ("rsi_14", "atr_14", "adx_14", "plus_di_14", "minus_di_14",
                               "cci_20", "willr_14", "mfi_14", "obv", "roc_10", "mom_10",
                               "high_52w", "low_52w", "drawdown"))
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        cs, hs, ls, vs = c[lo:hi], h[lo:hi], l[lo:hi], v[lo:hi]
        out = values[:, lo:hi]
        for row, n in smas:
            out[row] = SMA(cs, n)
        for row, n in emas:
            out[row] = EMA(cs, n)
        out[macd] = MACD(cs, 12, 26, 9)
        out[rsi] = RSI(cs, 14)
        out[bbands] = BBANDS(cs, 20, 2, 2, 0)
        out[atr] = ATR(hs, ls, cs, 14)
        out[stoch] = STOCH(hs, ls, cs, 14, 3, 0, 3, 0)
        out[adx] = ADX(hs, ls, cs, 14)
        out[plus_di] = PLUS_DI(hs, ls, cs, 14)
        out[minus_di] = MINUS_DI(hs, ls, cs, 14)
        out[cci] = CCI(hs, ls, cs, 20)
        out[willr] = WILLR(hs, ls, cs, 14)
        out[mfi] = MFI(hs, ls, cs, vs, 14)
        out[obv] = OBV(cs, vs)
        out[roc] = ROC(cs, 10)
        out[mom] = MOM(cs, 10)
        out[high] = MAX(hs, 252)
        out[low] = MIN(ls, 252)
        np.maximum.accumulate(cs, out=out[peak])  # drawdown's running max
    with np.errstate(divide="ignore", invalid="ignore"):
        indicators._numpy_columns(values, c, bounds)  # the same numpy as the module
    frame = pd.DataFrame(values.T, columns=list(INDICATOR_COLUMNS), copy=False)
    frame.insert(0, "date", prices["date"].iloc[order].reset_index(drop=True))
    frame.insert(0, "symbol", symbols.take(np.repeat(np.arange(len(symbols)), counts)))
    return frame


# ------------------------------------------------------------------------------- pandas


class GroupOps:
    """Window operations per symbol through groupby, aligned to the (sorted) frame's rows."""

    def __init__(self, frame: pd.DataFrame):
        self.groups = frame.groupby("symbol", sort=False).ngroup()
        self.index = frame.index

    def _aligned(self, result: pd.Series) -> pd.Series:
        return pd.Series(result.to_numpy(), index=self.index)

    def rolling(self, s: pd.Series, n: int, how: str, **kwargs) -> pd.Series:
        return self._aligned(getattr(s.groupby(self.groups).rolling(n), how)(**kwargs))

    def ewm(self, s: pd.Series, alpha: float) -> pd.Series:
        return self._aligned(s.groupby(self.groups).ewm(alpha=alpha, adjust=False).mean())

    def shift(self, s: pd.Series, k: int) -> pd.Series:
        return s.groupby(self.groups).shift(k)

    def cumsum(self, s: pd.Series) -> pd.Series:
        return s.groupby(self.groups).cumsum()

    def cummax(self, s: pd.Series) -> pd.Series:
        return s.groupby(self.groups).cummax()

    def bar(self, s: pd.Series) -> np.ndarray:
        return s.groupby(self.groups).cumcount().to_numpy()


class SeriesOps:
    """The same operations on one symbol's rows: plain Series methods."""

    def rolling(self, s: pd.Series, n: int, how: str, **kwargs) -> pd.Series:
        return getattr(s.rolling(n), how)(**kwargs)

    def ewm(self, s: pd.Series, alpha: float) -> pd.Series:
        return s.ewm(alpha=alpha, adjust=False).mean()

    def shift(self, s: pd.Series, k: int) -> pd.Series:
        return s.shift(k)

    def cumsum(self, s: pd.Series) -> pd.Series:
        return s.cumsum()

    def cummax(self, s: pd.Series) -> pd.Series:
        return s.cummax()

    def bar(self, s: pd.Series) -> np.ndarray:
        return np.arange(len(s))


def pandas_columns(frame: pd.DataFrame, ops):
    """All 34 columns with pandas window operations, seeded and aligned as TA-Lib does.

    Yields (name, float64 values) as each column is done and drops what is no longer
    needed, so that 10M rows fit in memory (each intermediate Series is 80 MB there).
    """
    c, h, l, v = frame["close"], frame["high"], frame["low"], frame["volume"]
    bar = ops.bar(c)
    series = lambda values: pd.Series(values, index=c.index)  # noqa: E731
    done = lambda values: np.asarray(values, dtype=np.float64)  # noqa: E731

    def seeded(x: pd.Series, n: int, at: int, alpha: float, seed_scale: float = 1.0):
        """prev + alpha*(x - prev) from bar `at`, seeded there with the mean of n bars."""
        seed = ops.rolling(x, n, "mean") * seed_scale
        return ops.ewm(x.where(bar > at, seed).where(bar >= at), alpha)

    for n in (5, 10, 50, 200):
        yield f"sma_{n}", done(ops.rolling(c, n, "mean"))
    for n in (12, 26, 50):
        yield f"ema_{n}", done(seeded(c, n, n - 1, 2 / (n + 1)))
    macd = (seeded(c, 12, 25, 2 / 13) - seeded(c, 26, 25, 2 / 27))
    signal = seeded(macd, 9, 33, 0.2)
    macd = macd.where(bar >= 33)
    yield "macd", done(macd)
    yield "macd_signal", done(signal)
    yield "macd_hist", done(macd - signal)
    del macd, signal
    prev = ops.shift(c, 1)
    change = c - prev
    gain = seeded(change.clip(lower=0.0), 14, 14, 1 / 14)
    loss = seeded((-change).clip(lower=0.0), 14, 14, 1 / 14)
    yield "rsi_14", np.where(gain + loss == 0, 0.0, 100 * (gain / (gain + loss)))
    del gain, loss
    middle = ops.rolling(c, 20, "mean")
    width = 2 * ops.rolling(c, 20, "std", ddof=0)
    yield "sma_20", done(middle)
    yield "bb_middle", done(middle)
    yield "bb_upper", done(middle + width)
    yield "bb_lower", done(middle - width)
    del middle, width
    true_range = pd.concat([h - l, (h - prev).abs(), (l - prev).abs()], axis=1).max(axis=1)
    true_range = true_range.where(bar >= 1)
    yield "atr_14", done(seeded(true_range, 14, 14, 1 / 14))
    highest, lowest = ops.rolling(h, 14, "max"), ops.rolling(l, 14, "min")
    span = highest - lowest
    fast_k = series(np.where(span == 0, 0.0, (c - lowest) / span * 100)).where(bar >= 13)
    slow_k = ops.rolling(fast_k, 3, "mean")
    yield "stoch_d", done(ops.rolling(slow_k, 3, "mean"))
    yield "stoch_k", done(slow_k.where(bar >= 17))  # TA-Lib starts %K with %D
    willr = np.where(span == 0, 0.0, (highest - c) / span * -100)
    yield "willr_14", done(series(willr).where(bar >= 13))
    del highest, lowest, span, fast_k, slow_k, willr
    up, down = h - ops.shift(h, 1), ops.shift(l, 1) - l
    plus_dm = series(np.where((up > 0) & (up > down), up, 0.0)).where(bar >= 1)
    minus_dm = series(np.where((down > 0) & (down > up), down, 0.0)).where(bar >= 1)
    del up, down
    # Wilder's DM/TR sums: the sum of bars 1..13, then s - s/14 + x, i.e. 14 x an EMA.
    wilder = lambda x: seeded(x, 13, 13, 1 / 14, 13 / 14)  # noqa: E731
    smooth_tr = wilder(true_range)
    plus_di = series(np.where(smooth_tr == 0, 0.0, 100 * wilder(plus_dm) / smooth_tr))
    minus_di = series(np.where(smooth_tr == 0, 0.0, 100 * wilder(minus_dm) / smooth_tr))
    plus_di, minus_di = plus_di.where(bar >= 14), minus_di.where(bar >= 14)
    del true_range, plus_dm, minus_dm, smooth_tr
    total = plus_di + minus_di
    dx = series(np.where(total == 0, 0.0, 100 * (plus_di - minus_di).abs() / total))
    yield "adx_14", done(seeded(dx.where(bar >= 14), 14, 27, 1 / 14))
    yield "plus_di_14", done(plus_di)
    yield "minus_di_14", done(minus_di)
    del total, dx, plus_di, minus_di
    typical = (h + l + c) / 3
    mean = ops.rolling(typical, 20, "mean")
    deviation = sum((ops.shift(typical, j) - mean).abs() for j in range(20)) / 20
    away = typical - mean
    cci = np.where((away == 0) | (deviation == 0), 0.0, away / (0.015 * deviation))
    yield "cci_20", done(series(cci).where(bar >= 19))
    del mean, deviation, away, cci
    flow, typical_change = typical * v, typical - ops.shift(typical, 1)
    inflow = series(np.where(typical_change > 0, flow, 0.0)).where(bar >= 1)
    outflow = series(np.where(typical_change < 0, flow, 0.0)).where(bar >= 1)
    positive, negative = ops.rolling(inflow, 14, "sum"), ops.rolling(outflow, 14, "sum")
    del inflow, outflow
    both = positive + negative
    yield "mfi_14", done(series(np.where(both == 0, 0.0, 100 * positive / both)).where(bar >= 14))
    del typical, flow, typical_change, positive, negative, both
    signed = np.where(bar == 0, v, np.where(change > 0, v, np.where(change < 0, -v, 0.0)))
    yield "obv", done(ops.cumsum(series(signed)))
    del signed, change
    before = ops.shift(c, 10)
    roc = np.where(before == 0, 0.0, (c / before - 1) * 100)
    yield "roc_10", done(series(roc).where(bar >= 10))
    yield "mom_10", done(c - before)
    del before
    yield "return_1d", done(c / prev - 1)
    log_return = np.log(c / prev)
    yield "log_return_1d", done(log_return)
    yield "volatility_30d", done(ops.rolling(log_return, 30, "std") * math.sqrt(252))
    del prev, log_return
    high_52w = ops.rolling(h, 252, "max")
    yield "high_52w", done(high_52w)
    yield "low_52w", done(ops.rolling(l, 252, "min"))
    yield "pct_from_high_52w", done(c / high_52w - 1)
    yield "drawdown", done(c / ops.cummax(c) - 1)


def pandas_groupby(prices: pd.DataFrame) -> pd.DataFrame:
    """Every column through groupby().rolling()/.ewm()/.shift() over all symbols at once."""
    frame = prices.sort_values(["symbol", "date"], ignore_index=True)
    values = np.empty((len(INDICATOR_COLUMNS), len(frame)))  # one copy of the result only
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, column in pandas_columns(frame, GroupOps(frame)):
            values[ROW[name]] = column
    result = pd.DataFrame(values.T, columns=list(INDICATOR_COLUMNS), copy=False)
    result.insert(0, "date", frame["date"])
    result.insert(0, "symbol", frame["symbol"])
    return result


def pandas_loop(prices: pd.DataFrame) -> pd.DataFrame:
    """The naive way: each symbol's rows, the same pandas per symbol, then concat."""
    frames, ops = [], SeriesOps()
    with np.errstate(divide="ignore", invalid="ignore"):
        for _, rows in prices.groupby("symbol", sort=True):
            rows = rows.sort_values("date", ignore_index=True)
            columns = dict(pandas_columns(rows, ops))
            frames.append(pd.DataFrame({"symbol": rows["symbol"], "date": rows["date"],
                                        **{name: columns[name] for name in INDICATOR_COLUMNS}}))
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- timing


def time_side_by_side(methods: dict, repeat: int) -> dict[str, float]:
    """Median wall time of each method on its frame.

    Each round runs every method once, so load from other processes falls on all alike.
    Results are dropped at once: at 10M rows each is 3 GB, and pandas needs ~8 GB more.
    """
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):
        for name, (method, frame) in methods.items():
            began = time.perf_counter()
            method(frame)
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def max_diff(left: pd.DataFrame, right: pd.DataFrame) -> float:
    """Largest |difference| over the indicator columns; inf if rows or NaN positions differ."""
    if not left[["symbol", "date"]].equals(right[["symbol", "date"]]):
        return float("inf")
    worst = 0.0
    for name in INDICATOR_COLUMNS:
        a, b = left[name].to_numpy(), right[name].to_numpy()
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return float("inf")
        worst = max(worst, float(np.nanmax(np.abs(a - b), initial=0.0)))
    return worst


def first_symbols(prices: pd.DataFrame, count: int) -> pd.DataFrame:
    """The rows of the first `count` symbols (in sorted order), in the frame's row order."""
    keep = np.sort(prices["symbol"].unique())[:count]
    return prices[prices["symbol"].isin(keep)].reset_index(drop=True)


def report(prices: pd.DataFrame, repeat: int, loop_symbols: int, check_symbols: int) -> None:
    """Time every method on the same frame; print seconds, ratios and max diffs."""
    n_symbols = prices["symbol"].nunique()
    subset = first_symbols(prices, loop_symbols) if n_symbols > loop_symbols else prices
    scale = n_symbols / min(n_symbols, loop_symbols)
    methods = {
        "TA-Lib per symbol": (talib_per_symbol, prices),
        "compute_indicators": (compute_indicators, prices),
        "pandas groupby": (pandas_groupby, prices),
        "per-symbol loop": (pandas_loop, subset),
    }
    check = first_symbols(prices, check_symbols)  # the values, compared on a few symbols
    base = talib_per_symbol(check)
    diffs = {name: max_diff(method(check), base) for name, (method, _) in methods.items()}
    times = time_side_by_side(methods, repeat)
    if scale > 1:
        print(f"(per-symbol loop: run on {subset['symbol'].nunique()} symbols, "
              f"{times['per-symbol loop']:.2f}s, extrapolated linearly x {scale:g})")
        times["per-symbol loop"] *= scale
    base_time, ours = times["TA-Lib per symbol"], times["compute_indicators"]
    print(f"{'method':22s} {'s':>9s} {'vs TA-Lib':>10s} {'ours faster':>12s} {'max |diff|':>11s}"
          f"  (vs TA-Lib per symbol, on {check['symbol'].nunique()} symbols)")
    for name, seconds in times.items():
        print(f"{name:22s} {seconds:9.3f} {seconds / base_time:9.2f}x {seconds / ours:11.1f}x "
              f"{diffs[name]:11.1e}")
    goals = (
        ("compute_indicators <= 1.5x TA-Lib per symbol", ours / base_time <= 1.5),
        (">= 2.5x faster than pandas groupby", times["pandas groupby"] / ours >= 2.5),
        (">= 40x faster than the per-symbol loop", times["per-symbol loop"] / ours >= 40),
    )
    for goal, met in goals:
        print(f"  goal {goal}: {'met' if met else 'NOT MET'}")


# ----------------------------------------------------------------------------- memory


def memory_child(n_symbols: int, n_bars: int) -> None:
    """In a fresh process: build the input, run compute_indicators once, print the peaks."""
    prices = make_prices(n_symbols, n_bars, shuffle=True)
    input_bytes = int(prices.memory_usage(deep=True).sum())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    out = compute_indicators(prices)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    output_bytes = int(out.memory_usage(deep=True).sum())
    print(input_bytes, output_bytes, traced, before, after)


def report_memory(n_symbols: int, n_bars: int) -> None:
    """Run memory_child in a subprocess and print its figures in GB (1e9 bytes).

    Run it before this process holds anything big: Linux carries the parent's peak RSS
    over into the child's ru_maxrss across fork and exec.
    """
    command = [sys.executable, __file__, "--memory-child", "--symbols", str(n_symbols),
               "--bars", str(n_bars)]
    figures = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    input_bytes, output_bytes, traced, before, after = (int(x) for x in figures.split())
    gb, gib = 1e9, 2**30
    print(f"peak memory, {n_symbols * n_bars:,} rows, shuffled input, fresh process "
          f"(GB = 1e9 bytes):")
    print(f"  input frame {input_bytes / gb:.2f} GB; result frame {output_bytes / gb:.2f} GB "
          f"(34 float64 columns {len(INDICATOR_COLUMNS) * 8 * n_symbols * n_bars / gb:.2f} GB)")
    print(f"  compute_indicators, peak of its numpy/Python allocations (tracemalloc, which "
          f"misses pyarrow's symbol strings): {traced / gb:.2f} GB")
    print(f"  process peak RSS (getrusage ru_maxrss), input and result held: {after / gb:.2f} GB"
          f" = {after / gib:.2f} GiB (after building the input: {before / gb:.2f} GB); "
          f"goal < {MEMORY_GOAL_GB:g} GB: {'met' if after < MEMORY_GOAL_GB * gb else 'NOT MET'}\n")


def main() -> None:
    """Parse options, measure memory, time the methods on sorted and/or shuffled input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=504)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--order", choices=("sorted", "shuffled", "both"), default="both")
    parser.add_argument("--loop-symbols", type=int, default=2000,
                        help="run the per-symbol loop on at most this many symbols")
    parser.add_argument("--check-symbols", type=int, default=200,
                        help="compare the values of every method on this many symbols")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory run")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.symbols, args.bars)
        return
    print(f"{args.symbols} symbols x {args.bars} bars = {args.symbols * args.bars:,} rows, "
          f"{len(INDICATOR_COLUMNS)} columns, median of {args.repeat}\n")
    if not args.no_memory:
        report_memory(args.symbols, args.bars)
    warm_up = make_prices(20, 300, shuffle=True)
    for method in (talib_per_symbol, compute_indicators, pandas_groupby, pandas_loop):
        method(warm_up)  # lazy imports and first-call set-up stay out of the times
    orders = {"sorted": (False,), "shuffled": (True,), "both": (False, True)}[args.order]
    for shuffle in orders:
        prices = make_prices(args.symbols, args.bars, shuffle=shuffle)
        print(f"input rows {'shuffled' if shuffle else 'sorted by (symbol, date)'}")
        report(prices, args.repeat, args.loop_symbols, args.check_symbols)
        print()
        del prices


if __name__ == "__main__":
    main()
