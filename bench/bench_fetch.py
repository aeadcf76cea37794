"""Fetch from a (fake) HTTP vendor: stockpipe vs bare HTTP, and the rate limiter's accuracy.

    python bench/bench_fetch.py [--symbols 2000] [--repeat 3] [--server-latency 0.05]
                                [--limited-symbols 500] [--rate 50] [--limited-repeat 3]
                                [--ledger] [--profile]

The fake EODHD server (tests/fakevendor.py) runs in its own process, so its CPU does not
compete with stockpipe for the GIL. It answers every /api/eod/* call with the same
realistic body: 2 years of daily bars (XNYS sessions up to the latest closed one), EODHD
JSON, generated once.

1. No limit: `pipeline.fetch` (provider eodhd, a dummy key, SQLite, a fresh temporary data
   directory: fetched, archived, parsed, validated and written to the lake) over --symbols
   symbols with STOCKPIPE_EODHD_CALLS_PER_SECOND=10000 (the client's concurrency is then
   its maximum, `http.concurrency_for`, 8) and no per-minute or per-day limit (--ledger adds
   a run with the default daily ledger). Side by side, each round in alternating order:
     - bare HTTP: the same GETs (path, query, key) by a bare httpx.Client on as many threads;
     - stockpipe HTTP only: `pipeline.fetching.call_concurrently` (rate limiter, retries, watchdog)
       drained without archiving, parsing or saving;
     - stockpipe fetch: the whole command; its main thread (which parses and saves while
       the pool fetches and archives) is timed function by function.

   What "bound by the server, not by stockpipe" means here, and the pass criterion:
     a. The server answers at once (loopback, no latency). Then no client is bound by the
        server: the bench prints the CPU seconds of both processes, and bare httpx spends
        about a core (its own Python, under one GIL) while the server spends a quarter of
        one. This run measures stockpipe's own cost: its capacity (symbols/s it can fetch,
        parse and write when answers cost nothing), its ratio to bare httpx, and the
        shares of the main thread spent parsing, validating and writing. Informative.
     b. The server answers after --server-latency (default 50 ms: a close, fast vendor;
        public market-data APIs answer a 2-year history in 100-300 ms), so with 8
        connections it serves at most 160 symbols/s and bare httpx is bound by it.
        PASS when stockpipe fetch (whole command) <= 1.15x bare httpx on the same URLs
        with the same concurrency (1.15: this machine's run-to-run noise), i.e. stockpipe
        adds no wait of its own to the server's. Run (a) then also says up to which
        server speed this holds: 8 connections / stockpipe's capacity.
2. Rate limited: the limit "1,000 calls/min" scaled down in time. The per-minute window is
   fixed at 60 s, so the stand-in is STOCKPIPE_EODHD_CALLS_PER_SECOND=--rate (default 50 per
   1 s window) over --limited-symbols symbols. From the server's request log (arrival
   times, the server's clock): the most requests in any window of the limit's length (goal:
   never above the limit) and the utilisation from every run of `limit` consecutive calls:
   achieved rate / limit (goal >= 95%). The limiter holds a call's slot until its answer
   begins (http.RateLimiter), so the arrival of every call lies between its slot's begin
   and settle; the bench checks that on every call and prints the delays.

Timings are medians over --repeat rounds; ratios are what to read (PERFORMANCE.md). Linux
only for the CPU seconds (/proc).
"""


from __future__ import annotations

import argparse
import cProfile
import contextlib
import datetime as dt
import inspect
import io
import json
import math
import multiprocessing as mp
import os
import pstats
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

EOD_ROUTE = "/api/eod/*"
KEY = "bench"
NO_LIMIT_RATE = 10_000
SERVER_BOUND_GOAL = 1.15  # stockpipe fetch / bare HTTP
UTILISATION_GOAL = 0.95


# ------------------------------------------------------------------ the fake vendor


