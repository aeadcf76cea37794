"""The CLI as a whole: exit codes, messages, --json, idempotence, bad input."""

from __future__ import annotations

import ast
import fcntl
import json
import sqlite3
from pathlib import Path

import pytest

from conftest import table_counts
from helpers import db
import stockpipe
from stockpipe.cli import app, db_app, schedule_app
from stockpipe.errors import ExitCode
from stockpipe.providers import registry
from stockpipe.providers.base import ProviderBase
from stockpipe.storage import warehouse

COMMANDS = ["validate", "fetch", "transform", "load", "quality-check", "health-check", "run", "db", "db upgrade", "db current"]


@pytest.fixture(autouse=True)
def cli(make_cli):
    """`stockpipe ARGS` in-process with the demo provider (the default, yahoo, needs the
    internet); autouse, so every test here runs in a clean environment and directory."""
    return make_cli(STOCKPIPE_PROVIDER="demo")


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "stockpipe-data" / "stockpipe.db"


def rows(tmp_path: Path, sql: str) -> list[tuple]:
    return db(tmp_path, sql)


def write_csv(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


GOOD_CSV = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
            "2024-01-03,10,11,9,10.5,10.4,1000\n2024-01-02,9.5,10.2,9.1,10,9.9,1200\n")


# ------------------------------------------------------------------- end to end


def test_run_all_demo_end_to_end_then_idempotent(cli, tmp_path):
    code, out, err = cli("run", "--all", "--provider", "demo")
    assert code == ExitCode.OK, err
    assert "run" in out and "exit 0" in out
    per_symbol = dict(rows(tmp_path, "SELECT symbol, COUNT(*) FROM prices_daily GROUP BY symbol"))
    assert set(per_symbol) == {"IBM", "AAPL", "GOOGL", "MSFT"}
    assert all(400 < n < 600 for n in per_symbol.values())  # two years of weekdays
    assert rows(tmp_path, "SELECT COUNT(*) FROM indicators_daily") == rows(tmp_path, "SELECT COUNT(*) FROM prices_daily")
    assert rows(tmp_path, "SELECT COUNT(DISTINCT kind) FROM corporate_actions") == [(2,)]  # splits and dividends
    assert rows(tmp_path, "SELECT DISTINCT provider FROM prices_daily") == [("demo",)]
    assert rows(tmp_path, "SELECT COUNT(*) FROM rejects") == [(0,)]
    assert rows(tmp_path, "SELECT status, exit_code FROM pipeline_runs") == [("ok", 0)]
    assert rows(tmp_path, "SELECT COUNT(*) FROM symbol_state WHERE dataset='prices_daily' AND last_date IS NOT NULL") == [(4,)]
    lake_files = [f for f in (tmp_path / "stockpipe-data" / "lake" / "prices_daily").rglob("month=*/*.parquet")
                  if "_change_data" not in f.parts]
    months = {f.parent.name for f in lake_files}
    assert 20 <= len(months) <= 27 and len(lake_files) <= 3 * len(months)  # files by month, never one per symbol
    assert list((tmp_path / "stockpipe-data" / "raw" / "demo").rglob("AAPL.*.json.gz"))

    before = table_counts(f"sqlite:///{db_path(tmp_path)}")
    snapshot = rows(tmp_path, "SELECT * FROM prices_daily ORDER BY symbol, date")
    code, out, err = cli("run", "--all", "--provider", "demo", "--json")
    doc = json.loads(out)
    assert code == ExitCode.NOTHING_TO_DO == doc["exit_code"]
    assert doc["counts"]["rows_fetched"] == 0 and doc["counts"]["rows_written"] == 0
    assert doc["counts"]["api_calls"] == 0 and doc["counts"]["skipped"] == 4
    after = table_counts(f"sqlite:///{db_path(tmp_path)}")
    growing = {"pipeline_runs", "run_events", "quality_results"}  # the audit trail records every run
    assert {k: v for k, v in after.items() if k not in growing} == {k: v for k, v in before.items() if k not in growing}
    assert rows(tmp_path, "SELECT * FROM prices_daily ORDER BY symbol, date") == snapshot


