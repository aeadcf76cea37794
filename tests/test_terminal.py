"""The terminal layout at 80 columns (rich's Console(width=80, record=True)): one table of
stages with named numeric columns, no number wrapped, each failure shown once."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from rich.console import Console

from stockpipe import layouts, render
from stockpipe.models import Check, CommandResult, StageResult, SymbolOutcome

T = dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.timezone.utc)
BAD = SymbolOutcome("BAD", "fetch", "failed", message="/data/prices/BAD.csv line 2: close is not a number ('x'): "
                    "fix or remove the row", provider="csv", exit_code=65)
LATE = SymbolOutcome("LATE", "fetch", "skipped", message="deferred: eodhd stopped (daily quota spent)",
                     provider="eodhd", exit_code=3)


def run_result(scale: int = 1) -> CommandResult:
    """A `run` as the pipeline returns it, with every count a stage reports (times `scale`)."""
    n = lambda v: v * scale  # noqa: E731 - a local shorthand
    stages = (
        StageResult("validate", 0, {"checks": 7, "checks_failed": 0}, checks=(Check("provider", True, "csv"),)),
        StageResult("fetch", 3, {"planned": n(21817), "ok": n(21000), "failed": n(17), "deferred": n(800),
                                 "skipped": n(12), "rows_fetched": n(10_954_000), "rows_rejected": n(12),
                                 "api_calls": n(21817)}, outcomes=(BAD, LATE), message=BAD.message),
        StageResult("transform", 0, {"symbols": n(21000), "rows_written": n(10_954_000),
                                     "indicators_written": n(10_954_000), "adj_close_max_rel_diff_ppm": 31}),
        StageResult("quotes-daily", 0, {"symbols": 0, "rows_written": 0}),
        StageResult("load", 0, {"prices_daily_written": n(10_954_000), "rows_loaded": n(22_000_000),
                                "rows_written": n(21_908_000)}),
        StageResult("quality-check", 0, {"checks": n(261804), "errors": 0, "warnings": n(3), "symbols_checked": n(21817)},
                    checks=(Check("stale", False, "last bar 2026-11-20, 1 session(s) behind 2026-11-23", "warn",
                                  "XYZ", 1.0, 1.0),)),
    )
    return CommandResult("run", "20261123T230000Z-a1b2c3", 3, stages, T, T, BAD.message)


def recorded(result: CommandResult, width: int = 80) -> str:
    console = Console(width=width, record=True, force_terminal=True)
    for part in render.rich_parts(result, width):
        console.print(part)
    return console.export_text()


def numbers_of(stage: StageResult) -> list[str]:
    return [layouts.number(stage.counts[k]) for _, keys in layouts.STAGE_COLUMNS for k in keys[:1] if k in stage.counts]


@pytest.mark.parametrize("scale", [1, 10, 10_000])
def test_no_number_is_wrapped_at_80_columns(scale):
    result = run_result(scale)
    text = recorded(result)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    for stage in result.stages:
        row = " ".join(line for line in lines if re.match(rf"\s*{re.escape(stage.stage)}\b", line))
        for value in (layouts.number(stage.counts[k]) for _, keys in layouts.STAGE_COLUMNS for k in keys
                      if k in stage.counts and stage.counts[k]):
            assert value in text and "…" not in text, (stage.stage, value)
        assert row, stage.stage


def test_the_stage_table_has_named_numeric_columns():
    text = recorded(run_result())
    header = next(line for line in text.splitlines() if line.strip().startswith("stage"))
    assert header.split() == ["stage", "result", "symbols", "failed", "deferred", "current", "rows", "rejected",
                              "calls"]
    fetch = next(line for line in text.splitlines() if line.strip().startswith("fetch"))
    assert fetch.split() == ["fetch", "partial", "21,817", "17", "800", "12", "10,954,000", "12", "21,817"]


def test_too_many_digits_stack_the_counts_instead_of_cutting_them():
    result = run_result(10_000)
    text = recorded(result)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "rows 109,540,000,000" in text and "…" not in text


def test_each_failure_is_shown_once_and_the_verdict_names_the_run_once():
    result = run_result()
    text = recorded(result)
    assert text.count("close is not a number") == 1 and "deferred: eodhd stopped" in text
    assert " provider " not in text  # validate's passing checks are validate's own business
    assert "stale" in text  # a warning of quality-check is shown
    assert render._verdict_line(result) == "run: partial (exit 3), run id 20261123T230000Z-a1b2c3"


def test_a_failing_run_in_a_terminal_prints_its_failure_once(make_cli, monkeypatch, tmp_path):
    monkeypatch.setattr(render, "stdout_is_terminal", lambda: True)
    prices = tmp_path / "prices"
    prices.mkdir()
    good = "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,9.5,10.2,9.1,10,9.9,1200\n"
    (prices / "GOOD.csv").write_text(good)
    (prices / "BAD.csv").write_text(good.replace(",10,", ",x,"))
    cli = make_cli()
    code, out, err = cli("run", "--provider", "csv", "--path", "prices")
    assert code == 3
    assert (out + err).count("close is not a number") == 1, out + err
    assert "run: partial (exit 3), run id " in out and "run run" not in out
