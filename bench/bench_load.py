"""SQLite warehouse load: stockpipe's upsert vs pandas `to_sql`, side by side in one run.

    python bench/bench_load.py [--symbols 2000] [--bars 504] [--repeat 3]

Prints rows/s and ratios (medians). Goal (PERFORMANCE.md §3): >= 150k rows/s and
>= 1.5x pandas to_sql. Also times the re-sent load (same rows again: writes nothing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from stockpipe.models import DATASETS, arrow_schema  # noqa: E402
from stockpipe.storage import warehouse  # noqa: E402

PRICES = DATASETS["prices_daily"]


def frame(symbols: int, bars: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2024-01-01", periods=bars)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (symbols, bars)), axis=1)).ravel()
    return pd.DataFrame({
        "symbol": np.repeat([f"S{i:05d}" for i in range(symbols)], bars),
        "date": np.tile(dates.to_numpy(), symbols),
        "open": close * 0.999, "high": close * 1.01, "low": close * 0.99, "close": close,
        "adj_close": np.nan, "volume": rng.integers(1e5, 1e7, symbols * bars),
        "provider": "bench", "fetched_at": pd.Timestamp(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)),
    })


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=504)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    df = frame(args.symbols, args.bars)
    table = pa.Table.from_pandas(df, schema=arrow_schema(PRICES), preserve_index=False)
    rows = len(df)
    ours, theirs, resent = [], [], []
    for round_ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            engine = warehouse.create(f"sqlite:///{tmp}/a.db")
            warehouse.upgrade(engine)

            def load() -> None:
                with engine.begin() as conn:
                    warehouse.upsert(conn, PRICES, table)

            ours.append(timed(load))
            resent.append(timed(load))
            engine.dispose()
            engine = warehouse.create(f"sqlite:///{tmp}/b.db")
            warehouse.upgrade(engine)
            theirs.append(timed(lambda: df.to_sql("prices_daily", engine, if_exists="append", index=False)))
            engine.dispose()
        print(f"round {round_ + 1}: stockpipe {ours[-1]:.2f}s  re-sent {resent[-1]:.2f}s  to_sql {theirs[-1]:.2f}s")
    a, b, c = (statistics.median(x) for x in (ours, theirs, resent))
    print(f"{rows:,} rows into a PK table (WITHOUT ROWID), median of {args.repeat}:")
    print(f"  stockpipe upsert : {rows / a:>10,.0f} rows/s")
    print(f"  pandas to_sql    : {rows / b:>10,.0f} rows/s")
    print(f"  ratio            : {b / a:.2f}x faster than to_sql (goal >= 1.5x, >= 150k rows/s)")
    print(f"  re-sent same rows: {rows / c:>10,.0f} rows/s, writes 0 rows")


if __name__ == "__main__":
    main()
