"""A normal night of 21,817 symbols on EODHD through the fake server (issue 14).

    python bench/bench_eodhd_nightly.py [--symbols 21817] [--scale 20] [--sample 2000] [--work-dir DIR]

The universe: 21,817 tickers over 8 exchanges (US, LSE, XETRA, TO, PA, AS, HK, AU, in the
proportions of the team's universe), each already holding every session up to Monday
2026-11-30 (symbol_state seeded through the library: planning reads nothing else). The night
is Tuesday 2026-12-01 23:00 UTC, when every one of the 8 exchanges has closed Tuesday's
session: every symbol lacks exactly one session. The fake EODHD server
(tests/fakevendor.py `EodhdExchange`, every ticker has a bar on every weekday) runs in its
own process, so its CPU is not stockpipe's.

1. bulk night (the default): `pipeline.fetch` with EODHD's published limits (1,000 calls a
   minute, 100,000 a day). Reported: HTTP requests the server saw, calls spent (the quota
   ledger: 100 per bulk request), the share of one call per symbol (goal <= 2%), the
   symbols the bulk answers lacked (asked one by one: the server leaves 0.1% of each
   exchange's tickers out of its bulk answer, as a real answer may), and the wall time.
2. per-symbol night (`bulk_daily = false`), for comparison, on `--sample` symbols with the
   limit scaled down in time: 1,000 calls per minute becomes 1,000 x `--scale` per minute
   (the limiter's own sliding window, so the pacing is real; at `--scale 20`, 333 calls a
   second), which measures stockpipe's own rate one symbol at a time. The per-symbol night
   at the real 1,000 calls a minute is then the larger of N calls paced at 1,000 a minute
   and N x the sample's time per symbol. The bulk night needs no scaling (its few dozen
   requests stay far inside one minute's 1,000), so its wall time is measured as it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

UTC = dt.timezone.utc
NIGHT = dt.datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # Tuesday: every exchange below has closed
HELD = dt.date(2026, 11, 30)  # Monday: the last session every symbol holds
# EODHD exchange code -> (canonical suffix, share of the universe)
EXCHANGES = {"US": ("", 0.55), "LSE": (".L", 0.14), "XETRA": (".DE", 0.07), "TO": (".TO", 0.07),
             "PA": (".PA", 0.055), "AS": (".AS", 0.025), "HK": (".HK", 0.055), "AU": (".AX", 0.035)}
MISSING_SHARE = 0.001  # of each exchange's tickers, left out of the bulk answer


def tickers(n: int) -> dict[str, list[str]]:
    """n tickers over EXCHANGES by their shares (the last takes the rounding)."""
    out, left = {}, n
    for i, (code, (_, share)) in enumerate(EXCHANGES.items()):
        count = left if i == len(EXCHANGES) - 1 else round(n * share)
        out[code], left = [f"{code[:2]}{j:05d}" for j in range(count)], left - count
    return out


def symbol(code: str, exchange: str) -> str:
    return code + EXCHANGES[exchange][0]


# ---------------------------------------------------------------------------- server


def serve(conn, listed: dict[str, list[str]]) -> None:
    """The fake EODHD in this child process: send its URL, then the requests it saw on demand."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakevendor import EodhdExchange, FakeVendor

    missing = {c for codes in listed.values() for c in codes[:max(1, int(len(codes) * MISSING_SHARE))]}
    with FakeVendor() as vendor:
        EodhdExchange(vendor, listed, missing=missing).install()
        conn.send(vendor.url)
        while True:
            command = conn.recv()
            if command == "stop":
                return
            if command == "count":
                calls = vendor.requests
                conn.send({"bulk": sum(c.path.startswith("/api/eod-bulk-last-day/") for c in calls),
                           "single": sum(c.path.startswith("/api/eod/") for c in calls)})
                vendor.clear()


# ---------------------------------------------------------------------------- night