def eod_body(seed: int = 7) -> bytes:
    """EODHD /api/eod JSON: 2 years of XNYS sessions up to the latest closed one."""
    from stockpipe import calendars

    latest = calendars.latest_closed_session(calendars.utcnow())
    days = calendars.sessions_between(latest - dt.timedelta(days=730), latest)
    rng = np.random.default_rng(seed)
    close = 150 * np.exp(np.cumsum(rng.normal(0, 0.015, len(days))))
    open_ = close * (1 + rng.normal(0, 0.005, len(days)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, len(days))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, len(days))))
    volume = rng.integers(2_000_000, 90_000_000, len(days))
    rows = [{"date": d.isoformat(), "open": round(o, 2), "high": round(h, 2), "low": round(lo, 2),
             "close": round(c, 2), "adjusted_close": round(c * 0.985, 4), "volume": int(v)}
            for d, o, h, lo, c, v in zip(days, open_, high, low, close, volume)]
    return json.dumps(rows).encode()


def _serve(conn, body: bytes, latency: float) -> None:
    """The server process: FakeVendor answering /api/eod/*, driven through `conn`."""
    sys.path.insert(0, str(ROOT / "tests"))
    from http.server import ThreadingHTTPServer

    from fakevendor import FakeVendor, Reply

    # socketserver's listen backlog is 5: 8 clients connecting at once overflow it and the
    # kernel drops SYNs, which the client resends 1 s later. That 1 s delay between our
    # limiter's count and the server's would show as a rate-limit breach that no real
    # vendor (backlog in the hundreds) would see.
    ThreadingHTTPServer.request_queue_size = 128
    vendor = FakeVendor().start()
    vendor.route(EOD_ROUTE, Reply(200, body, content_type="application/json", latency=latency))
    conn.send(vendor.url)
    while True:
        command = conn.recv()
        if command == "clear":
            vendor.clear()
            conn.send(None)
        elif command == "times":
            conn.send(sorted(c.at for c in vendor.calls(EOD_ROUTE)))
        elif command == "arrivals":
            conn.send({c.path: c.at for c in vendor.calls(EOD_ROUTE)})
        else:
            vendor.stop()
            conn.send(None)
            return


class Server:
    """The fake vendor in a child process (time.monotonic is system-wide on Linux)."""

    def __init__(self, body: bytes, latency: float = 0.0) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, body, latency), daemon=True)
        self._process.start()
        self.url = self._conn.recv()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _ask(self, command: str):
        self._conn.send(command)
        return self._conn.recv()

    def clear(self) -> None:
        self._ask("clear")

    def times(self) -> list[float]:
        return self._ask("times")

    def arrivals(self) -> dict[str, float]:
        """Request path -> arrival time (one request per symbol)."""
        return self._ask("arrivals")

    def stop(self) -> None:
        self._ask("stop")
        self._process.join(10)


# --------------------------------------------------------------------- the settings


def settings_for(data_dir: Path, url: str, symbols: list[str], per_second: int, per_day: int = 0):
    from stockpipe.config import load_settings

    environ = {"STOCKPIPE_EODHD_API_KEY": KEY, "STOCKPIPE_EODHD_BASE_URL": url,
               "STOCKPIPE_EODHD_CALLS_PER_SECOND": str(per_second),
               # "0" switches a window off (no ledger without a daily limit)
               "STOCKPIPE_EODHD_CALLS_PER_MINUTE": "0", "STOCKPIPE_EODHD_CALLS_PER_DAY": str(per_day)}
    return load_settings({"provider": "eodhd", "data_dir": str(data_dir), "symbols": symbols},
                         environ=environ, cwd=data_dir)


def symbols_for(n: int) -> list[str]:
    return [f"S{i:05d}" for i in range(n)]


def tasks_for(symbols: list[str]):
    from stockpipe import calendars
    from stockpipe.stages.plan import FetchTask

    end = calendars.latest_closed_session(calendars.utcnow())
    start = end - dt.timedelta(days=730)
    return [FetchTask(s, start, end, True) for s in symbols]


# -------------------------------------------------------------------- the contenders


