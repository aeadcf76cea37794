"""What the fault tests share (issue 11): a synthetic vendor, the real CLI as a process, the
golden run's content hashes, and the figures file.

- `Eodhd` answers EODHD's daily endpoint for any symbol on a FakeVendor with bars derived
  from (symbol, date) alone, so every run, killed or not, is sent the same rows; a symbol
  can be given a scenario (a list of Replies) instead, and requests are counted per symbol.
- `stockpipe(...)` runs `python -m stockpipe` in a child process with no setting of the
  developer's, the provider pointed at the fake, and a recognisable API key (`KEY`).
- `content_hashes(data_dir, url)`: per lake dataset and per warehouse table, a SHA-256 of
  its rows sorted by key without the volatile columns (run ids, times): "the same final
  state" is equal hashes. `doubled_and_lost` counts key duplicates and rows missing.
- `record(name, **figures)` adds to faults-figures.json (under pytest's base temp, path
  printed at the end of the session by conftest.py) the numbers the README's "Reliability"
  section quotes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

from fakevendor import Call, FakeVendor, Reply
from helpers import COMPARED, environment_without_settings, lake_rows, warehouse_rows

KEY = "FAULTKEY-7c1e9d04b2a6f3"  # recognisable: grep for it everywhere (test_secrets.py)
# A fixed window, so every run plans the same dates: `--end END` and history_days reaching
# back to START (never --start, which refetches on purpose: a re-run must resume instead).
START, END = "2025-06-02", "2026-11-20"
HISTORY_DAYS = (dt.date.fromisoformat(END) - dt.date.fromisoformat(START)).days
WAREHOUSE_TABLES = COMPARED


def sessions(start: str = START, end: str = END) -> list[dt.date]:
    from stockpipe.calendars import sessions_between

    return sessions_between(dt.date.fromisoformat(start), dt.date.fromisoformat(end))


def bar_rows(symbol: str, start: str, end: str) -> list[dict]:
    """EODHD's JSON rows for `symbol` on each NYSE session from `start` to `end`: a function
    of (symbol, date) only."""
    seed = zlib.crc32(symbol.encode())
    rows = []
    for day in sessions(start, end):
        base = 20 + seed % 400 + (day.toordinal() % 97) / 4
        rows.append({"date": day.isoformat(), "open": round(base, 2), "high": round(base * 1.02, 2),
                     "low": round(base * 0.98, 2), "close": round(base * 1.01, 2),
                     "adjusted_close": round(base * 1.01, 2), "volume": 1000 + (seed + day.toordinal()) % 50_000})
    return rows


def symbol_of(call: Call) -> str:
    """The canonical symbol of an /api/eod/<TICKER>.US request."""
    return call.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


class Eodhd:
    """EODHD's daily endpoint, synthetic, on `server`; `latency` seconds per answer."""

    def __init__(self, server: FakeVendor, latency: float = 0.0) -> None:
        self.server, self.latency = server, latency
        self._lock = threading.Lock()
        self._scenarios: dict[str, list] = {}
        self._calls: dict[str, list[Call]] = {}
        server.route("/api/eod/*", self._answer)

    def scenario(self, symbol: str, *answers) -> Eodhd:
        """Answer `symbol` with `answers` in turn (the last repeats): Replies, or
        callables (Call -> Reply)."""
        self._scenarios[symbol] = list(answers)
        return self

    def bars(self, call: Call) -> Reply:
        """The synthetic answer to `call`."""
        rows = bar_rows(symbol_of(call), call.param("from") or START, call.param("to") or END)
        return Reply(200, json.dumps(rows), latency=self.latency)

    def calls(self, symbol: str | None = None) -> list[Call]:
        with self._lock:
            return [c for s, calls in self._calls.items() if symbol in (None, s) for c in calls]

    def asked(self) -> set[str]:
        with self._lock:
            return {s for s, calls in self._calls.items() if calls}

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def _answer(self, call: Call) -> Reply:
        symbol = symbol_of(call)
        with self._lock:
            self._calls.setdefault(symbol, []).append(call)
            answers = self._scenarios.get(symbol)
            answer = (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else None
        if answer is None:
            return self.bars(call)
        return answer(call) if callable(answer) else answer


# ------------------------------------------------------------------------ the CLI


def environment(data_dir: Path, url: str, vendor_url: str, **settings: str) -> dict[str, str]:
    """A child's environment: EODHD at the fake with KEY, `data_dir`, the warehouse at `url`."""
    return environment_without_settings(**{
        "STOCKPIPE_PROVIDER": "eodhd", "STOCKPIPE_EODHD_API_KEY": KEY, "STOCKPIPE_EODHD_BASE_URL": vendor_url,
        "STOCKPIPE_DATA_DIR": str(data_dir), "STOCKPIPE_DATABASE_URL": url, "STOCKPIPE_LOG_FORMAT": "json",
        "STOCKPIPE_HISTORY_DAYS": str(HISTORY_DAYS), **settings})


ENTRY = ("-m", "stockpipe")


def command(*args: str, entry: tuple[str, ...] = ENTRY) -> list[str]:
    """`python -m stockpipe ARGS` (or `python -c CODE ARGS` with entry=("-c", CODE))."""
    return [sys.executable, *entry, *args]


def stockpipe(env: dict[str, str], *args: str, timeout: float = 300, cwd: Path | None = None,
              entry: tuple[str, ...] = ENTRY) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args, entry=entry), env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def universe(symbols) -> list[str]:
    return [a for s in symbols for a in ("--symbol", s)]


