"""What a new user hit, each fixed: --json is one document even for usage errors, errors
keep the asked log format, help texts read as written, --start after --end is refused,
quality-check --symbol narrows, validate --provider csv checks the CSV's symbols,
health-check judges the prices, --version and shell completion."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from helpers import db
from stockpipe.cli import command
from stockpipe.errors import ExitCode, HealthCode


@pytest.fixture
def cli(make_cli):
    return make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="60")


# ------------------------------------------------------------------------ --json


@pytest.mark.parametrize("args,needle", [
    (("fetch", "--all", "--start", "yesterday"), "--start"),
    (("fetch", "--all", "--bogus"), "No such option: --bogus"),
    (("fetch", "--all", "--interval", "7m"), "--interval"),
    (("frobnicate",), "No such command"),
    (("fetch", "--all", "--start", "2026-11-20", "--end", "2026-11-02"), "--start 2026-11-20 is after --end 2026-11-02"),
    (("run", "--all", "--symbol", "IBM"), "exclude each other"),
])
def test_json_is_one_document_even_for_a_usage_error(cli, tmp_path, args, needle):
    code, out, err = cli(*args, "--json")
    doc = json.loads(out)  # exactly one document
    assert code == ExitCode.USAGE == doc["exit_code"] and doc["exit_name"] == "usage"
    assert needle in doc["error"] and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "stockpipe-data").exists()


@pytest.mark.parametrize("command_line", ["fetch", "run"])
def test_start_after_end_is_a_usage_error_not_nothing_to_do(cli, tmp_path, command_line):
    code, out, err = cli(command_line, "--all", "--start", "2026-11-20", "--end", "2026-11-02")
    assert code == ExitCode.USAGE and out == "" and "swap them" in err
    assert not (tmp_path / "stockpipe-data").exists()


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_malformed_symbol_is_reported_in_the_log_format_asked(make_cli, how):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", **({"STOCKPIPE_LOG_FORMAT": "json"} if how == "environment" else {}))
    flag = ("--log-format", "json") if how == "flag" else ()
    code, out, err = cli("fetch", "--symbol", "A B", *flag)
    line = json.loads(err)  # one JSON line, like every other line on stderr
    assert code == ExitCode.BAD_INPUT and out == ""
    assert line["exit_code"] == 65 and line["level"] == "ERROR" and "malformed symbol 'A B'" in line["message"]


# ---------------------------------------------------------------------------- help


def _help_texts(node, path=()):
    texts = [node.help or ""] + [getattr(p, "help", None) or "" for p in node.params]
    yield path, texts
    for name, sub in getattr(node, "commands", {}).items():
        yield from _help_texts(sub, (*path, name))


def test_every_help_text_shows_its_brackets_as_written(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: every text on one line
    seen = set()
    for path, texts in _help_texts(command()):
        tokens = {t.replace("\\", "") for text in texts for t in re.findall(r"\\?\[[^\]\s]*\]", text)}
        if not tokens:
            continue
        code, out, _ = cli(*path, "--help")
        assert code == 0
        for token in tokens:
            assert token in out, (path, token)
        seen |= tokens
    assert "[universe.lists]" in seen and "[plot]" in seen
    code, out, _ = cli("fetch", "--help")
    assert "A named list from the config's [universe.lists]; repeatable." in " ".join(out.split()).replace("│ ", "")


def test_the_list_option_reads_as_written(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli("run", "--help")
    assert "[universe.lists]" in out and "config's ;" not in out
    code, out, _ = cli("plot", "--help")
    assert "pip install 'stockpipe[plot]'" in out


def test_version_and_completion(cli):
    from importlib.metadata import version

    code, out, _ = cli("--version")
    assert code == 0 and out == f"stockpipe {version('stockpipe')}\n"
    code, out, _ = cli("--show-completion", "bash")
    assert code == 0 and "_stockpipe_completion" in out and "complete " in out
    code, out, _ = cli("--help")
    assert "--install-completion" in out and "--version" in out


# -------------------------------------------------------------- quality-check, validate


def test_quality_check_symbol_narrows_to_that_symbol(cli, tmp_path):
    assert cli("run", "--all")[0] == 0
    code, out, _ = cli("quality-check", "--symbol", "AAPL", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["counts"]["symbols_checked"] == 1
    judged = db(tmp_path, "SELECT DISTINCT symbol FROM quality_results WHERE run_id = ?", doc["run_id"])
    assert {s for (s,) in judged} <= {"AAPL", "*"}
    code, out, _ = cli("quality-check", "--json")
    assert json.loads(out)["counts"]["symbols_checked"] == 4  # without --symbol: every symbol held


def test_validate_on_a_fresh_machine_writes_nothing(cli, tmp_path):
    code, out, err = cli("validate", "--provider", "demo")
    assert code == 0, out + err
    assert "will be created by the first command that writes" in out
    assert list(tmp_path.iterdir()) == []  # no data directory, no empty stockpipe.db


def test_validate_behind_without_auto_migrate_is_a_config_error(make_cli):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_AUTO_MIGRATE="false")
    code, out, _ = cli("validate", "--json")
    failed = [c for c in json.loads(out)["checks"] if not c["ok"]]
    assert code == ExitCode.CONFIG and [c["name"] for c in failed] == ["migrations"]
    assert "stockpipe db upgrade" in failed[0]["detail"]


def test_validate_with_the_csv_provider_checks_the_csv_symbols(cli, tmp_path):
    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "ACME.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n")
    (prices / "BETA.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n")
    code, out, _ = cli("validate", "--provider", "csv", "--path", "prices", "--json")
    symbols = next(c for c in json.loads(out)["checks"] if c["name"] == "symbols")
    assert code == 0 and symbols["detail"].startswith("2 well formed (in ") and "default" not in symbols["detail"]
    (prices / "many.csv").write_text("symbol,date,open,high,low,close,volume\nA B,2024-01-02,1,2,0.5,1.5,10\n")
    code, out, _ = cli("validate", "--provider", "csv", "--path", "prices", "--json")
    failed = [c for c in json.loads(out)["checks"] if not c["ok"]]
    assert code == ExitCode.BAD_INPUT and "many.csv" in failed[0]["detail"] and "'A B'" in failed[0]["detail"]


# -------------------------------------------------------------------- health-check


def test_health_check_is_critical_for_an_empty_prices_daily_after_a_fetch(cli):
    assert cli("fetch", "--symbol", "AAPL")[0] == 0  # fetched into the lake, never loaded
    code, out, _ = cli("health-check", "--json")
    prices = next(c for c in json.loads(out)["checks"] if c["name"] == "prices")
    assert code == HealthCode.CRITICAL and not prices["ok"] and prices["severity"] == "error"
    assert "prices_daily is empty" in prices["detail"] and "stockpipe transform && stockpipe load" in prices["detail"]


def test_health_check_is_not_ok_for_stale_prices(cli, tmp_path):
    assert cli("run", "--all")[0] == 0
    assert cli("health-check")[0] == HealthCode.OK
    store = tmp_path / "stockpipe-data" / "stockpipe.db"
    with sqlite3.connect(store) as conn:  # one symbol's vendor sent nothing new for two weeks
        conn.execute("UPDATE symbol_state SET last_date = date(last_date, '-14 days') "
                     "WHERE dataset = 'prices_daily' AND symbol = 'IBM'")
    code, out, _ = cli("health-check", "--json")
    prices = next(c for c in json.loads(out)["checks"] if c["name"] == "prices")
    assert code == HealthCode.WARNING and "1 of 4 symbol(s) lack due sessions" in prices["detail"]
    assert "IBM (" in prices["detail"] and prices["observed"] >= 8  # two weeks: 8 to 10 sessions
    with sqlite3.connect(store) as conn:  # every symbol eight sessions and more behind: critical
        conn.execute("UPDATE symbol_state SET last_date = date(last_date, '-14 days') WHERE dataset = 'prices_daily'")
    assert cli("health-check")[0] == HealthCode.CRITICAL
