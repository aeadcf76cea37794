"""The nightly delta (issue 10): one new session after a 2-year backfill costs what changed.

    python bench/bench_nightly.py [--symbols 2000] [--days 3]
        [--database-url sqlite] [--database-url postgresql+psycopg2://...] [--work-dir DIR]

For each warehouse (`--database-url`, repeatable; `sqlite` = a fresh stockpipe.db in the
data directory, the default), in a fresh data directory with the offline, deterministic
`demo` provider, through the library (`pipeline.fetch/transform/load(settings, clock=...)`,
each command in its own child process with a fixed clock):

1. backfill: N symbols x 2 years (history_days 730) at Monday 2026-11-30 23:00 UTC:
   `fetch`, `transform`, `load`, each timed;
2. one new session for every symbol: the clock moves on one trading day (23:00 UTC of
   Tuesday, then Wednesday, ...; `--days` of them), `fetch`, then `transform` and `load`
   timed; the median day is compared with the backfill's transform + load (goal <= 5%);
3. the same day re-sent: `fetch --start <that day>` at the same clock (the vendor sends the
   same bars again, restating nothing), then `transform` and `load`: they must write 0 rows
   in the lake and in the warehouse; the lake tables' versions and the warehouse's
   `lake_applied` versions are printed before and after.

Times are taken inside the child around the pipeline call (interpreter start and imports
excluded). Peak RSS is each child's own `ru_maxrss`, read by the parent with `os.wait4`
(the rusage of that one child). Goal: < 2 GB for `transform` and `load` at 10M rows
(`--symbols 20000`). stockpipe 0.1.0's numbers (PERFORMANCE.md section 5, same machine) are
printed as quoted figures: that code is not run here.

A PostgreSQL URL's `public` schema is dropped and recreated first (a fresh warehouse): the
script refuses unless the database name contains "bench".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Bench the working tree, not whatever stockpipe the virtualenv has installed.
SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

UTC = dt.timezone.utc
MONDAY = dt.datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # backfill clock; the next days are sessions too
HISTORY_DAYS = 730
RSS_GOAL_MB = 2048
DAY_GOAL = 0.05
LAKE_TABLES = ("prices_daily", "corporate_actions", "adjustments", "indicators_daily")
# stockpipe 0.1.0, PERFORMANCE.md section 5: 2,000 symbols, (transform, load) seconds
QUOTED = {"sqlite": {"backfill": (7.1, 32.1), "day": (11.9, 25.5)},
          "postgresql": {"backfill": (8.7, 31.6), "day": (17.7, 47.2)}}


def symbols(n: int) -> tuple[str, ...]:
    return tuple(f"BN{i:05d}" for i in range(n))


# ---------------------------------------------------------------------------- child


def child(args: argparse.Namespace) -> None:
    """Run one command through the library and write its time and counts to --result."""
    from stockpipe import pipeline
    from stockpipe.config import load_settings

    data_dir = Path(args.data_dir)
    settings = load_settings({"provider": "demo", "data_dir": data_dir, "database_url": args.database_url,
                              "symbols": symbols(args.symbols), "history_days": HISTORY_DAYS},
                             environ={}, cwd=data_dir)
    now = dt.datetime.fromisoformat(args.clock)
    clock = lambda: now  # noqa: E731 - fixed: the session the run believes it is
    start = time.perf_counter()
    if args.child == "fetch":
        result = pipeline.fetch(settings, start=dt.date.fromisoformat(args.start) if args.start else None,
                                clock=clock)
    else:
        result = getattr(pipeline, args.child)(settings, clock=clock)
    seconds = time.perf_counter() - start
    stages = {s.stage: dict(s.counts) for s in result.stages}
    Path(args.result).write_text(json.dumps({"seconds": seconds, "exit_code": result.exit_code, "stages": stages}))


# ---------------------------------------------------------------------------- parent


class Backend:
    """One warehouse and its fresh data directory."""

    def __init__(self, url: str, work: Path, n: int):
        self.kind = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.data_dir = work / f"data-{self.kind}"
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        self.url = f"sqlite:///{self.data_dir / 'stockpipe.db'}" if url == "sqlite" else url
        self.n = n
        if self.kind == "postgresql":
            fresh_postgres(self.url)

    def run(self, command: str, clock: dt.datetime, start: dt.date | None = None) -> dict:
        result = self.data_dir / f".result-{command}.json"
        log = open(self.data_dir / "bench.log", "ab")
        argv = [sys.executable, __file__, "--child", command, "--data-dir", str(self.data_dir),
                "--database-url", self.url, "--symbols", str(self.n), "--clock", clock.isoformat(),
                "--result", str(result)] + (["--start", start.isoformat()] if start else [])
        began = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.close()
        if proc.returncode != 0:
            raise SystemExit(f"{command} at {clock} failed ({proc.returncode}): see {self.data_dir / 'bench.log'}")
        out = json.loads(result.read_text())
        out["wall"] = time.perf_counter() - began
        out["rss_mb"] = usage.ru_maxrss / 1024
        out["rows_written"] = sum(c.get("rows_written", 0) for c in out["stages"].values())
        return out

    def lake_versions(self) -> dict[str, int | None]:
        from stockpipe.models import DATASETS
        from stockpipe.storage.lake import Lake

        lake = Lake(self.data_dir / "lake")
        return {name: lake.version(DATASETS[name]) for name in LAKE_TABLES}

    def day_facts(self, session: dt.date) -> dict:
        """Splits and dividends with ex-date `session` (the demo's restate history), and what
        the latest indicators_daily commit did (Delta copy-on-write: unchanged rows of every
        file it touched are copied into new files)."""
        import pyarrow.compute as pc
        from deltalake import DeltaTable
        from stockpipe.models import DATASETS
        from stockpipe.storage.lake import Lake

        actions = Lake(self.data_dir / "lake").read(DATASETS["corporate_actions"], columns=["date", "kind"])
        today = actions.filter(pc.equal(actions["date"], session))["kind"].to_pylist()
        last = DeltaTable(str(self.data_dir / "lake" / "indicators_daily")).history(1)[0]
        metrics = last.get("operationMetrics") or {}
        return {"splits": today.count("split"), "dividends": today.count("dividend"),
                "copied": int(metrics.get("num_target_rows_copied", 0)),
                "files_removed": int(metrics.get("num_target_files_removed", 0))}

    def warehouse(self) -> dict:
        """lake_applied versions and row counts of the loaded tables."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                applied = {r.dataset: int(r.version) for r in conn.execute(sa.text(
                    "SELECT dataset, version FROM lake_applied WHERE consumer = 'load'"))}
                rows = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                        for t in ("prices_daily", "indicators_daily", "adjustments")}
        finally:
            engine.dispose()
        return {"applied": applied, "rows": rows}