def run_args(symbols, *extra: str) -> list[str]:
    return ["run", *universe(symbols), "--end", END, *extra]


# ------------------------------------------------------------------------ content


def content_hashes(data_dir: Path, url: str) -> dict[str, str]:
    """SHA-256 of each compared lake dataset ("lake:<name>") and warehouse table ("db:<name>"):
    rows sorted by key, volatile columns left out."""
    hashes = {}
    for name in COMPARED:
        hashes[f"lake:{name}"] = _digest(lake_rows(data_dir, name))
        hashes[f"db:{name}"] = _digest(warehouse_rows(url, name))
    return hashes


def _digest(frame) -> str:
    return hashlib.sha256(frame.to_csv(index=False, float_format="%.10g").encode()).hexdigest()


def doubled_and_lost(data_dir: Path, url: str, golden_rows: dict[str, int]) -> tuple[int, int]:
    """Rows held twice (same key) and rows missing against the golden counts, lake and warehouse."""
    from stockpipe.models import DATASETS

    doubled = lost = 0
    for name in COMPARED:
        key = list(DATASETS[name].key)
        for frame in (lake_rows(data_dir, name), warehouse_rows(url, name)):
            doubled += int(frame.duplicated(key).sum())
            lost += max(0, golden_rows[name] - len(frame.drop_duplicates(key)))
    return doubled, lost


def reset_postgres(url: str) -> None:
    """An empty public schema (the next CLI run migrates it)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def files_outside(data_dir: Path, roots: list[Path], since: float, asked: tuple[Path, ...] = ()) -> list[Path]:
    """Files under `roots` outside `data_dir`, modified since `since` (time.time()), other
    than the `asked` ones (a --metrics-file, a --report)."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if (path.is_file() and data_dir not in path.parents and path not in asked
                        and path.stat().st_mtime >= since):
                    found.append(path)
            except OSError:
                continue
    return found


# ------------------------------------------------------------------------ figures


def figures_file() -> Path:
    return Path(os.environ["PYTEST_FAULT_FIGURES"])


def record(name: str, **figures) -> None:
    """Merge `figures` under `name` into the figures file (one writer at a time: the tests run
    in one process)."""
    path = figures_file()
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(name, {}).update(figures)
    data[name]["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
