"""PostgreSQL load: stockpipe's upsert against the server's own binary COPY, the other Arrow ->
binary COPY clients, and pandas to_sql, side by side in one run; then the daily upsert of
one new session into the big table, plain and month-partitioned.

    python bench/bench_pg_load.py --url postgresql+psycopg2://USER:PW@127.0.0.1/DB \\
        [--plain-url URL_OF_A_SECOND_DB] [--server-url SUPERUSER_URL] \\
        [--symbols 2000] [--bars 504] [--repeat 3] [--days 5] [--to-sql-rows 1008000]

Backfill (PERFORMANCE.md goals: <= 1.25x the server's COPY, >= 20x to_sql): `--symbols` x
`--bars` rows of prices_daily, then of indicators_daily (computed by TA-Lib from those
prices: real warm-up NULLs), loaded `--chunk` symbols per transaction into the partitioned
tables (each month's partition made beforehand, but for `stockpipe`), each method after a
TRUNCATE (and a CHECKPOINT with --server-url), methods in a rotating order each round:
- server COPY: `COPY .. FROM '<file>' (FORMAT binary)` run by the server itself, with
  --server-url (a role allowed pg_read_server_files, e.g. the postgres superuser through
  the local socket: run this script as the postgres OS user); without it, COPY FROM STDIN
  of the same bytes encoded beforehand (the client only sends them);
- stockpipe_stream: `warehouse.upsert_batches` over every chunk in one SQLAlchemy
  transaction into a fresh warehouse (no month partitions): each month's new partition is
  filled from every chunk and keyed at the end (binary COPY over psycopg2, streamed from
  stockpipe's encoder) - what a load of a whole lake snapshot calls;
- stockpipe: `warehouse.upsert` of each chunk in its own transaction into a fresh
  warehouse: the first chunk fills and keys new partitions, the others are probed and
  COPYed into the keyed ones;
- stockpipe_months_exist: the same with every month's partition already there (empty):
  probe, then plain binary COPY into the keyed partitions;
- stockpipe staged: the same rows forced through the TEMP staging table + ON CONFLICT;
- psycopg 3: `cursor.copy()` (QueuedLibpqWriter) fed by the same encoder, own connection;
- ADBC: adbc-driver-postgresql `cursor.adbc_ingest(table, arrow_table, mode="append")`;
- to_sql: pandas `DataFrame.to_sql(if_exists="append")` on the first --to-sql-rows rows,
  scaled linearly to all rows when that is fewer (printed as extrapolated).

Daily (goal: <= 1 s plain, <= 0.4 s partitioned, a re-sent day writes 0 rows): one new
session for every symbol into prices_daily holding the backfill, timed with a fresh
connection each time (connect included; a CHECKPOINT before each with --server-url): a new
day, the same day re-sent, the day restated (then both again through the staged MERGE
instead of ON CONFLICT); on --plain-url (a database kept at the revision before 0012: a
plain table) and on --url (partitioned), alternately, --days times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from stockpipe.models import DATASETS, arrow_schema  # noqa: E402
from stockpipe.storage import partitions, pgcopy, pgload, warehouse  # noqa: E402

PRICES, INDICATORS = DATASETS["prices_daily"], DATASETS["indicators_daily"]
T0 = pd.Timestamp("2026-01-01", tz="UTC")
FIRST_DAY = pd.Timestamp("2024-01-01")


# -------------------------------------------------------------------------- data


def prices(start: int, count: int, bars: int) -> pa.Table:
    """`count` symbols from number `start`, `bars` business days each, sorted by (symbol, date)."""
    rng = np.random.default_rng(start)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (count, bars)), axis=1)).ravel()
    frame = pd.DataFrame({
        "symbol": np.repeat([f"S{i:05d}" for i in range(start, start + count)], bars),
        "date": np.tile(pd.bdate_range(FIRST_DAY, periods=bars).to_numpy(), count),
        "open": close * 0.999, "high": close * 1.01, "low": close * 0.99, "close": close,
        "adj_close": np.where(rng.random(count * bars) < 0.5, np.nan, close),
        "volume": rng.integers(100_000, 10_000_000, count * bars), "provider": "bench", "fetched_at": T0,
        "split_basis": None})  # the vendor sent the bars as traded (most do)
    return pa.Table.from_pandas(frame, schema=arrow_schema(PRICES), preserve_index=False)


def indicators(start: int, count: int, bars: int) -> pa.Table:
    from stockpipe.stages.indicators import compute_indicators

    frame = compute_indicators(prices(start, count, bars).to_pandas())
    frame["computed_at"] = T0
    return pa.Table.from_pandas(frame.reindex(columns=INDICATORS.column_names), schema=arrow_schema(INDICATORS),
                                preserve_index=False)


def chunks(args, dataset):
    make = prices if dataset is PRICES else indicators
    for start in range(0, args.symbols, args.chunk):
        yield make(start, min(args.chunk, args.symbols - start), args.bars)


# ----------------------------------------------------------------------- methods


class Bench:
    def __init__(self, args):
        self.args = args
        self.engine = warehouse.create(args.url)
        self.dsn = sa.make_url(args.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.server = sa.create_engine(args.server_url, poolclass=sa.NullPool) if args.server_url else None
        self.files = tempfile.mkdtemp(prefix="stockpipe-bench-")
        os.chmod(self.files, 0o755)

    def reset(self, dataset, months=()) -> None:
        """An empty table with a partition for each of `months` (none: no month partitions)."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {dataset.name}")
            held = partitions.ranges(conn, dataset.name)
            if not months:
                for low, _ in held:
                    conn.exec_driver_sql(f"DROP TABLE {partitions.month_partition(dataset.name, low)}")
        if months:
            with self.engine.begin() as conn:
                partitions.ensure_months(conn, dataset.name, months)
        if self.server is not None:
            with self.server.begin() as conn:
                conn.exec_driver_sql("CHECKPOINT")

    def stockpipe(self, dataset, table: pa.Table) -> None:
        with self.engine.begin() as conn:
            assert warehouse.upsert(conn, dataset, table) == table.num_rows

    stockpipe_months_exist = stockpipe

    def staged(self, dataset, table: pa.Table) -> None:
        with self.engine.begin() as conn:
            assert pgload.merge(conn, dataset, table) == table.num_rows

    def psycopg3(self, dataset, table: pa.Table) -> None:
        import psycopg
        from psycopg.copy import QueuedLibpqWriter

        cols = ", ".join(f'"{c}"' for c in dataset.column_names)
        with psycopg.connect(self.dsn) as conn, conn.cursor() as cur:
            with cur.copy(f"COPY {dataset.name} ({cols}) FROM STDIN (FORMAT binary)",
                          writer=QueuedLibpqWriter(cur)) as copy:
                for chunk in pgcopy.encode(dataset, table):
                    copy.write(chunk)

    def adbc(self, dataset, table: pa.Table) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.adbc_ingest(dataset.name, table, mode="append")
            conn.commit()

    def server_copy(self, dataset, path: Path) -> None:
        cols = ", ".join(f'"{c}"' for c in dataset.column_names)
        if self.server is not None:
            with self.server.begin() as conn:
                conn.exec_driver_sql(f"COPY {dataset.name} ({cols}) FROM '{path}' (FORMAT binary)")
            return
        with self.engine.begin() as conn, open(path, "rb") as data:
            conn.connection.driver_connection.cursor().copy_expert(
                f"COPY {dataset.name} ({cols}) FROM STDIN (FORMAT binary)", data, size=1 << 20)

    def to_sql(self, dataset, table: pa.Table) -> None:
        table.to_pandas().to_sql(dataset.name, self.engine, if_exists="append", index=False)