def fresh_postgres(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    if "bench" not in (engine.url.database or ""):
        raise SystemExit(f"refusing to wipe {engine.url.database!r}: use a database whose name contains 'bench'")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def next_session(now: dt.datetime) -> dt.datetime:
    from stockpipe import calendars

    day = now
    while True:
        day += dt.timedelta(days=1)
        if calendars.latest_closed_session(day, "XNYS") > calendars.latest_closed_session(now, "XNYS"):
            return day


def bench(backend: Backend, days: int) -> dict:
    say = lambda text: print(f"[{backend.kind}] {text}", flush=True)  # noqa: E731
    out: dict = {"backfill": {}, "days": [], "resent": {}}
    for command in ("fetch", "transform", "load"):
        out["backfill"][command] = run = backend.run(command, MONDAY)
        say(f"backfill {command}: {run['seconds']:.2f} s, {run['rss_mb']:.0f} MB, rows_written {run['rows_written']:,}")
    out["backfill_rows"] = backend.warehouse()["rows"]["prices_daily"]
    now = MONDAY
    for _ in range(days):
        now = next_session(now)
        day = {}
        for command in ("fetch", "transform", "load"):
            day[command] = backend.run(command, now)
            if command == "transform":
                day["facts"] = backend.day_facts(now.date())
        out["days"].append(day)
        facts = day["facts"]
        say(f"new session {now:%a %Y-%m-%d} ({facts['splits']} splits, {facts['dividends']} dividends): fetch "
            f"{day['fetch']['seconds']:.2f} s, transform {day['transform']['seconds']:.2f} s "
            f"({day['transform']['rows_written']:,} rows; the indicators commit copied {facts['copied']:,} unchanged "
            f"rows from {facts['files_removed']} files), load {day['load']['seconds']:.2f} s "
            f"({day['load']['rows_written']:,} rows)")
    session = dt.date(now.year, now.month, now.day)
    resent = out["resent"]
    resent["lake_before"], resent["warehouse_before"] = backend.lake_versions(), backend.warehouse()
    for command in ("fetch", "transform", "load"):
        resent[command] = backend.run(command, now, start=session if command == "fetch" else None)
    resent["lake_after"], resent["warehouse_after"] = backend.lake_versions(), backend.warehouse()
    fetched = resent["fetch"]["stages"]["fetch"]
    say(f"re-sent {session}: fetch {fetched.get('rows_fetched', 0):,} rows fetched; transform "
        f"{resent['transform']['seconds']:.2f} s, rows_written {resent['transform']['rows_written']}; load "
        f"{resent['load']['seconds']:.2f} s, rows_written {resent['load']['rows_written']}")
    return out


def tl(run: dict) -> float:
    return run["transform"]["seconds"] + run["load"]["seconds"]


def report(results: dict[str, dict], n: int) -> bool:
    kinds = list(results)
    width = 26
    print()
    print(f"== nightly delta: {n:,} symbols x 2 years ({results[kinds[0]]['backfill_rows']:,} rows backfilled) ==")
    head = f"{'':52}" + "".join(f"{k:>{width}}" for k in kinds)
    print(head)

    def row(label: str, values: list[str]) -> None:
        print(f"{label:52}" + "".join(f"{v:>{width}}" for v in values))

    ok = True
    medians = {}
    for k in kinds:
        r = results[k]
        medians[k] = {c: statistics.median(d[c]["seconds"] for d in r["days"]) for c in ("fetch", "transform", "load")}
    row("backfill fetch (s)", [f"{results[k]['backfill']['fetch']['seconds']:.2f}" for k in kinds])
    row("backfill transform (s)", [f"{results[k]['backfill']['transform']['seconds']:.2f}" for k in kinds])
    row("backfill load (s)", [f"{results[k]['backfill']['load']['seconds']:.2f}" for k in kinds])
    row("backfill rows written transform / load",
        [f"{results[k]['backfill']['transform']['rows_written']:,} / {results[k]['backfill']['load']['rows_written']:,}"
         for k in kinds])
    days = len(results[kinds[0]]["days"])
    row(f"one new session fetch (s, median of {days})", [f"{medians[k]['fetch']:.2f}" for k in kinds])
    row(f"one new session transform (s, median of {days})", [f"{medians[k]['transform']:.2f}" for k in kinds])
    row(f"one new session load (s, median of {days})", [f"{medians[k]['load']:.2f}" for k in kinds])
    row("one new session rows written transform/load",
        [f"{results[k]['days'][-1]['transform']['rows_written']:,} / {results[k]['days'][-1]['load']['rows_written']:,}"
         for k in kinds])
    row("  splits that day (each day)", [", ".join(str(d["facts"]["splits"]) for d in results[k]["days"])
                                         for k in kinds])
    row("  lake rows copied by the day's indicators commit", [
        ", ".join(f"{d['facts']['copied']:,}" for d in results[k]["days"]) for k in kinds])
    ratios = {k: (medians[k]["transform"] + medians[k]["load"]) / tl(results[k]["backfill"]) for k in kinds}
    verdicts = {k: ratios[k] <= DAY_GOAL for k in kinds}
    ok &= all(verdicts.values())
    row("one day T+L / backfill T+L (goal <= 5%)",
        [f"{ratios[k]:.1%} {'PASS' if verdicts[k] else 'FAIL'}" for k in kinds])
    for k in kinds:
        each = ", ".join(f"{tl(d) / tl(results[k]['backfill']):.1%}" for d in results[k]["days"])
        row(f"  each day ({k})", [each if kk == k else "" for kk in kinds])

    print()
    row("re-sent day: rows fetched", [f"{results[k]['resent']['fetch']['stages']['fetch'].get('rows_fetched', 0):,}"
                                      for k in kinds])
    row("re-sent day: transform / load (s)",
        [f"{results[k]['resent']['transform']['seconds']:.2f} / {results[k]['resent']['load']['seconds']:.2f}"
         for k in kinds])
    row("re-sent day: transform / load rows_written",
        [f"{results[k]['resent']['transform']['rows_written']} / {results[k]['resent']['load']['rows_written']}"
         for k in kinds])
    for name in LAKE_TABLES:
        row(f"  lake {name} version before -> after",
            [f"{results[k]['resent']['lake_before'][name]} -> {results[k]['resent']['lake_after'][name]}" for k in kinds])
    for name in ("prices_daily", "indicators_daily", "adjustments"):
        row(f"  warehouse applied {name} before -> after",
            [f"{results[k]['resent']['warehouse_before']['applied'].get(name)} -> "
             f"{results[k]['resent']['warehouse_after']['applied'].get(name)}" for k in kinds])
    for name in ("prices_daily", "indicators_daily", "adjustments"):
        row(f"  warehouse {name} rows before -> after",
            [f"{results[k]['resent']['warehouse_before']['rows'][name]:,} -> "
             f"{results[k]['resent']['warehouse_after']['rows'][name]:,}" for k in kinds])
    zero = {}
    for k in kinds:
        r = results[k]["resent"]
        zero[k] = (r["transform"]["rows_written"] == 0 and r["load"]["rows_written"] == 0
                   and r["lake_before"] == r["lake_after"]
                   and r["warehouse_before"] == r["warehouse_after"])
    ok &= all(zero.values())
    row("re-sent day writes 0 rows (lake + warehouse)", ["PASS" if zero[k] else "FAIL" for k in kinds])

    print()
    rss = {k: {c: max([results[k]["backfill"][c]["rss_mb"]] + [d[c]["rss_mb"] for d in results[k]["days"]])
               for c in ("fetch", "transform", "load")} for k in kinds}
    for c in ("fetch", "transform", "load"):
        row(f"peak RSS {c} (MB, max over runs)", [f"{rss[k][c]:,.0f}" for k in kinds])
    rss_ok = {k: max(rss[k]["transform"], rss[k]["load"]) < RSS_GOAL_MB for k in kinds}
    ok &= all(rss_ok.values())
    row(f"transform/load < 2 GB ({n * 504 / 1e6:.0f}M rows; goal at 10M)",
        ["PASS" if rss_ok[k] else "FAIL" for k in kinds])

    print()
    print("stockpipe 0.1.0, quoted from PERFORMANCE.md section 5 (2,000 symbols; not run here): 0.1.0 / now")
    for k in kinds:
        quoted = QUOTED[k]
        b, d = results[k]["backfill"], medians[k]
        row(f"  backfill transform / load ({k})",
            [f"{quoted['backfill'][0]:.1f}/{b['transform']['seconds']:.1f} = {quoted['backfill'][0] / b['transform']['seconds']:.1f}x"
             if kk == k else "" for kk in kinds])
        row("", [f"{quoted['backfill'][1]:.1f}/{b['load']['seconds']:.1f} = {quoted['backfill'][1] / b['load']['seconds']:.1f}x"
                 if kk == k else "" for kk in kinds])
        row(f"  one day transform / load ({k})",
            [f"{quoted['day'][0]:.1f}/{d['transform']:.2f} = {quoted['day'][0] / d['transform']:.0f}x"
             if kk == k else "" for kk in kinds])
        row("", [f"{quoted['day'][1]:.1f}/{d['load']:.2f} = {quoted['day'][1] / d['load']:.0f}x"
                 if kk == k else "" for kk in kinds])
        old = sum(quoted["day"]) / sum(quoted["backfill"])
        row(f"  one day / backfill T+L, 0.1.0 vs now ({k})",
            [f"{old:.0%} vs {ratios[k]:.1%}" if kk == k else "" for kk in kinds])
    print()
    print("ALL PASS" if ok else "SOME GOAL FAILED")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--days", type=int, default=3, help="new sessions measured one after another (median)")
    parser.add_argument("--database-url", action="append", default=None,
                        help="`sqlite` (a fresh file, the default) or a PostgreSQL URL; repeat for both")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the data directories go")
    parser.add_argument("--keep", action="store_true", help="keep each data directory after its run")
    parser.add_argument("--child", choices=("fetch", "transform", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--clock", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.database_url = args.database_url[0]
        return child(args)
    urls = args.database_url or ["sqlite"]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="wt-h-bench-nightly-"))
    print(f"{args.symbols:,} symbols, demo provider, data under {work}", flush=True)
    results = {}
    for url in urls:
        backend = Backend(url, work, args.symbols)
        results[backend.kind] = bench(backend, args.days)
        if not args.keep:  # 10M rows leave several GB per warehouse
            shutil.rmtree(backend.data_dir, ignore_errors=True)
    ok = report(results, args.symbols)
    if args.work_dir is None and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
