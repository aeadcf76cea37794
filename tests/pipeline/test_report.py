"""`report`: one self-contained page about a known run (a failing symbol and a quality
failure), opened in headless Chromium: a screenshot is taken, the rendered DOM shows the
counts and the failures, and the page made no network request."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from stockpipe.errors import ExitCode

GOOD_CSV = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
            "2024-01-02,9.5,10.2,9.1,10,9.9,1200\n2024-01-03,10,11,9,10.5,10.4,1000\n"
            "2024-01-04,10.5,11.5,10.1,11,10.9,900\n")
RUN_ID = "nightly-2024-01-04"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio")


@pytest.fixture
def known_run(make_cli, tmp_path):
    """A run with one good and one broken CSV (BAD fails), then a quality failure on GOOD
    recorded under the same run id (as an Airflow DAG run's quality task would)."""
    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "GOOD.csv").write_text(GOOD_CSV)
    (prices / "BAD.csv").write_text(GOOD_CSV.replace("10.5,", "x,", 1))
    cli = make_cli()
    code, _, err = cli("run", "--provider", "csv", "--path", "prices", "--run-id", RUN_ID)
    assert code == ExitCode.PARTIAL, err
    with sqlite3.connect(tmp_path / "stockpipe-data" / "stockpipe.db") as conn:
        conn.execute("UPDATE prices_daily SET high = low - 1 WHERE symbol = 'GOOD' AND date = '2024-01-03'")
    assert cli("quality-check", "--run-id", RUN_ID)[0] == ExitCode.QUALITY
    return cli


def test_report_names_the_run_its_failures_and_charts_them(known_run, tmp_path):
    code, out, err = known_run("report", "--run-id", RUN_ID, "--out", "report.html", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["failing_symbols"] == ["BAD"] and doc["quality_failures"] == 2, err
    assert doc["status"] == "failed" and doc["path"] == "report.html"
    page = (tmp_path / "report.html").read_text()
    for needle in (RUN_ID, "close is not a number", "high_encloses", 'data-symbol="GOOD"', "<polyline"):
        assert needle in page
    own = page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
    assert "http://" not in own and "https://" not in own and "//" not in own.replace("<!--", "")
    assert "<script" not in page and "<link rel=\"stylesheet\"" not in page


def test_the_newest_run_by_default_and_clear_errors(known_run, make_cli, tmp_path):
    code, out, _ = known_run("report", "--out", "latest.html")
    assert code == 0 and out.startswith("wrote latest.html: run ")
    code, _, err = known_run("report", "--run-id", "nosuch", "--out", "x.html")
    assert code == ExitCode.BAD_INPUT and "no run named 'nosuch'" in err
    code, _, err = known_run("report", "--out", "x.txt")
    assert code == ExitCode.USAGE and "name it *.html" in err


def test_run_writes_the_report_at_the_end(make_cli, tmp_path):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="30")
    code, _, err = cli("run", "--symbol", "IBM", "--report", "nowhere/r.html")
    assert code == ExitCode.USAGE and "nowhere" in err and not (tmp_path / "stockpipe-data").exists()
    code, out, err = cli("run", "--symbol", "IBM", "--report", "night.html", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["report"] == "night.html", err
    assert doc["run_id"] in (tmp_path / "night.html").read_text()


# ------------------------------------------------------------------ in a real browser


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return found


class _Logged(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path that records every path asked of it."""
    requests: list[str] = []
    handler = type("Handler", (_Logged,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def browse(url: str, profile: Path, *action: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1800",
                           *action, url], capture_output=True, text=True, timeout=120)


class Tables(HTMLParser):
    """The rendered DOM's tables by id (rows of cell texts), and every element id seen."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.ids: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._open: tuple[str, str] | None = None  # (tag, id) of the element with an id being read

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self._open = (tag, attrs["id"])
            self.ids.setdefault(attrs["id"], "")
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if self._open and self._open[0] == tag:
            self._open = None
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._open:
            self.ids[self._open[1]] += data


def test_the_page_in_headless_chromium(known_run, server, tmp_path):
    assert known_run("report", "--run-id", RUN_ID, "--out", "report.html")[0] == 0
    base, requests = server
    browsed = browse(f"{base}/report.html", tmp_path / "profile", "--dump-dom")
    assert browsed.returncode == 0 and "</html>" in browsed.stdout, browsed.stderr[-2000:]
    dom = Tables()
    dom.feed(browsed.stdout)

    assert dom.ids["status"].strip() == "failed"
    stages = {row[0]: row for row in dom.tables["stages"][1:]}
    header = dom.tables["stages"][0]
    fetch = dict(zip(header, stages["fetch"]))
    assert (fetch["ok"], fetch["failed"], fetch["deferred"], fetch["rows"]) == ("1", "1", "0", "3")
    failing = [row for row in dom.tables["failing"][1:]]
    assert [(r[0], r[1], r[2]) for r in failing] == [("BAD", "fetch", "failed")]
    assert "close is not a number" in failing[0][4]
    quality = dom.tables["quality"][1:]
    assert [(r[0], r[1], r[2]) for r in quality] == [("high_encloses", "error", "GOOD"), ("stale", "warn", "GOOD")]
    invocations = dom.tables["invocations"][1:]
    assert [r[0] for r in invocations] == ["run", "quality-check"]

    shot = tmp_path / "report.png"
    browsed = browse(f"{base}/report.html", tmp_path / "profile2", f"--screenshot={shot}")
    assert browsed.returncode == 0 and shot.stat().st_size > 10_000, browsed.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1800)
    colours = image.quantize(colors=32).getcolors()
    assert len([c for c in colours if c[0] > 20]) >= 4  # text, rules, the status colours, the chart

    assert requests == ["/report.html", "/report.html"]  # the page itself, once per visit: nothing else
