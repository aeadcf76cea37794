"""Issue 11 rows 7-12, 19 and 20: a hostile or broken vendor, through the real CLI (a child
process) against the fake EODHD, on SQLite and PostgreSQL. One symbol gets the fault, the
others normal answers: the fault stays that symbol's, nothing of a bad body is stored, the
others land, and the run ends within its bounds.

Already covered one level down (tests/providers/test_http.py): retries and Retry-After for
429/5xx, resets and truncated bodies retried, the total deadline against a trickling body,
the limiter against a window-counting vendor. What is new here is the whole run around them.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from pathlib import Path

import faultharness as h
import pytest
from fakevendor import (
    FakeVendor,
    Reply,
    endless,
    gzip_bomb,
    redirect,
    reset,
    self_signed,
    truncated,
)
from helpers import query

from stockpipe.errors import ExitCode

GOOD = ("NA", "NB", "NC")


def _run(database_url, server, tmp_path, symbols, *extra, **settings) -> tuple[int, dict, str, float]:
    env = h.environment(tmp_path / "data", database_url, server.url, **settings)
    started = time.monotonic()
    done = h.stockpipe(env, *h.run_args(symbols, "--json", *extra))
    took = time.monotonic() - started
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        doc = {}
    return done.returncode, doc, done.stderr, took


def _stored(url: str, symbol: str) -> list[tuple]:
    return query(url, f"SELECT date, close FROM prices_daily WHERE symbol = '{symbol}' ORDER BY date")


def _events(url: str, stage: str = "fetch") -> dict[str, tuple[str, str]]:
    rows = query(url, f"SELECT symbol, status, message FROM run_events WHERE stage = '{stage}' ORDER BY id")
    return {symbol: (status, message or "") for symbol, status, message in rows}


def _assert_landed(url: str, *symbols: str) -> None:
    for symbol in symbols:
        assert len(_stored(url, symbol)) == len(h.sessions()), symbol


def _backend(url: str) -> str:
    return url.split(":")[0].split("+")[0]


# ------------------------------------------------------------------ row 7


def test_429_storms_and_5xx_then_recovery_land_everything_within_the_limit(database_url, fake_vendor, tmp_path):
    vendor = h.Eodhd(fake_vendor)
    fake_vendor.rate_limit(4, 1.0)  # the published limit, enforced: a call past it is answered 429
    storm_ends = time.monotonic() + 1e9
    storm = Reply(429, '{"error": "Too Many Requests"}', headers={"Retry-After": "1"})

    def stormy(call):
        nonlocal storm_ends
        storm_ends = min(storm_ends, call.at + 2.5)  # every call for 2.5 s from the first one
        return storm if call.at < storm_ends else vendor.bars(call)

    symbols = (*GOOD, "ND", "NE", "NF")
    for symbol in GOOD:
        vendor.scenario(symbol, stormy)
    vendor.scenario("ND", Reply(503, "<html>Service Unavailable</html>", content_type="text/html"),
                    Reply(502, "Bad Gateway", content_type="text/plain"), vendor.bars)
    vendor.scenario("NE", storm, storm, storm, vendor.bars)
    code, doc, err, took = _run(database_url, fake_vendor, tmp_path, symbols, STOCKPIPE_EODHD_CALLS_PER_SECOND="4")

    assert code == ExitCode.OK, err[-2000:]
    assert fake_vendor.throttled == 0  # the client never went past the published limit
    _assert_landed(database_url, *symbols)
    retried = len(vendor.calls()) - len(symbols)
    assert retried >= 6 and doc["counts"]["api_calls"] == len(vendor.calls())  # every attempt counted
    h.record(f"storms_{_backend(database_url)}", answers_429_past_limit=fake_vendor.throttled,
             retried_calls=retried, symbols_landed=len(symbols), seconds=round(took, 1))


# ------------------------------------------------------------------ row 8


BROKEN = {
    "RST": reset(b'[{"date": "2025-06-02", "open": 1'),
    "TRUNC": truncated(b'[{"date": "2025-06-02", "open": 1'),
    "BADJSON": Reply(200, b'[{"date": "2025-06-02", "open": 1.0, "close": }]'),
    "HTML": Reply(200, "<html><body><h1>We'll be right back</h1></body></html>", content_type="text/html"),
}


def test_broken_bodies_fail_their_symbol_only_and_store_nothing(database_url, fake_vendor, tmp_path):
    vendor = h.Eodhd(fake_vendor)
    for symbol, answer in BROKEN.items():
        vendor.scenario(symbol, answer)
    # the breaker would call the vendor down after 3 unanswered attempts in a row; here the
    # question is what happens to each symbol, so it is set out of the way
    code, doc, err, _ = _run(database_url, fake_vendor, tmp_path, (*GOOD, *BROKEN),
                             STOCKPIPE_UNREACHABLE_AFTER="100", STOCKPIPE_EODHD_CALLS_PER_SECOND="50")

    assert code == ExitCode.PARTIAL, err[-2000:]
    _assert_landed(database_url, *GOOD)
    events = _events(database_url)
    for symbol in BROKEN:
        assert _stored(database_url, symbol) == [], symbol
        assert events[symbol][0] == "failed", (symbol, events[symbol])
    assert "PROTOCOL_ERROR" in events["BADJSON"][1].upper() or "json" in events["BADJSON"][1].lower()
    assert {s for s, (status, _) in events.items() if status == "failed"} == set(BROKEN)
    h.record(f"broken_bodies_{_backend(database_url)}", symbols_failed=len(BROKEN), rows_stored_from_them=0,
             others_landed=len(GOOD))


# ------------------------------------------------------------------ row 9


def test_a_hung_vendor_holds_the_run_no_longer_than_its_deadlines(database_url, fake_vendor, tmp_path):
    """A body that never ends (cut at twice http_timeout_read, not retried) and a server that
    never answers (http_timeout_read per attempt; after unreachable_after silent attempts the
    vendor counts as down): the run ends, the good symbols asked first are saved. Timeouts
    scaled down (read 2 s, so a whole answer 4 s); with the defaults the bounds are 60 s and
    3 x 30 s."""
    vendor = h.Eodhd(fake_vendor)
    vendor.scenario("ENDLESS", endless(interval=0.2))
    vendor.scenario("SILENT", Reply(latency=3600))
    read, after = 2.0, 3
    total = 2 * read
    code, doc, err, took = _run(database_url, fake_vendor, tmp_path, (*GOOD, "ENDLESS", "SILENT"),
                                STOCKPIPE_HTTP_TIMEOUT_READ=str(read),
                                STOCKPIPE_EODHD_CALLS_PER_SECOND="50")

    assert code in (ExitCode.PARTIAL, ExitCode.UNAVAILABLE), err[-2000:]
    _assert_landed(database_url, *GOOD)
    assert _stored(database_url, "ENDLESS") == _stored(database_url, "SILENT") == []
    bound = total + after * read + 15  # + backoff between attempts, startup and the other stages
    assert took < bound, f"the run took {took:.1f} s against a bound of {bound:.0f} s"
    endless_calls = len(vendor.calls("ENDLESS"))
    assert endless_calls == 1  # a body that never ends is not retried
    h.record(f"hung_vendor_{_backend(database_url)}", run_seconds=round(took, 1), timeout_read_s=read,
             timeout_total_s=total, bound_with_defaults_s=max(60.0, after * 30.0))


# ------------------------------------------------------------------ rows 10 and 19


def _peak_rss_mb(env, *args) -> tuple[int, float, str]:
    """Exit code, peak RSS (MB) and stderr of one `stockpipe` child. The peak is VmHWM of
    the child's own address space, read while it runs: getrusage's ru_maxrss would carry
    this test process's RSS over the fork and exec."""
    import subprocess

    proc = subprocess.Popen(h.command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    reader.start()
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)))
        except (OSError, AttributeError):
            pass
        time.sleep(0.02)
    reader.join(timeout=10)
    return proc.returncode, peak / 1024, b"".join(errors).decode(errors="replace")