def timed_chunks(bench: Bench, dataset, method: str) -> float:
    """Seconds `method` takes to load every chunk (generating a chunk is not timed)."""
    if method == "stockpipe_stream":
        return timed_stream(bench, dataset)
    total, done = 0.0, 0
    for i, table in enumerate(chunks(bench.args, dataset)):
        if method == "to_sql" and done >= bench.args.to_sql_rows:
            break
        arg = Path(bench.files) / f"{dataset.name}.{i}.bin" if method == "server_copy" else table
        start = time.perf_counter()
        getattr(bench, method)(dataset, arg)
        total, done = total + time.perf_counter() - start, done + table.num_rows
    rows = bench.args.symbols * bench.args.bars
    return total * rows / done  # to_sql: scaled from the rows it loaded


def timed_stream(bench: Bench, dataset) -> float:
    """Seconds `warehouse.upsert_batches` takes to load every chunk in one transaction, less
    the time spent generating the chunks it pulls."""
    making = 0.0

    def made():
        nonlocal making
        source = chunks(bench.args, dataset)
        while True:
            start = time.perf_counter()
            table = next(source, None)
            making += time.perf_counter() - start
            if table is None:
                return
            yield table

    start = time.perf_counter()
    with bench.engine.begin() as conn:
        assert warehouse.upsert_batches(conn, dataset, made()) == bench.args.symbols * bench.args.bars
    return time.perf_counter() - start - making