def bare_http(url: str, symbols: list[str], workers: int) -> float:
    """The same GETs (path, query, key) by a bare httpx.Client on `workers` threads."""
    import httpx

    from stockpipe.providers import eodhd

    tasks = tasks_for(symbols)
    requests = [eodhd.daily_request(eodhd.vendor_symbol(t.symbol), t.start, t.end) for t in tasks]
    with httpx.Client(base_url=url, headers=eodhd.DEFAULT_HEADERS,
                      limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers)) as client:
        def get(request) -> int:
            reply = client.get(request.path, params={**request.params, eodhd.KEY_PARAM: KEY})
            assert reply.status_code == 200, reply.status_code
            return len(reply.content)

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            sizes = list(pool.map(get, requests))
        elapsed = time.perf_counter() - started
    assert len(sizes) == len(symbols)
    return elapsed


def fetch_modules():
    """(the module with the fetch loop, the module with the daily stage): pipeline/ since
    issue 13, steps.py before (so the bench also runs against an older checkout)."""
    try:
        from stockpipe.pipeline import daily, fetching
    except ImportError:
        from stockpipe import steps

        return steps, steps
    return fetching, daily


def responses(loop, provider, tasks):
    """The fetch stage's concurrent calls: (task, payload | error) in task order."""
    daily = lambda task: provider.fetch_daily(task.symbol, task.start, task.end)  # noqa: E731
    stop = loop.Stop() if hasattr(loop, "Stop") else loop._Stop()
    return loop.call_concurrently(provider, tasks, daily, stop)


def stockpipe_http(url: str, symbols: list[str]) -> tuple[float, int]:
    """The fetch stage's pool drained: stockpipe's HTTP path without parsing or saving."""
    loop, _ = fetch_modules()
    from stockpipe.providers import registry as providers

    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), url, symbols, NO_LIMIT_RATE)
        provider = providers.create("eodhd", settings)
        workers = provider.concurrency
        tasks = tasks_for(symbols)
        started = time.perf_counter()
        got = [g for _, g in responses(loop, provider, tasks)]
        elapsed = time.perf_counter() - started
        provider.close()
    bad = [g for g in got if not hasattr(g, "content")]
    assert not bad, bad[:3]
    return elapsed, workers


class Timers:
    """Wraps the fetch stage's main-thread functions; seconds per part (wall and CPU).

    The raw archive is written by the fetch's archive thread (pipeline/fetching.py): no main-thread part."""

    PARTS = ("waiting for responses", "parse (eodhd.parse_daily)", "validate (validate_bars)",
             "lake writes (Lake.merge)", "concat + state (rest of _flush)")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu = 0.0  # the main thread's CPU seconds during the stage

    def wrap(self, part: str, fn):
        def timed(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                return fn(*args, **kwargs)
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started
                if part == "fetch stage":
                    self.cpu += time.thread_time() - cpu
        return timed

    @contextlib.contextmanager
    def installed(self):
        from stockpipe.providers.http_provider import HttpProvider
        from stockpipe.storage.lake import Lake

        loop, daily = fetch_modules()
        originals = {(daily, "validate_bars"): daily.validate_bars, (loop, "_flush"): loop._flush,
                     (loop, "call_concurrently"): loop.call_concurrently, (daily, "fetch_stage"): daily.fetch_stage,
                     (HttpProvider, "parse_daily"): HttpProvider.parse_daily, (Lake, "merge"): Lake.merge}
        calls = loop.call_concurrently

        def timed_responses(*args, **kwargs):
            iterator = calls(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    self.seconds["waiting for responses"] += time.perf_counter() - started
                yield item

        loop.call_concurrently = timed_responses
        daily.validate_bars = self.wrap("validate (validate_bars)", daily.validate_bars)
        loop._flush = self.wrap("_flush", loop._flush)
        daily.fetch_stage = self.wrap("fetch stage", daily.fetch_stage)
        HttpProvider.parse_daily = self.wrap("parse (eodhd.parse_daily)", HttpProvider.parse_daily)
        Lake.merge = self.wrap("lake writes (Lake.merge)", Lake.merge)
        try:
            yield self
        finally:
            for (owner, name), value in originals.items():
                setattr(owner, name, value)

    def breakdown(self) -> dict[str, float]:
        out = {p: self.seconds[p] for p in self.PARTS if p != "concat + state (rest of _flush)"}
        out["concat + state (rest of _flush)"] = self.seconds["_flush"] - self.seconds["lake writes (Lake.merge)"]
        out["the rest (plan, outcomes, ...)"] = self.seconds["fetch stage"] - sum(out.values())
        return out


def stockpipe_fetch(url: str, symbols: list[str], per_second: int, per_day: int = 0,
                    timers: Timers | None = None, profile: cProfile.Profile | None = None) -> tuple[float, dict]:
    """`pipeline.fetch` into a fresh data directory (migrated before the clock starts)."""
    from stockpipe import pipeline

    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), url, symbols, per_second, per_day)
        pipeline.open_warehouse(settings).dispose()
        with timers.installed() if timers else contextlib.nullcontext():
            if profile:
                profile.enable()
            started = time.perf_counter()
            result = pipeline.fetch(settings)
            elapsed = time.perf_counter() - started
            if profile:
                profile.disable()
    counts = result.stages[0].counts
    if result.exit_code != 0 or counts["ok"] != len(symbols):
        raise SystemExit(f"stockpipe fetch failed: exit {result.exit_code} {counts} {result.message}")
    return elapsed, counts


