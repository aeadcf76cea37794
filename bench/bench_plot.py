"""plot: matplotlib (what stockpipe.charts uses) side by side with mplfinance, the other
candidate for `stockpipe[plot]`: import time and the time to render the same picture
(500 daily bars; candles, SMA, volume and two indicator panels) to PNG, medians of 3 runs,
each in a fresh process so imports are measured cold.

    python bench/bench_plot.py            # mplfinance is measured when it is installed

Result on this 2-core machine (the README's "Looking at the data"): stockpipe.charts'
full chart (bands, legends, markers) import 0.14 s, render 0.85 s; mplfinance 0.12.10b0's
simpler one import 0.63 s, render 0.88 s (1.03x), once `six`, which it imports without
declaring, is installed by hand. Drawing bars as one PolyCollection instead of ax.bar's
patch per bar took the chart from 1.5 s to 0.85 s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

PROBE = r'''
import io, sys, time
t0 = time.perf_counter()
import numpy as np, pandas as pd
which = sys.argv[1]
n = 500
rng = np.random.default_rng(1)
c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
o = c * (1 + rng.normal(0, 0.003, n)); h = np.maximum(o, c) * 1.01; l = np.minimum(o, c) * 0.99
v = rng.integers(1_000_000, 5_000_000, n).astype(float)
frame = pd.DataFrame(dict(Open=o, High=h, Low=l, Close=c, Volume=v), index=pd.bdate_range("2024-01-01", periods=n))
sma = frame.Close.rolling(20).mean()
t1 = time.perf_counter()
if which == "mplfinance":
    import mplfinance as mpf
    t2 = time.perf_counter()
    extra = [mpf.make_addplot(sma), mpf.make_addplot(frame.Close.rolling(14).mean(), panel=2),
             mpf.make_addplot(frame.Close.rolling(26).mean(), panel=3)]
    mpf.plot(frame, type="candle", volume=True, addplot=extra, figsize=(11, 8),
             savefig=dict(fname=io.BytesIO(), format="png"))
else:
    import datetime as dt
    from stockpipe import charts
    import matplotlib
    t2 = time.perf_counter()
    nan = np.full(n, np.nan)
    series = dict(open=o, high=h, low=l, close=c, volume=v, sma_20=sma.to_numpy(), sma_50=nan, bb_upper=nan,
                  bb_middle=nan, bb_lower=nan, rsi_14=frame.Close.rolling(14).mean().to_numpy(), macd=nan,
                  macd_signal=nan, macd_hist=nan)
    charts.draw(charts.Chart("bench", [d.date() for d in frame.index], series), "png")
t3 = time.perf_counter()
print(t2 - t1, t3 - t2)
'''


def measure(which: str, runs: int = 3) -> tuple[float, float]:
    imports, renders = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", PROBE, which], capture_output=True, text=True, check=True)
        first, second = map(float, done.stdout.split())
        imports.append(first)
        renders.append(second)
    return statistics.median(imports), statistics.median(renders)


def main() -> None:
    base = measure("matplotlib")
    print(f"matplotlib (stockpipe.charts): import {base[0]:.2f} s, render {base[1]:.2f} s")
    try:
        other = measure("mplfinance")
    except subprocess.CalledProcessError as exc:
        last = exc.stderr.strip().splitlines()[-1] if exc.stderr else "failed"
        print(f"mplfinance: cannot run here ({last})")
        return
    print(f"mplfinance: import {other[0]:.2f} s, render {other[1]:.2f} s "
          f"({other[1] / base[1]:.2f}x matplotlib's render time)")


if __name__ == "__main__":
    main()
