"""Issue 11 row 14: an API key that can be recognised, sent through every path a run can take
— success, a refused key whose answer echoes it, an error page and a quota text that quote
it, a reset, a redirect whose Location carries it, a body that never ends, an unexpected
exception shown with --debug, the metrics file and the HTML report — by the real CLI (child
processes), on SQLite and PostgreSQL. Then grep stdout, stderr, every table's rows, every
file name and every file's bytes (gzip opened, Parquet read) under the data directory and
the test's folder: 0 hits.

The in-process version over every keyed vendor (DEBUG logs of httpx/httpcore included) is
tests/test_providers_matrix.py::test_the_api_key_appears_nowhere; this one adds the child
process, the faults, PostgreSQL's tables, --debug tracebacks and the other files a run writes.
"""

from __future__ import annotations

import time

import faultharness as h
import sqlalchemy as sa
from fakevendor import Reply, endless, redirect, reset
from helpers import left_in

KEY = h.KEY
# A run that hits a bug: the batch save raises, so `--debug` prints a traceback.
BUG = ("import sys, stockpipe.pipeline.fetching as f\n"
       "def boom(*a, **k):\n    raise RuntimeError('injected bug')\n"
       "f._flush = boom\n"
       "from stockpipe.cli import main\nsys.exit(main(sys.argv[1:]))\n")


def _table_text(url: str) -> str:
    engine = sa.create_engine(url)
    texts = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                texts += [repr(tuple(row)) for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"')]
    finally:
        engine.dispose()
    return "\n".join(texts)


def test_the_key_appears_nowhere_a_run_leaves_anything(database_url, fake_vendor, tmp_path):
    vendor = h.Eodhd(fake_vendor)
    echo = lambda status, text, **kw: lambda call: Reply(status, text.replace("{q}", call.raw_query), **kw)
    vendor.scenario("REFUSED", echo(401, '{"error": "Invalid api_token in {q}"}'))
    vendor.scenario("PAGE", echo(200, "<html><p>cache error for {q}</p></html>", content_type="text/html"))
    vendor.scenario("ERR500", echo(500, "<html>upstream failed: {q}</html>", content_type="text/html"))
    vendor.scenario("QUOTA", echo(402, "You exceeded your daily API requests limit ({q}).", content_type="text/plain"))
    vendor.scenario("ECHO", lambda call: Reply(200, vendor.bars(call).data.replace(
        b'"volume"', f'"note": "{call.raw_query}", "volume"'.encode(), 1),
        headers={"X-Echo": call.raw_query}))
    vendor.scenario("RESET", reset())
    vendor.scenario("AWAY", lambda call: redirect(f"http://localhost:1/{call.path}?{call.raw_query}"))
    vendor.scenario("SLOW", endless(interval=0.2))
    data = tmp_path / "data"
    env = h.environment(data, database_url, fake_vendor.url, STOCKPIPE_HTTP_TIMEOUT_READ="1.5",
                        STOCKPIPE_UNREACHABLE_AFTER="100", STOCKPIPE_EODHD_CALLS_PER_SECOND="50")
    said: list[str] = []
    runs = [
        ("run", *h.universe(("GOOD", "ECHO", "PAGE", "ERR500", "RESET", "AWAY", "SLOW")), "--end", h.END, "--metrics-file", str(tmp_path / "run.prom"), "--report", str(tmp_path / "report.html")),
        ("run", "--symbol", "REFUSED", "--end", h.END, "--json"),
        ("run", "--symbol", "QUOTA", "--end", h.END, "--json"),
        ("validate", "--probe", "--json"),
        ("health-check", "--json"),
    ]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    started = time.time() - 1
    for args in runs:
        for debug in ((), ("--debug",)):
            done = h.stockpipe(env, *args, *debug, cwd=cwd)
            said += [done.stdout, done.stderr]
    bug = h.stockpipe(env, "run", "--symbol", "NEWONE", "--end", h.END, "--debug",
                      cwd=cwd, entry=("-c", BUG))
    said += [bug.stdout, bug.stderr]
    assert "Traceback" in bug.stderr and "injected bug" in bug.stderr  # --debug did print a traceback

    sent = [c for c in fake_vendor.requests if c.param("api_token") == KEY]
    assert len(sent) >= 10  # the key really went out, on every path
    names, blobs = left_in(tmp_path)
    text = "\n".join([*said, _table_text(database_url), *names])
    hits = text.count(KEY) + sum(b.count(KEY.encode()) for b in blobs)
    # all was read: the tables, the messages quoting the answers, the raw archive gunzipped
    assert "GOOD" in _table_text(database_url) and "Invalid api_token" in text
    assert any(b'"note": "fmt=json' in b for b in blobs)
    asked = (tmp_path / "run.prom", tmp_path / "report.html",  # and the SQLite warehouse the URL names
             *(p for p in tmp_path.glob("warehouse.db*") if database_url.startswith("sqlite")))
    outside = h.files_outside(data, [tmp_path], started, asked=asked)
    h.record(f"secrets_{database_url.split(':')[0].split('+')[0]}", key_hits=hits, commands=len(runs) * 2 + 1,
             files_searched=len(blobs), files_written_outside_data_dir=len(outside))
    assert hits == 0, [line for line in text.splitlines() if KEY in line][:5]
    assert outside == [], outside