class CpuMeter:
    """CPU seconds spent by this process and by the server's while a contender runs."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid

    def _server(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @contextlib.contextmanager
    def measuring(self, out: dict[str, list[float]]):
        own, theirs = resource.getrusage(resource.RUSAGE_SELF), self._server()
        yield
        now = resource.getrusage(resource.RUSAGE_SELF)
        out["client"].append(now.ru_utime - own.ru_utime + now.ru_stime - own.ru_stime)
        out["server"].append(self._server() - theirs)


def window_stats(times: list[float], limit: int, window: float) -> dict[str, float]:
    """Most calls in any [t, t + window); utilisation from every `limit` consecutive calls."""
    t = np.asarray(sorted(times))
    most = int((np.searchsorted(t, t + window, side="left") - np.arange(len(t))).max())
    spans = t[limit:] - t[:-limit]  # time taken by each run of `limit` calls (limit + 1 arrivals)
    return {"most": most, "tightest": float(spans.min()), "mean_span": float(spans.mean()),
            "utilisation": window / float(spans.mean()), "first_to_last": float(t[-1] - t[0])}


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server-latency", type=float, default=0.05,
                        help="seconds the server waits before each answer in run 1b (a vendor's answer time)")
    parser.add_argument("--limited-symbols", type=int, default=500)
    parser.add_argument("--rate", type=int, default=50, help="calls per second: the scaled-down limit")
    parser.add_argument("--limited-repeat", type=int, default=3, help="rate-limited runs")
    parser.add_argument("--ledger", action="store_true", help="also run with the default daily ledger")
    parser.add_argument("--profile", action="store_true", help="cProfile one more no-limit fetch (main thread)")
    args = parser.parse_args()

    import logging

    logging.getLogger("stockpipe").setLevel(logging.ERROR)
    from types import SimpleNamespace

    from stockpipe.providers.http import client, limiter

    http = SimpleNamespace(VendorClient=client.VendorClient, RateLimiter=limiter.RateLimiter, Slot=limiter.Slot,
                           WINDOWS=limiter.WINDOWS, concurrency_for=limiter.concurrency_for)

    body = eod_body()
    bars = len(json.loads(body))
    print(f"fake EODHD in its own process: {len(body):,} B per symbol ({bars} bars)")
    server, slow = Server(body), Server(body, args.server_latency)
    try:
        capacity = no_limit(server, args, bars, http)
        server_bound(slow, args, bars, http, capacity)
        limited(server, args, http)
    finally:
        server.stop()
        slow.stop()


def contenders(server: Server, args, symbols: list[str], workers: int, timed: bool):
    """Medians of bare HTTP, stockpipe HTTP only and stockpipe fetch (with CPU seconds and,
    when `timed`, the fetch's main-thread parts), over --repeat alternating rounds."""
    meter = CpuMeter(server.pid)
    walls, cpu, parts = defaultdict(list), defaultdict(lambda: defaultdict(list)), defaultdict(list)
    order = ["bare", "http", "fetch"] + (["ledger"] if args.ledger else [])
    for round_ in range(args.repeat):
        for name in order if round_ % 2 == 0 else reversed(order):
            with meter.measuring(cpu[name]):
                if name == "bare":
                    walls[name].append(bare_http(server.url, symbols, workers))
                elif name == "http":
                    walls[name].append(stockpipe_http(server.url, symbols)[0])
                elif name == "fetch":
                    timers = Timers() if timed else None
                    walls[name].append(stockpipe_fetch(server.url, symbols, NO_LIMIT_RATE, timers=timers)[0])
                    if timers:
                        parts["fetch stage"].append(timers.seconds["fetch stage"])
                        parts["main thread CPU"].append(timers.cpu)
                        for part, value in timers.breakdown().items():
                            parts[part].append(value)
                else:
                    walls[name].append(stockpipe_fetch(server.url, symbols, NO_LIMIT_RATE,
                                                       per_day=eodhd_day_default())[0])
        print(f"    round {round_ + 1}: " + "  ".join(f"{name} {walls[name][-1]:.2f}s" for name in order))
    med = statistics.median
    return ({k: med(v) for k, v in walls.items()}, {k: {w: med(v) for w, v in c.items()} for k, c in cpu.items()},
            {k: med(v) for k, v in parts.items()})


LABELS = {"bare": "bare HTTP (httpx, same threads)", "http": "stockpipe HTTP only (fetch pool)",
          "fetch": "stockpipe fetch (whole command)", "ledger": "stockpipe fetch + daily ledger"}


def print_walls(walls: dict[str, float], cpu: dict[str, dict[str, float]], n: int, bars: int) -> None:
    for name, seconds in walls.items():
        rows = f"  {n * bars / seconds:9,.0f} rows/s" if name != "bare" and name != "http" else ""
        print(f"    {LABELS[name]:<33}: {seconds:6.2f}s {n / seconds:7,.0f} symbols/s  = {seconds / walls['bare']:4.2f}x"
              f" bare   CPU s: client {cpu[name]['client']:5.2f}, server {cpu[name]['server']:4.2f}{rows}")


def no_limit(server: Server, args, bars: int, http) -> float:
    """Run 1a; returns stockpipe's capacity (symbols/s of the whole fetch)."""
    symbols = symbols_for(args.symbols)
    workers = http.concurrency_for({"calls_per_second": NO_LIMIT_RATE})
    stockpipe_http(server.url, symbols[:50])  # warm: imports, calendars, first connections
    n = len(symbols)
    print(f"\n1. no limit: {n:,} symbols x {bars} bars ({n * bars:,} rows), {workers} connections, "
          f"median of {args.repeat}")
    print("  a. the server answers at once (loopback): every contender is bound by its own CPU")
    walls, cpu, parts = contenders(server, args, symbols, workers, timed=True)
    print_walls(walls, cpu, n, bars)
    b, f = walls["bare"], walls["fetch"]
    print(f"    bare httpx: {cpu['bare']['client'] / b:.0%} of a core in the client, {cpu['bare']['server'] / b:.0%} "
          f"in the server: bound by the client, not by the server")
    print(f"    stockpipe's capacity {n / f:,.0f} symbols/s = {f / b:.2f}x bare httpx's time (informative); "
          f"it keeps up with any server answering {workers} connections in >= {1000 * workers * f / n:.0f} ms")
    print_parts(parts, n)
    if args.profile:
        profile = cProfile.Profile(time.thread_time)
        stockpipe_fetch(server.url, symbols, NO_LIMIT_RATE, profile=profile)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print("\n  cProfile (main thread CPU) of one more fetch, top 25 by own time:")
        print("\n".join("    " + line for line in out.getvalue().splitlines()[:60]))
    return n / f


def print_parts(parts: dict[str, float], n: int) -> None:
    """The fetch stage's main thread: CPU, and the share of the stage's wall time per part."""
    stage = parts["fetch stage"]
    print(f"    fetch stage {stage:.2f}s; its main thread (CPU {parts['main thread CPU']:.2f}s, "
          f"{1000 * parts['main thread CPU'] / n:.2f} ms per symbol), share of the stage's wall time:")
    for part in (*Timers.PARTS, "the rest (plan, outcomes, ...)"):
        print(f"      {part:<34} {parts[part]:6.2f}s {100 * parts[part] / stage:5.1f}%")
    parsing = parts["parse (eodhd.parse_daily)"] + parts["validate (validate_bars)"]
    writing = parts["lake writes (Lake.merge)"] + parts["concat + state (rest of _flush)"]
    print(f"      parsing (parse + validate) {100 * parsing / stage:.1f}%, writing (lake + state) "
          f"{100 * writing / stage:.1f}% (wall time: the fetch pool's threads share the GIL with them)")


def server_bound(server: Server, args, bars: int, http, capacity: float) -> None:
    """Run 1b: the server, not the client, limits bare httpx; stockpipe must not add to it."""
    symbols = symbols_for(args.symbols)
    workers = http.concurrency_for({"calls_per_second": NO_LIMIT_RATE})
    latency = args.server_latency
    n = len(symbols)
    stockpipe_http(server.url, symbols[:50])
    print(f"\n  b. the server answers after {latency * 1000:g} ms: {workers} connections get at most "
          f"{workers / latency:,.0f} symbols/s (the server's capacity)")
    walls, cpu, parts = contenders(server, args, symbols, workers, timed=True)
    print_walls(walls, cpu, n, bars)
    print_parts(parts, n)
    ratio = walls["fetch"] / walls["bare"]
    verdict = "PASS" if ratio <= SERVER_BOUND_GOAL else "FAIL"
    print(f"    stockpipe fetch / bare httpx = {ratio:.2f}x   [{verdict}: bound by the server means "
          f"<= {SERVER_BOUND_GOAL:.2f}x bare httpx on the same URLs and connections]")
    print(f"    (stockpipe's capacity from 1a, {capacity:,.0f} symbols/s, is {capacity * latency / workers:.1f}x "
          f"this server's {workers / latency:,.0f})")


def eodhd_day_default() -> int:
    from stockpipe.providers import eodhd

    return int(eodhd.DEFAULT_LIMITS.get("calls_per_day") or 100_000)


def limited(server: Server, args, http) -> None:
    symbols = symbols_for(args.limited_symbols)
    rate, window = args.rate, http.WINDOWS["calls_per_second"]
    margin = inspect.signature(http.VendorClient).parameters["margin"].default
    print(f"\n2. rate limited: {len(symbols):,} symbols at {rate} calls per {window:g} s, the stand-in for "
          f"1,000 calls/min scaled down in time (the minute window is fixed at 60 s, so the per-second "
          f"window plays it); limiter margin {margin:g} s; {args.limited_repeat} run(s)")
    runs = [limited_run(server, symbols, rate, window, http) for _ in range(args.limited_repeat)]
    most = max(r["most"] for r in runs)
    tightest = min(r["tightest"] for r in runs)
    used = statistics.median(r["utilisation"] for r in runs)
    print(f"  most requests in any {window:g} s window, worst run: {most} (limit {rate}); tightest {rate + 1} "
          f"arrivals {tightest:.3f}s   [{'PASS' if most <= rate else 'FAIL'}: never exceeded]")
    print(f"  utilisation, median run: {used:.1%} of the limit   "
          f"[{'PASS' if used >= UTILISATION_GOAL else 'FAIL'}: goal >= {UTILISATION_GOAL:.0%}]")


class Probe:
    """Client side of each limited call: when its slot began, when `_send` began, when
    httpcore had written the request headers to the socket, and when the slot settled.

    Paired with the server's arrival times: every arrival must lie between the slot's
    begin and settle (what makes the limiter exact as the server counts)."""

    def __init__(self, http) -> None:
        self.http, self.local = http, threading.local()
        self.seen: dict[str, tuple[float, float, float, float]] = {}  # path -> (began, sending, written, settled)

    @contextlib.contextmanager
    def installed(self):
        from httpcore._sync.http11 import HTTP11Connection

        limiter, client, slot = self.http.RateLimiter, self.http.VendorClient, self.http.Slot
        begin, send, headers, settle = (limiter.begin, client._send, HTTP11Connection._send_request_headers,
                                        slot.settle)
        probe, now = self, time.monotonic

        def timed_begin(self, *a, **kw):
            result = begin(self, *a, **kw)
            probe.local.began = now()
            return result

        def timed_settle(self):
            if getattr(probe.local, "settled", None) is None:
                probe.local.settled = now()
            return settle(self)

        def timed_send(self, request, *a, **kw):
            sending = now()
            probe.local.settled = None
            try:
                return send(self, request, *a, **kw)
            finally:
                probe.seen[request.path] = (getattr(probe.local, "began", math.nan), sending,
                                            getattr(probe.local, "written", math.nan),
                                            probe.local.settled or math.nan)

        def timed_headers(self, *a, **kw):
            result = headers(self, *a, **kw)
            probe.local.written = now()
            return result

        limiter.begin, client._send, HTTP11Connection._send_request_headers, slot.settle = (
            timed_begin, timed_send, timed_headers, timed_settle)
        try:
            yield self
        finally:
            limiter.begin, client._send, HTTP11Connection._send_request_headers, slot.settle = (
                begin, send, headers, settle)

    def delays(self, arrivals: dict[str, float]) -> dict[str, np.ndarray]:
        paths = [p for p in arrivals if p in self.seen]
        began, sending, written, settled = (np.array([self.seen[p][i] for p in paths]) for i in range(4))
        arrived = np.array([arrivals[p] for p in paths])
        return {"begin to arrival": arrived - began, "begin to _send": sending - began,
                "_send to written": written - sending, "written to arrival": arrived - written,
                "arrival to settle": settled - arrived}


def limited_run(server: Server, symbols: list[str], rate: int, window: float, http) -> dict[str, float]:
    """One limited fetch, its window statistics printed and returned."""
    server.clear()
    probe = Probe(http)
    with probe.installed():
        seconds, _ = stockpipe_fetch(server.url, symbols, rate)
    times = server.times()
    delays = probe.delays(server.arrivals())
    assert len(times) == len(symbols), (len(times), len(symbols))
    s = window_stats(times, rate, window)
    ideal = (len(symbols) - rate) / rate
    lost = s["mean_span"] - window  # per window: time to first byte, sleep overshoot, scheduling
    inside = int((delays["begin to arrival"] >= 0).sum()), int((delays["arrival to settle"] >= 0).sum())
    print(f"    most in any {window:g} s window {s['most']} (limit {rate}); tightest {rate + 1} arrivals "
          f"{s['tightest']:.3f}s; utilisation {s['utilisation']:.1%} ({rate / s['mean_span'] * window:.1f} calls/s, "
          f"each {rate} calls {s['mean_span']:.3f}s: {lost * 1000:.0f} ms lost per window; on the real 60 s "
          f"window that loss leaves {60 / (60 + lost):.2%}); requests {s['first_to_last']:.2f}s "
          f"(ideal {ideal:.2f}s), command {seconds:.2f}s")
    print(f"      arrivals after their slot began: {inside[0]}/{len(times)}, before it settled: {inside[1]}/{len(times)}; "
          "ms: " + "; ".join(f"{name} median {np.median(v * 1000):.1f} p99 {np.percentile(v * 1000, 99):.1f} "
                             f"max {v.max() * 1000:.1f}" for name, v in delays.items()))
    return s


if __name__ == "__main__":
    main()