def night(url: str, work: Path, listed: dict[str, list[str]], bulk: bool, per_minute: int) -> dict:
    """One fetch of the whole `listed` universe, seeded one session behind; its counts and time."""
    from stockpipe import pipeline
    from stockpipe.config import load_settings
    from stockpipe.storage import ledger, state

    symbols = [symbol(c, ex) for ex, codes in listed.items() for c in codes]
    env = {"STOCKPIPE_EODHD_API_KEY": "BENCHKEY", "STOCKPIPE_EODHD_BASE_URL": url,
           "STOCKPIPE_EODHD_CALLS_PER_MINUTE": str(per_minute), "STOCKPIPE_BULK_DAILY": str(bulk).lower()}
    settings = load_settings({"provider": "eodhd", "data_dir": work, "symbols": tuple(symbols)}, environ=env, cwd=work)
    engine = pipeline.open_warehouse(settings)
    with engine.begin() as conn:
        state.save_states(conn, [{"symbol": s, "dataset": "prices_daily", "first_date": HELD, "last_date": HELD,
                                  "provider": "eodhd"} for s in symbols])
    started = time.perf_counter()
    result = pipeline.fetch(settings, clock=lambda: NIGHT)
    wall = time.perf_counter() - started
    counts = {k: v for s in result.stages for k, v in s.counts.items()}
    spent = ledger.Ledger(engine, "eodhd", 100_000).status().calls  # the provider counts on the real clock
    return {"exit": result.exit_code, "wall": wall, "symbols": len(symbols), "counts": counts, "ledger": spent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=21_817)
    parser.add_argument("--scale", type=int, default=20, help="per-symbol night: time scaled down this many times")
    parser.add_argument("--sample", type=int, default=2000, help="per-symbol night: symbols asked (extrapolated)")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    listed = tickers(args.symbols)
    here, there = mp.Pipe()
    server = mp.Process(target=serve, args=(there, listed), daemon=True)
    server.start()
    url = here.recv()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-eodhd-"))
    try:
        bulk = night(url, work / "bulk", listed, True, 1000)
        here.send("count")
        bulk["server"] = here.recv()
        sample = {ex: codes[: max(1, round(args.sample * len(codes) / args.symbols))] for ex, codes in listed.items()}
        single = night(url, work / "single", sample, False, 1000 * args.scale)
        here.send("count")
        single["server"] = here.recv()
    finally:
        here.send("stop")
        server.join(5)
    report(args, bulk, single)


def report(args, bulk: dict, single: dict) -> None:
    n = bulk["symbols"]
    share = bulk["ledger"] / n
    requests = bulk["server"]["bulk"] + bulk["server"]["single"]
    own = single["wall"] * n / single["symbols"]  # stockpipe's own time for n symbols one by one
    paced = n / 1000 * 60  # the limiter's: n calls at 1,000 a minute
    print(json.dumps({"bulk": bulk, "per_symbol_sample": single}, default=str, indent=1))
    print(f"\n{n:,} symbols on EODHD, one new session each (fake server, its own process)")
    print(f"bulk night:       {requests} HTTP requests ({bulk['server']['bulk']} bulk, "
          f"{bulk['server']['single']} per-symbol for the tickers the bulk answers lacked) = {requests / n:.2%} of "
          f"one request per symbol (goal <= 2%: {'PASS' if requests / n <= 0.02 else 'FAIL'}); quota: "
          f"{bulk['ledger']:,} calls = {share:.1%} of one call per symbol (100 per bulk request); "
          f"wall {bulk['wall']:.1f} s at 1,000 calls/min, unscaled (exit {bulk['exit']})")
    print(f"per-symbol night: {single['symbols']:,} symbols at 1,000 x {args.scale} calls/min took "
          f"{single['wall']:.1f} s ({single['ledger']:,} calls), {single['symbols'] / single['wall']:.0f} symbols/s; "
          f"{n:,} symbols at 1,000 calls/min = max({paced / 60:.1f} min paced by the limit, {own / 60:.1f} min of "
          f"stockpipe's own work) = {max(paced, own) / 60:.1f} min and {n:,} calls "
          f"({max(paced, own) / max(bulk['wall'], 1e-9):.0f}x the bulk night's time)")


if __name__ == "__main__":
    main()
