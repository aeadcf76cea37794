"""`show SYMBOL`: the newest bars with indicators, the sparkline, actions, state and open
quality failures; --json; a clear error without data."""

from __future__ import annotations

import json
import sqlite3

import pytest

from stockpipe import layouts
from stockpipe.errors import BadInputError, ExitCode, NoDataError
from stockpipe.pipeline.show import MAIN_INDICATORS, show


def test_show_holds_the_newest_bars_state_and_actions(demo_warehouse):
    result = show(demo_warehouse, "aapl", bars=5)
    assert result.symbol == "AAPL" and result.provider == "demo"
    dates = [b["date"] for b in result.bars]
    assert len(dates) == 5 and dates == sorted(dates) and str(dates[-1]) == "2026-11-23"
    assert all(b[name] is not None for b in result.bars for name in MAIN_INDICATORS)
    assert len(result.sparkline) == 40 and result.sparkline[-1] == result.bars[-1]["close"]
    assert {a["kind"] for a in result.actions} <= {"split", "dividend"} and result.actions
    daily = next(s for s in result.states if s["dataset"] == "prices_daily")
    assert daily["consecutive_failures"] == 0 and str(daily["last_date"]) == "2026-11-23"
    assert result.failures == ()


def test_show_refuses_what_it_cannot_show(demo_warehouse):
    with pytest.raises(NoDataError, match="nothing for ZZZ"):
        show(demo_warehouse, "ZZZ")
    with pytest.raises(BadInputError, match="malformed symbol"):
        show(demo_warehouse, "../x")


def test_the_sparkline_spans_low_to_high():
    assert layouts.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert layouts.sparkline([5, 5, 5]) == "▁▁▁" and layouts.sparkline([]) == ""


def test_show_json_and_open_quality_failures(make_cli, tmp_path):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="60")
    assert cli("run", "--symbol", "IBM")[0] == 0
    with sqlite3.connect(tmp_path / "stockpipe-data" / "stockpipe.db") as conn:
        conn.execute("UPDATE prices_daily SET high = low - 1 WHERE symbol = 'IBM' AND date = "
                     "(SELECT MAX(date) FROM prices_daily WHERE symbol = 'IBM')")
    assert cli("quality-check")[0] == ExitCode.QUALITY
    code, out, err = cli("show", "IBM", "--json", "--bars", "3")
    doc = json.loads(out)
    assert code == 0 and doc["command"] == "show" and doc["symbol"] == "IBM" and len(doc["bars"]) == 3, err
    assert [f["check_name"] for f in doc["quality_failures"]] == ["high_encloses"]
    assert {s["dataset"] for s in doc["state"]} >= {"prices_daily"} and doc["closes"]
    code, out, _ = cli("show", "IBM")  # a pipe: plain lines, one per bar, the failure named
    assert code == 0 and "quality high_encloses error" in out and out.startswith("IBM provider=demo")


def test_show_at_80_columns_wraps_no_number(demo_warehouse):
    from rich.console import Console

    result = show(demo_warehouse, "MSFT", bars=10)
    console = Console(width=80, record=True, force_terminal=True)
    for part in layouts.show_parts(result):
        console.print(part)
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    for bar in result.bars:
        row = next(line for line in text.splitlines() if line.strip().startswith(str(bar["date"])))
        for value in (bar["close"], bar["volume"], bar["sma_20"], bar["rsi_14"]):
            assert layouts.number(value) in row