def backfill(bench: Bench, dataset) -> dict[str, list[float]]:
    args = bench.args
    months = set()
    for i, table in enumerate(chunks(args, dataset)):  # the server's files, and every month's partition
        Path(bench.files, f"{dataset.name}.{i}.bin").write_bytes(b"".join(pgcopy.encode(dataset, table)))
        months.update(partitions.months_of(table.column("date")))
    methods = ["server_copy", "stockpipe_stream", "stockpipe", "stockpipe_months_exist", "staged", "psycopg3", "adbc"]
    times: dict[str, list[float]] = {m: [] for m in methods + ["to_sql"]}
    for round_ in range(args.repeat):
        for method in methods[round_ % len(methods):] + methods[:round_ % len(methods)]:
            bench.reset(dataset, () if method in ("stockpipe", "stockpipe_stream") else months)
            times[method].append(timed_chunks(bench, dataset, method))
        print(f"  round {round_ + 1}: " + "  ".join(f"{m} {times[m][-1]:.2f}s" for m in methods), flush=True)
    if args.to_sql_rows:
        bench.reset(dataset, months)
        times["to_sql"].append(timed_chunks(bench, dataset, "to_sql"))
    if "resend" not in args.skip:
        bench.reset(dataset, months)
        resend(bench, dataset)
    bench.reset(dataset, months)
    return times


def resend(bench: Bench, dataset) -> None:
    """Every row sent again into the full table, unchanged (writes 0) and restated (writes
    all): the staged path's two statements, side by side."""
    for table in chunks(bench.args, dataset):
        bench.stockpipe(dataset, table)
    rows = bench.args.symbols * bench.args.bars
    column = next(c for c in dataset.value_columns  # one every row has: restating it changes every row
                  if pa.types.is_floating(table.schema.field(c).type) and table.column(c).null_count == 0)
    print(f"{dataset.name}: all {rows:,} rows sent again through the staging table")
    plan = [("unchanged", "on_conflict", 1.0, 0), ("unchanged", "merge", 1.0, 0),
            ("restated", "on_conflict", 1.01, rows), ("restated", "merge", 1.02, rows),
            ("unchanged", "merge", 1.02, 0), ("unchanged", "on_conflict", 1.02, 0)]
    for case, statement, factor, expect in plan:
        if bench.server is not None:
            with bench.server.begin() as conn:
                conn.exec_driver_sql("CHECKPOINT")
        total, written = 0.0, 0
        for table in chunks(bench.args, dataset):
            index = table.schema.get_field_index(column)
            table = table.set_column(index, column, pa.compute.multiply(table.column(column), factor))
            start = time.perf_counter()
            with bench.engine.begin() as conn:
                written += pgload.merge(conn, dataset, table, statement)
            total += time.perf_counter() - start
        assert written == expect, (case, statement, written)
        print(f"  {case:<9} {statement:<12} {total:7.2f} s {rows / total:>10,.0f} rows/s  wrote {written:,}")