def test_json_contract(cli):
    code, out, _ = cli("run", "--all", "--provider", "demo", "--json")
    doc = json.loads(out)  # stdout is exactly one JSON document
    assert code == 0
    assert doc["schema"] == "stockpipe.result/1"
    assert set(doc) >= {"command", "run_id", "exit_code", "exit_name", "counts", "stages", "symbols", "checks",
                        "started_at", "finished_at", "message"}
    assert doc["command"] == "run" and doc["exit_name"] == "ok" and doc["run_id"]
    assert [s["stage"] for s in doc["stages"]] == ["validate", "fetch", "transform", "quotes-daily", "load", "quality-check"]
    fetched = [s for s in doc["symbols"] if s["stage"] == "fetch"]
    assert sorted(s["symbol"] for s in fetched) == ["AAPL", "GOOGL", "IBM", "MSFT"]
    assert all(s["status"] == "ok" and s["rows"] > 400 for s in fetched)
    assert doc["counts"]["rows_fetched"] == sum(s["rows"] for s in fetched)
    assert doc["counts"]["prices_daily_written"] == doc["counts"]["rows_fetched"]


def test_fetch_one_symbol_then_stages_alone(cli, tmp_path):
    assert cli("fetch", "--symbol", "AAPL", "--provider", "demo")[0] == 0
    assert rows(tmp_path, "SELECT COUNT(*) FROM prices_daily") == [(0,)]  # fetch writes the lake only
    assert cli("transform")[0] == 0
    code, out, _ = cli("load", "--json")
    assert code == 0 and json.loads(out)["counts"]["prices_daily_written"] > 400
    assert rows(tmp_path, "SELECT DISTINCT symbol FROM prices_daily") == [("AAPL",)]
    code, out, _ = cli("load", "--json")
    assert code == 0 and json.loads(out)["counts"]["rows_written"] == 0  # a re-run writes nothing
    assert cli("quality-check")[0] == 0
    assert cli("health-check")[0] == 0


def test_fetch_start_end_window(cli, tmp_path):
    code, out, _ = cli("fetch", "-s", "IBM", "--start", "2025-01-06", "--end", "2025-01-10", "--json")
    # 4 sessions: the NYSE closed on 2025-01-09 (national day of mourning)
    assert code == 0 and json.loads(out)["counts"]["rows_fetched"] == 4
    assert cli("load")[0] == 0
    assert rows(tmp_path, "SELECT MIN(date), MAX(date) FROM prices_daily") == [("2025-01-06", "2025-01-10")]


def test_csv_import(cli, tmp_path):
    write_csv(tmp_path / "prices", "ACME.csv", GOOD_CSV)
    write_csv(tmp_path / "prices", "BETA.csv", GOOD_CSV.replace("\n", "\r\n"))
    code, out, err = cli("fetch", "--provider", "csv", "--path", "prices", "--json")
    assert code == 0, err
    assert json.loads(out)["counts"]["rows_fetched"] == 4
    assert cli("transform")[0] == 0 and cli("load")[0] == 0
    assert rows(tmp_path, "SELECT symbol, date, close, adj_close, provider FROM prices_daily ORDER BY symbol, date") == [
        ("ACME", "2024-01-02", 10.0, 9.9, "csv"), ("ACME", "2024-01-03", 10.5, 10.4, "csv"),
        ("BETA", "2024-01-02", 10.0, 9.9, "csv"), ("BETA", "2024-01-03", 10.5, 10.4, "csv")]


# ------------------------------------------------------------- exit codes


def test_every_command_has_help(cli):
    for command in COMMANDS:
        code, out, _ = cli(*command.split(), "--help")
        assert code == 0 and "Usage" in out, command
    code, out, _ = cli("--help")
    assert code == 0 and all(c.split()[0] in out for c in COMMANDS)


@pytest.mark.parametrize("args,needle", [
    (("fetch", "--bogus"), "No such option: --bogus"),
    (("frobnicate",), "No such command"),
    (("fetch", "--start", "yesterday", "--all"), "--start"),
    (("fetch", "--provider", "demo"), "--all"),
    (("run", "--all", "--symbol", "IBM"), "exclude each other"),
])
def test_usage_errors_exit_2_with_one_line(cli, tmp_path, args, needle):
    code, out, err = cli(*args)
    assert code == ExitCode.USAGE
    assert needle in err and len(err.strip().splitlines()) == 1 and out == ""
    assert not db_path(tmp_path).exists()  # nothing written


@pytest.mark.parametrize("symbol", ["AAPL'; DROP TABLE x;--", "../../etc", ""])
def test_malformed_symbol_exits_65_and_keeps_the_warehouse(cli, tmp_path, symbol):
    assert cli("run", "--all")[0] == 0
    before = table_counts(f"sqlite:///{db_path(tmp_path)}")
    code, out, err = cli("fetch", "--symbol", symbol)
    assert code == ExitCode.BAD_INPUT
    assert "malformed symbol" in err and "--symbol" in err and len(err.strip().splitlines()) == 1
    assert table_counts(f"sqlite:///{db_path(tmp_path)}") == before
    assert not (tmp_path.parent / "etc").exists()


