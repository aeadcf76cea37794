"""Issue 11 row 23: quota pacing at scale. A fake EODHD that enforces a published rate
(answering 429 to a call past it, as vendors count: a sliding window of arrivals) and a
daily quota (402 past it), and a universe of synthetic symbols, with time scaled down: the
per-minute limit becomes per second. The fetch must get 0 answers of 429 in steady state,
stay inside the day's budget, and log its projected finish at the start.

STOCKPIPE_FAULT_QUOTA_SYMBOLS sets the universe (default 1,500 for CI, ~40 s a backend at
40 calls a second; the issue's 21,817-asset night is `STOCKPIPE_FAULT_QUOTA_SYMBOLS=22000`,
~10 minutes a backend on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import os
import re
import time

import faultharness as h
from helpers import query

from stockpipe.errors import ExitCode

SYMBOLS = int(os.environ.get("STOCKPIPE_FAULT_QUOTA_SYMBOLS", "1500"))
PER_SECOND = 40


def test_a_large_universe_is_paced_without_a_429_inside_the_days_budget(database_url, fake_vendor, tmp_path):
    vendor = h.Eodhd(fake_vendor)
    fake_vendor.rate_limit(PER_SECOND, 1.0)
    fake_vendor.quota(SYMBOLS)  # the day's budget: exactly one call per symbol
    universe = tmp_path / "universe.txt"
    universe.write_text("\n".join(f"Q{i:05d}" for i in range(SYMBOLS)) + "\n")
    env = h.environment(tmp_path / "data", database_url, fake_vendor.url, STOCKPIPE_HISTORY_DAYS="3",
                        STOCKPIPE_EODHD_CALLS_PER_SECOND=str(PER_SECOND), STOCKPIPE_EODHD_CALLS_PER_MINUTE="1000000",
                        STOCKPIPE_EODHD_CALLS_PER_DAY=str(SYMBOLS))
    started = time.monotonic()
    done = h.stockpipe(env, "fetch", "--symbols-file", str(universe), "--end", h.END, "--json", timeout=3600)
    took = time.monotonic() - started

    assert done.returncode == ExitCode.OK, done.stderr[-2000:]
    assert fake_vendor.throttled == 0  # not one 429
    assert len(fake_vendor.requests) == SYMBOLS
    assert len(vendor.asked()) == SYMBOLS  # each symbol once: no retry, no 402 past the budget
    assert json.loads(done.stdout)["counts"]["ok"] == SYMBOLS
    assert query(database_url, "SELECT SUM(calls) FROM quota_ledger") == [(SYMBOLS,)]
    lines = [json.loads(line)["message"] for line in done.stderr.splitlines() if "plan: eodhd:" in line]
    assert len(lines) == 1, done.stderr[-2000:]
    assert f"eodhd: {SYMBOLS} call(s)" in lines[0] and "finish by" in lines[0]  # pipeline/forecast.py
    projected = (SYMBOLS - 1) // PER_SECOND
    assert took >= projected  # the pacing really held it back
    h.record(f"quota_pacing_{database_url.split(':')[0].split('+')[0]}", symbols=SYMBOLS,
             limit_per_second=PER_SECOND, answers_429=fake_vendor.throttled, calls=len(fake_vendor.requests),
             day_budget=SYMBOLS, projected_s=projected, fetch_seconds=round(took, 1),
             projection_line=re.sub(r"\s+", " ", lines[0]))