@pytest.mark.parametrize("fault", ["50MB", "gzip-bomb"])
def test_an_oversized_body_is_cut_at_the_size_cap_with_memory_bounded(fault, database_url, fake_vendor, tmp_path):
    vendor = h.Eodhd(fake_vendor)
    env = h.environment(tmp_path / "data", database_url, fake_vendor.url)
    baseline = h.environment(tmp_path / "base", f"sqlite:///{tmp_path / 'base.db'}", fake_vendor.url)
    _, base_rss, _ = _peak_rss_mb(baseline, *h.run_args(GOOD))  # the same run without the fault
    big = (Reply(200, b"[" + b" " * (50 * 10**6) + b"]") if fault == "50MB" else gzip_bomb(1 << 30))
    vendor.scenario("HUGE", big)

    started = time.monotonic()
    code, rss, err = _peak_rss_mb(env, *h.run_args((*GOOD, "HUGE")))
    took = time.monotonic() - started

    assert code == ExitCode.PARTIAL, err[-2000:]
    _assert_landed(database_url, *GOOD)
    assert _stored(database_url, "HUGE") == []
    status, message = _events(database_url)["HUGE"]
    assert status == "failed" and "body larger than" in message, message
    assert len(vendor.calls("HUGE")) == 1  # not retried
    assert rss - base_rss < 120, f"peak RSS {rss:.0f} MB against {base_rss:.0f} MB without the fault"
    h.record(f"oversized_{fault}_{_backend(database_url)}", peak_rss_mb=round(rss), baseline_rss_mb=round(base_rss),
             seconds=round(took, 1), body_bytes=len(big.data), cap_bytes=32 * 2**20)


