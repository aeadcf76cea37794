"""logs.py: real JSON lines, the levels of each format, bound context, per-symbol outcome lines."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from stockpipe import logs
from stockpipe.models import SymbolOutcome

log = logging.getLogger("stockpipe.test")


@pytest.fixture
def stderr():
    """configure(fmt, debug), its handler's stream swapped for a buffer; returns a function
    giving the lines written."""
    root = logging.getLogger("stockpipe")
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()

    def configure(fmt: str = "json", debug: bool = False):
        logs.configure(fmt, debug)
        root.handlers[0].setStream(stream)
        return lambda: stream.getvalue().splitlines()

    yield configure
    root.handlers[:], root.level = saved


def test_a_json_line_is_valid_json_whatever_the_message_holds(stderr):
    lines = stderr("json")
    message = 'quote " and backslash \\ and\nnewline, tab\t and % sign'
    log.warning("%s", message)
    [line] = lines()
    doc = json.loads(line)
    assert doc["message"] == message and doc["level"] == "WARNING" and doc["logger"] == "stockpipe.test"
    assert dt.datetime.fromisoformat(doc["ts"]).utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("fmt, debug, lowest", [("text", False, logging.WARNING), ("json", False, logging.INFO),
                                                 ("text", True, logging.DEBUG), ("json", True, logging.DEBUG)])
def test_levels_of_each_format(stderr, fmt, debug, lowest):
    stderr(fmt, debug)
    root = logging.getLogger("stockpipe")
    assert root.isEnabledFor(lowest) and not root.isEnabledFor(lowest - 10)


def test_bound_fields_ride_every_line_and_leave_with_the_block(stderr):
    lines = stderr("json")
    with logs.bind(run_id="r-1", command="run", shard=None):
        with logs.bind(stage="fetch"):
            log.info("inside")
        log.info("after the stage")
    log.info("outside")
    inside, after_stage, outside = (json.loads(line) for line in lines())
    assert (inside["run_id"], inside["command"], inside["stage"]) == ("r-1", "run", "fetch")
    assert "shard" not in inside  # None values are left out
    assert "stage" not in after_stage and after_stage["run_id"] == "r-1"
    assert "run_id" not in outside


def test_stage_decorator_binds_the_stage(stderr):
    lines = stderr("json")

    @logs.stage("load")
    def load_something():
        log.info("loading")

    load_something()
    assert json.loads(lines()[0])["stage"] == "load"


def test_carry_hands_the_fields_to_worker_threads(stderr):
    lines = stderr("json")
    with logs.bind(run_id="r-2"), ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(log.info, "plain").result()
        pool.submit(logs.carry(log.info), "carried").result()
    plain, carried = (json.loads(line) for line in lines())
    assert "run_id" not in plain  # a thread pool does not copy contextvars: that is why carry() exists
    assert carried["run_id"] == "r-2"


OUTCOMES = [SymbolOutcome("IBM", "fetch", "ok", 250, 1, "", "eodhd"),
            SymbolOutcome("BAD", "fetch", "failed", 0, 1, "eodhd does not know BAD", "eodhd", 65),
            SymbolOutcome("MSFT", "fetch", "skipped", 0, 0, "deferred: eodhd stopped", "eodhd", 3)]


def test_each_outcome_is_one_json_line_with_its_fields(stderr):
    lines = stderr("json")
    with logs.bind(run_id="r-3"):
        logs.outcomes(OUTCOMES)
    docs = [json.loads(line) for line in lines()]
    assert [(d["symbol"], d["outcome"], d["level"]) for d in docs] == [
        ("IBM", "ok", "INFO"), ("BAD", "failed", "WARNING"), ("MSFT", "skipped", "INFO")]
    assert docs[0] | {"ts": None} == {"ts": None, "level": "INFO", "logger": "stockpipe", "run_id": "r-3",
                                      "message": "fetch IBM ok: 250 row(s)", "stage": "fetch", "symbol": "IBM",
                                      "outcome": "ok", "rows": 250, "api_calls": 1, "provider": "eodhd"}


def test_text_format_shows_only_the_failures(stderr):
    lines = stderr("text")
    logs.outcomes(OUTCOMES)
    [line] = lines()
    assert line.endswith("WARNING fetch BAD failed: eodhd does not know BAD")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_urls_never_reach_a_log_with_their_query_string(stderr, fmt):
    lines = stderr(fmt, debug=True)
    try:
        raise RuntimeError("GET https://eodhd.com/api/eod/IBM.US?api_token=SECRET123&fmt=json failed")
    except RuntimeError:
        log.exception("fetch failed for https://eodhd.com/api/eod/IBM.US?api_token=SECRET123")
    text = "\n".join(lines())
    assert "SECRET123" not in text and "https://eodhd.com/api/eod/IBM.US?..." in text
    if fmt == "json":
        assert "Traceback" in json.loads(text)["exc"]


# ------------------------------------------------------------------ the CLI as a whole




def test_run_logs_one_json_line_per_symbol_and_stage(cli):
    code, out, err = cli("run", "--all", "--json", "--log-format", "json")
    assert code == 0
    doc = json.loads(out)
    lines = [json.loads(line) for line in err.splitlines()]  # every stderr line is one JSON object
    outcomes = [line for line in lines if "outcome" in line]
    assert sorted((o["stage"], o["symbol"], o["outcome"]) for o in outcomes) == sorted(
        (s["stage"], s["symbol"], s["status"]) for s in doc["symbols"])
    assert {o["stage"] for o in outcomes} == {"fetch", "transform"}
    assert {line.get("run_id") for line in lines} == {doc["run_id"]}
    assert all(o["command"] == "run" and o["level"] == "INFO" for o in outcomes)


def test_the_setting_chooses_the_format_and_text_stays_quiet(cli, monkeypatch):
    code, _, err = cli("run", "--all")
    assert code == 0 and err == ""  # text: nothing went wrong, nothing on stderr
    monkeypatch.setenv("STOCKPIPE_LOG_FORMAT", "json")
    code, _, err = cli("run", "--symbol", "NVDA")
    lines = [json.loads(line) for line in err.splitlines()]
    assert code == 0 and lines[0]["message"].startswith("plan: demo: 1 call(s) (bulk 1,")  # the fetch's plan first
    assert [line["symbol"] for line in lines[1:]] == ["NVDA", "NVDA"]
