"""Time compute_indicators against TA-Lib per symbol and pandas groupby, in one run.

Each method takes the same prices frame and returns the same indicators frame (sorted by
symbol, date), so preparation (grouping, sorting, building the frame) is in every time;
"TA-Lib calls alone" is the per-symbol calls on already sorted closes, for scale.
The goal (shared PERFORMANCE.md): compute_indicators <= 1.5x TA-Lib per symbol.

Usage:
    python bench/bench_indicators.py [--symbols 2000] [--bars 504] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import talib

# Bench the working tree, not whatever stockpipe the virtualenv has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from stockpipe.models import INDICATOR_COLUMNS  # noqa: E402 (needs the path above)
from stockpipe.stages.indicators import compute_indicators  # noqa: E402 (same)

SMA, EMA, RSI = 20, 12, 14


def make_prices(n_symbols: int, n_bars: int, *, shuffle: bool, seed: int = 7) -> pd.DataFrame:
    """Random-walk closes (log returns ~ N(0, 2%)) for n_symbols x n_bars business days."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(5.0, 500.0, size=(n_symbols, 1))
    close = start * np.exp(np.cumsum(rng.normal(0.0, 0.02, (n_symbols, n_bars)), axis=1))
    symbols = np.array([f"S{i:05d}" for i in range(n_symbols)], dtype=object)
    prices = pd.DataFrame(
        {
            "symbol": pd.array(np.repeat(symbols, n_bars), dtype="str"),
            "date": np.tile(pd.bdate_range("2020-01-01", periods=n_bars).to_numpy(), n_symbols),
            "close": close.ravel(),
        }
    )
    if shuffle:
        prices = prices.sample(frac=1.0, random_state=seed, ignore_index=True)
    return prices


def sorted_groups(prices: pd.DataFrame) -> tuple:
    """Row order by (symbol, date), symbol bounds in that order, symbols, sorted codes.

    The same tricks as compute_indicators (no sort when already sorted, else one int64
    key), so the comparison is about the indicator arithmetic.
    """
    codes, symbols = pd.factorize(prices["symbol"], sort=True)
    dates = pd.DatetimeIndex(prices["date"]).asi8
    steps = np.diff(codes)
    if np.all((steps > 0) | ((steps == 0) & (dates[1:] >= dates[:-1]))):
        order = slice(None)
    else:
        ranks, _ = pd.factorize(dates, sort=True)
        order = np.argsort(codes.astype(np.int64) * (ranks.max() + 1) + ranks)
    bounds = np.concatenate(([0], np.cumsum(np.bincount(codes))))
    return order, bounds, symbols, codes[order]


def talib_per_symbol(prices: pd.DataFrame) -> pd.DataFrame:
    """TA-Lib's three functions called once per symbol on contiguous numpy slices."""
    order, bounds, symbols, codes = sorted_groups(prices)
    close = prices["close"].to_numpy(dtype=np.float64)[order]
    out = talib_calls(close, bounds)
    columns = {"symbol": symbols.take(codes), "date": prices["date"].array[order]}
    return pd.DataFrame({**columns, **dict(zip(INDICATOR_COLUMNS, out))}, copy=False)