def report(dataset, times: dict[str, list[float]], args) -> None:
    rows = args.symbols * args.bars
    server, to_sql = statistics.median(times["server_copy"]), times["to_sql"][0] if times["to_sql"] else None
    extrapolated = " (extrapolated)" if to_sql and args.to_sql_rows < rows else ""
    print(f"{dataset.name}: {rows:,} rows, {args.chunk} symbols a transaction, median of {args.repeat}")
    for method, values in times.items():
        if not values:
            continue
        t = statistics.median(values)
        vs_sql = f"{to_sql / t:6.1f}x to_sql" if to_sql else ""
        print(f"  {method:<22} {t:8.2f} s {rows / t:>10,.0f} rows/s {t / server:6.2f}x server COPY  {vs_sql}"
              + (extrapolated if method == "to_sql" else ""))


# -------------------------------------------------------------------------- daily


def daily(args) -> None:
    """One new session for every symbol into prices_daily holding the backfill."""
    urls = {"partitioned": args.url, **({"plain": args.plain_url} if args.plain_url else {})}
    before_0012 = _revision_before("0012")
    for kind, url in urls.items():
        engine = warehouse.create(url)
        if kind == "plain":
            warehouse.upgrade(engine, before_0012)
        with engine.connect() as conn:
            held = conn.exec_driver_sql("SELECT count(*) FROM prices_daily").scalar()
        if held < args.symbols * args.bars:  # the backfill (and the days earlier runs added) is there
            with engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE prices_daily")
            for table in chunks(args, PRICES):
                with engine.begin() as conn:
                    warehouse.upsert(conn, PRICES, table)
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE prices_daily")
    server = sa.create_engine(args.server_url, poolclass=sa.NullPool) if args.server_url else None
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.days):
        day = max(_newest(url) for url in urls.values()) + pd.offsets.BDay(1)
        for case, close, expect in (("new day", 100.0, args.symbols), ("re-sent", 100.0, 0),
                                    ("restated", 101.0, args.symbols), ("re-sent MERGE", 101.0, 0),
                                    ("restated MERGE", 102.0, args.symbols)):
            table = _session(args.symbols, day, close)
            for kind in (list(urls) if round_ % 2 else list(urls)[::-1]):
                if server is not None:
                    with server.begin() as conn:
                        conn.exec_driver_sql("CHECKPOINT")
                engine = sa.create_engine(urls[kind], poolclass=sa.NullPool)
                start = time.perf_counter()
                with engine.begin() as conn:
                    written = (pgload.merge(conn, PRICES, table, "merge") if case.endswith("MERGE")
                               else warehouse.upsert(conn, PRICES, table))
                times.setdefault((kind, case), []).append(time.perf_counter() - start)
                engine.dispose()
                assert written == expect, (kind, case, written, expect)
    print(f"daily: {args.symbols:,} rows (one session, every symbol) into {args.symbols * args.bars:,} rows, "
          f"connect included, median of {args.days}")
    for (kind, case), values in times.items():
        print(f"  {kind:<12} {case:<15} {statistics.median(values):6.3f} s")


def _revision_before(revision: str) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(warehouse.alembic_config()).get_revision(revision).down_revision


def _newest(url: str) -> pd.Timestamp:
    with warehouse.create(url).connect() as conn:
        return pd.Timestamp(conn.exec_driver_sql("SELECT max(date) FROM prices_daily").scalar())


def _session(symbols: int, day: pd.Timestamp, close: float) -> pa.Table:
    frame = pd.DataFrame({"symbol": [f"S{i:05d}" for i in range(symbols)], "date": day.date(), "open": close,
                          "high": close + 1, "low": close - 1, "close": close, "adj_close": np.nan,
                          "volume": 1_000, "provider": "bench", "fetched_at": T0, "split_basis": None})
    return pa.Table.from_pandas(frame, schema=arrow_schema(PRICES), preserve_index=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--plain-url")
    parser.add_argument("--server-url")
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=504)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--to-sql-rows", type=int, default=1_008_000)
    parser.add_argument("--skip", default="", help="comma-separated: prices, indicators, daily")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    bench = Bench(args)
    warehouse.upgrade(bench.engine)
    try:
        for name, dataset in (("prices", PRICES), ("indicators", INDICATORS)):
            if name not in skip:
                report(dataset, backfill(bench, dataset), args)
    finally:
        shutil.rmtree(bench.files, ignore_errors=True)  # the server's COPY files: 4.2 GB at 10M
    if "daily" not in skip:
        daily(args)


if __name__ == "__main__":
    main()