def test_unreadable_config_exits_4(cli, tmp_path):
    (tmp_path / "stockpipe.toml").write_text("provider = = 'demo'\n")
    code, _, err = cli("run", "--all")
    assert code == ExitCode.CONFIG and "stockpipe.toml" in err and "not valid TOML" in err


def test_unknown_provider_exits_4(cli):
    code, _, err = cli("fetch", "--all", "--provider", "nosuch")
    assert code == ExitCode.CONFIG and "unknown provider 'nosuch'" in err


def test_unreachable_database_exits_5_without_the_password(cli, tmp_path):
    url = "postgresql+psycopg2://bob:hunter2secret@127.0.0.1:1/nowhere"
    code, out, err = cli("run", "--all", "--database-url", url, "--json")
    assert code == ExitCode.UNAVAILABLE
    assert "unreachable" in err and "hunter2secret" not in err + out
    assert json.loads(out)["exit_code"] == 5


def test_csv_with_missing_column_exits_65(cli, tmp_path):
    write_csv(tmp_path / "prices", "ACME.csv", "date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n")
    code, _, err = cli("fetch", "--provider", "csv", "--path", "prices")
    assert code == ExitCode.BAD_INPUT
    assert "ACME.csv" in err and "volume" in err


def test_csv_with_non_numeric_price_exits_65_and_keeps_data(cli, tmp_path):
    write_csv(tmp_path / "prices", "ACME.csv", GOOD_CSV)
    assert cli("run", "--provider", "csv", "--path", "prices")[0] == 0
    before = table_counts(f"sqlite:///{db_path(tmp_path)}")
    write_csv(tmp_path / "prices", "ACME.csv", GOOD_CSV + "2024-01-04,10,11,9,abc,10,1000\n")
    code, _, err = cli("run", "--provider", "csv", "--path", "prices")
    assert code == ExitCode.BAD_INPUT
    assert "ACME.csv line 4" in err and "'abc'" in err
    after = table_counts(f"sqlite:///{db_path(tmp_path)}")
    assert {k: after[k] for k in ("prices_daily", "indicators_daily")} == {k: before[k] for k in ("prices_daily", "indicators_daily")}


def test_one_bad_symbol_is_partial_3(cli, tmp_path):
    write_csv(tmp_path / "prices", "GOOD.csv", GOOD_CSV)
    write_csv(tmp_path / "prices", "BAD.csv", GOOD_CSV.replace("10.5", "x"))
    code, out, err = cli("run", "--provider", "csv", "--path", "prices", "--json")
    doc = json.loads(out)
    assert code == ExitCode.PARTIAL == doc["exit_code"]
    status = {s["symbol"]: s["status"] for s in doc["symbols"] if s["stage"] == "fetch"}
    assert status == {"GOOD": "ok", "BAD": "failed"}
    assert rows(tmp_path, "SELECT DISTINCT symbol FROM prices_daily") == [("GOOD",)]
    assert rows(tmp_path, "SELECT status, message LIKE '%BAD.csv%' FROM run_events WHERE symbol='BAD'") == [("failed", 1)]
    assert rows(tmp_path, "SELECT consecutive_failures FROM symbol_state WHERE symbol='BAD' AND dataset='prices_daily'") == [(1,)]


def test_quality_failure_exits_6(cli, tmp_path):
    assert cli("run", "--all")[0] == 0
    with sqlite3.connect(db_path(tmp_path)) as conn:
        conn.execute("UPDATE prices_daily SET high = low - 1 WHERE symbol = 'MSFT' AND date = "
                     "(SELECT MAX(date) FROM prices_daily WHERE symbol = 'MSFT')")
    code, out, err = cli("quality-check", "--json")
    doc = json.loads(out)
    assert code == ExitCode.QUALITY == doc["exit_code"]
    assert {(c["name"], c["symbol"]) for c in doc["checks"]} == {("high_encloses", "MSFT")}
    assert rows(tmp_path, "SELECT observed FROM quality_results WHERE check_name='high_encloses' AND symbol='MSFT' "
                          "AND passed = 0") == [(1.0,)]