# ------------------------------------------------------------------ rows 11 and 12


def test_duplicate_and_shuffled_rows_are_stored_once_in_date_order(database_url, fake_vendor, tmp_path):
    vendor = h.Eodhd(fake_vendor)

    def messy(call):
        rows = h.bar_rows("MESSY", h.START, h.END)
        rows = rows + rows[::7]  # every 7th bar twice
        random.Random(7).shuffle(rows)
        return Reply(200, json.dumps(rows))

    vendor.scenario("MESSY", messy)
    code, _, err, _ = _run(database_url, fake_vendor, tmp_path, ("MESSY", *GOOD))

    assert code == ExitCode.OK, err[-2000:]
    stored = _stored(database_url, "MESSY")
    expected = [(r["date"], r["close"]) for r in h.bar_rows("MESSY", h.START, h.END)]
    assert [(str(d), c) for d, c in stored] == expected  # once each, every session
    lake = h.lake_rows(tmp_path / "data", "prices_daily")
    assert not lake.duplicated(["symbol", "date"]).any()
    assert list(lake[lake.symbol == "MESSY"]["date"]) == sorted(lake[lake.symbol == "MESSY"]["date"])
    h.record(f"duplicates_{_backend(database_url)}", rows_sent=len(expected) + len(expected[::7]),
             rows_stored=len(stored), rows_doubled=len(stored) - len(set(stored)))


def test_a_restated_bar_replaces_the_stored_one(database_url, fake_vendor, tmp_path):
    vendor = h.Eodhd(fake_vendor)
    day = h.sessions()[-2]

    def restated(call):
        rows = h.bar_rows("RESTATE", call.param("from"), call.param("to"))
        for row in rows:
            if row["date"] == day.isoformat():
                row["close"] = round(row["close"] + 1.25, 2)
        return Reply(200, json.dumps(rows))

    code, _, err, _ = _run(database_url, fake_vendor, tmp_path, ("RESTATE",))
    assert code == ExitCode.OK, err[-2000:]
    before = dict((str(d), c) for d, c in _stored(database_url, "RESTATE"))
    vendor.scenario("RESTATE", restated)

    code, _, err, _ = _run(database_url, fake_vendor, tmp_path, ("RESTATE",), "--start", day.isoformat())

    assert code == ExitCode.OK, err[-2000:]
    rows = query(database_url, f"SELECT close FROM prices_daily WHERE symbol = 'RESTATE' AND date = '{day}'")
    assert rows == [(round(before[day.isoformat()] + 1.25, 2),)]  # the new value, one row
    assert len(_stored(database_url, "RESTATE")) == len(before)


# ------------------------------------------------------------------ row 20


def test_a_redirect_to_another_host_is_not_followed(database_url, fake_vendor, tmp_path):
    vendor = h.Eodhd(fake_vendor)
    with FakeVendor() as elsewhere:
        h.Eodhd(elsewhere)
        port = elsewhere.url.rsplit(":", 1)[1]
        vendor.scenario("AWAY", lambda call: redirect(f"http://localhost:{port}{call.path}?{call.raw_query}"))
        fake_vendor.route("/api/eod/MOVED.US", lambda call: vendor.bars(call) if call.param("moved")
                          else redirect(f"/api/eod/MOVED.US?{call.raw_query}&moved=1"))
        code, _, err, _ = _run(database_url, fake_vendor, tmp_path, ("AWAY", "MOVED", *GOOD))
        assert elsewhere.requests == []  # nothing, and so no key, went to the other host

    assert code == ExitCode.PARTIAL, err[-2000:]
    status, message = _events(database_url)["AWAY"]
    assert status == "failed" and "redirected to another host (http://localhost:" in message, message
    _assert_landed(database_url, "MOVED", *GOOD)  # a redirect on the same host is followed


def test_a_self_signed_certificate_is_terminal_and_not_retried(database_url, tmp_path):
    with FakeVendor(tls=self_signed(tmp_path)) as server:
        h.Eodhd(server)
        code, doc, err, took = _run(database_url, server, tmp_path, GOOD)

    assert code == ExitCode.CONFIG, err[-2000:]
    assert "TLS failed for 127.0.0.1" in doc["message"] and "self-signed certificate" in doc["message"]
    assert server.requests == []
    assert took < 20  # no retries with backoff: refused at the first attempt
    for symbol in GOOD:
        assert _stored(database_url, symbol) == []


def test_no_setting_turns_certificate_verification_off():
    import dataclasses

    from stockpipe.config import Settings

    names = [f.name for f in dataclasses.fields(Settings)]
    assert not [n for n in names if any(w in n for w in ("verify", "insecure", "ssl", "tls", "cert"))]
    source = (Path(__file__).parents[2] / "src" / "stockpipe").rglob("*.py")
    assert not [p for p in source if "verify=False" in p.read_text()]