def talib_calls(close: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The TA-Lib calls alone, on closes already sorted: shape (3, rows)."""
    out = np.empty((3, len(close)))
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        part = close[lo:hi]
        out[0, lo:hi] = talib.SMA(part, SMA)
        out[1, lo:hi] = talib.EMA(part, EMA)
        out[2, lo:hi] = talib.RSI(part, RSI)
    return out


def pandas_groupby(prices: pd.DataFrame) -> pd.DataFrame:
    """pandas groupby().rolling() / .ewm(), seeded as TA-Lib seeds (so the values agree)."""
    frame = prices[["symbol", "date", "close"]].sort_values(["symbol", "date"], ignore_index=True)
    bar = frame.groupby("symbol").cumcount().to_numpy()
    close, symbol = frame["close"], frame["symbol"]
    frame["sma_20"] = rolling_mean(close, symbol, SMA)
    # ewm(adjust=False) starts at the first non-NaN value: put TA-Lib's SMA seed there.
    seeded = close.where(bar >= EMA, rolling_mean(close, symbol, EMA)).where(bar >= EMA - 1)
    frame["ema_12"] = smooth(seeded, symbol, alpha=2.0 / (EMA + 1))
    frame["rsi_14"] = pandas_rsi(close.groupby(symbol).diff(), symbol, bar)
    return frame.drop(columns="close")


def rolling_mean(values: pd.Series, symbol: pd.Series, n: int) -> np.ndarray:
    """groupby().rolling(n).mean(), in the (sorted) frame's row order."""
    return values.groupby(symbol).rolling(n).mean().to_numpy()


def pandas_rsi(diff: pd.Series, symbol: pd.Series, bar: np.ndarray) -> np.ndarray:
    """Wilder RSI: ewm(alpha=1/n) seeded with the mean of bars 1..n at bar n."""
    averages = []
    for side in (diff.clip(lower=0.0), (-diff).clip(lower=0.0)):
        seeded = side.where(bar > RSI, rolling_mean(side, symbol, RSI)).where(bar >= RSI)
        averages.append(smooth(seeded, symbol, alpha=1.0 / RSI))
    gain, loss = averages
    total = gain + loss
    return np.where(total == 0.0, 0.0, 100.0 * (gain / total))


def smooth(values: pd.Series, symbol: pd.Series, alpha: float) -> np.ndarray:
    """prev + alpha*(x - prev) per symbol, starting at each symbol's first non-NaN."""
    smoothed = values.groupby(symbol).ewm(alpha=alpha, adjust=False).mean()
    return smoothed.to_numpy()


def time_side_by_side(methods: dict, prices: pd.DataFrame, repeat: int) -> dict:
    """Median wall time and last result of each method.

    Each round runs every method once, so load from other processes falls on all alike.
    """
    times: dict[str, list[float]] = {name: [] for name in methods}
    results = {}
    for _ in range(repeat):
        for name, method in methods.items():
            began = time.perf_counter()
            results[name] = method(prices)
            times[name].append(time.perf_counter() - began)
    return {name: (statistics.median(times[name]), results[name]) for name in methods}


def max_diff(left: pd.DataFrame, right: pd.DataFrame) -> float:
    """Largest |difference| over the indicator columns; inf if NaN positions differ."""
    worst = 0.0
    for name in INDICATOR_COLUMNS:
        a, b = left[name].to_numpy(), right[name].to_numpy()
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return float("inf")
        worst = max(worst, float(np.nanmax(np.abs(a - b), initial=0.0)))
    return worst


def main() -> None:
    """Parse options, time the three methods on sorted and shuffled input, print ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=504)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    methods = {"TA-Lib per symbol": talib_per_symbol, "compute_indicators": compute_indicators,
               "pandas groupby": pandas_groupby}
    print(f"{args.symbols} symbols x {args.bars} bars = {args.symbols * args.bars:,} rows, "
          f"median of {args.repeat}")
    warm_up = make_prices(50, 60, shuffle=True)
    for method in methods.values():  # lazy imports and first-call set-up stay out of the times
        method(warm_up)
    for shuffle in (False, True):
        prices = make_prices(args.symbols, args.bars, shuffle=shuffle)
        print(f"\ninput rows {'shuffled' if shuffle else 'sorted by (symbol, date)'}")
        report(prices, methods, args.repeat)


def report(prices: pd.DataFrame, methods: dict, repeat: int) -> None:
    """Time each method on the same frame and print seconds, ratio to TA-Lib, max diff."""
    order, bounds, _, _ = sorted_groups(prices)
    close = prices["close"].to_numpy()[order]
    methods = {**methods, "TA-Lib calls alone": lambda _: talib_calls(close, bounds)}
    results = time_side_by_side(methods, prices, repeat)
    base_time, base = results["TA-Lib per symbol"]
    print(f"{'method':22s} {'s':>8s} {'vs TA-Lib':>10s} {'max |diff|':>11s}")
    for name, (seconds, result) in results.items():
        diff = max_diff(result, base) if isinstance(result, pd.DataFrame) else float("nan")
        print(f"{name:22s} {seconds:8.3f} {seconds / base_time:9.2f}x {diff:11.1e}")


if __name__ == "__main__":
    main()