def test_locked_data_dir_exits_75_before_any_write(cli, tmp_path):
    data = tmp_path / "stockpipe-data"
    data.mkdir()
    with open(data / ".stockpipe.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = cli("run", "--all")
    assert code == ExitCode.LOCKED and "locked" in err
    assert not list(data.glob("lake/**/*.parquet"))
    assert rows(tmp_path, "SELECT COUNT(*) FROM pipeline_runs") == [(0,)]


class BrokenProvider(ProviderBase):
    name, needs_key = "broken", False

    @classmethod
    def from_settings(cls, settings, clock):
        return cls()

    def symbols(self):
        return None

    def fetch_daily(self, symbol, start, end):
        raise RuntimeError("boom with details")

    def close(self):
        pass


def test_unexpected_error_is_a_bug_exit_1(cli, tmp_path):
    registry.register("broken", BrokenProvider.from_settings)
    code, out, err = cli("run", "--all", "--provider", "broken")
    assert code == ExitCode.BUG
    assert "unexpected RuntimeError" in err and "--debug" in err and "Traceback" not in err
    assert rows(tmp_path, "SELECT status, exit_code FROM pipeline_runs") == [("failed", 1)]
    code, _, err = cli("fetch", "--all", "--provider", "broken", "--debug")
    assert code == ExitCode.BUG and "Traceback" in err


def test_health_check_codes(cli, tmp_path):
    code, out, _ = cli("health-check")
    assert code == 2 and "migrations" in out  # a database never migrated is critical
    assert cli("db", "upgrade")[0] == 0
    code, out, _ = cli("health-check", "--json")
    assert code == 1 and json.loads(out)["exit_name"] == "warning"  # no successful run yet
    assert cli("run", "--all")[0] == 0
    assert cli("health-check")[0] == 0
    (tmp_path / "stockpipe.toml").write_text("[[[")
    assert cli("health-check")[0] == 3  # cannot even check: unknown


def test_db_upgrade_and_current(cli, tmp_path):
    code, out, _ = cli("db", "current", "--json")
    assert code == 0 and json.loads(out)["current"] is None
    code, out, _ = cli("db", "upgrade", "--json")
    assert code == 0 and json.loads(out)["after"] == warehouse.head_revision()
    code, out, _ = cli("db", "current", "--json")
    doc = json.loads(out)
    assert doc["current"] == doc["head"] == warehouse.head_revision()


# ------------------------------------------------------------- one error handler


def test_tracebacks_never_show_locals():
    """Settings hold API keys: Typer's pretty tracebacks, which can print every local, stay off."""
    for typer_app in (app, db_app, schedule_app):
        assert typer_app.pretty_exceptions_enable is False and typer_app.pretty_exceptions_show_locals is False


def test_debug_traceback_shows_no_api_key(cli, monkeypatch):
    monkeypatch.setenv("STOCKPIPE_EODHD_API_KEY", "sekrit-key-123")
    registry.register("broken", BrokenProvider.from_settings)
    code, out, err = cli("fetch", "--all", "--provider", "broken", "--debug", "--json")
    assert code == ExitCode.BUG and "Traceback" in err and json.loads(out)["exit_name"] == "bug"
    assert "sekrit-key-123" not in out + err


def test_health_check_that_cannot_check_exits_3_whatever_the_error(cli):
    code, out, err = cli("health-check", "--metrics-file", "health.txt", "--json")  # a usage error elsewhere
    assert code == 3 and json.loads(out)["exit_name"] == "unknown"
    assert err == "stockpipe health-check: error: --metrics-file health.txt: name it *.prom " \
                  "(node_exporter's textfile collector reads only those)\n"


def test_schedule_output_that_cannot_be_written_exits_5(cli, tmp_path):
    (tmp_path / "file").write_text("")
    code, out, err = cli("schedule", "cron", "--output", str(tmp_path / "file" / "units"))
    assert code == ExitCode.UNAVAILABLE and out == ""
    assert err == f"stockpipe schedule cron: error: cannot write into {tmp_path / 'file' / 'units'}: Not a directory\n"


PRINTING = ("print", "sys.stdout.write", "sys.stderr.write", "traceback.print_exc", "traceback.print_exception",
            "typer.echo", "Console")


def test_only_render_prints():
    """stdout carries the result and nothing else: every print lives in render.py (logs go through logging)."""
    package = Path(stockpipe.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name != "render.py":
            calls = (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call))
            found += [f"{path.relative_to(package)}:{c.lineno} {ast.unparse(c.func)}" for c in calls
                      if ast.unparse(c.func) in PRINTING]
    assert found == []
