"""Monitoring: health-check's checks and thresholds, the session-closes file, the metrics file."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import NOW, clock
from stockpipe import closes, metrics, pipeline
from stockpipe.pipeline import health as checks
from stockpipe.errors import ConfigError, ExitCode, HealthCode, SymbolNotFoundError
from stockpipe.providers import registry
from stockpipe.providers.demo import DemoProvider
from stockpipe.storage.ledger import Ledger

from helpers import environment_without_settings

NY, UTC = ZoneInfo("America/New_York"), dt.timezone.utc


def new_york(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NY).astimezone(UTC)


def check(result, name: str):
    return next(c for c in result.stages[0].checks if c.name == name)


class PartlyUnknown(DemoProvider):
    """The demo provider with a failure knob: it knows no symbol that starts with BAD."""

    name = "partly"

    def fetch_daily(self, symbol, start, end):
        if symbol.startswith("BAD"):
            raise SymbolNotFoundError(f"partly does not know {symbol}")
        return super().fetch_daily(symbol, start, end)


registry.register("partly", PartlyUnknown.from_settings)




def samples(path) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed by Prometheus' own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text()) for s in family.samples}


# ---------------------------------------------------------------------- thresholds


def test_health_thresholds_from_the_file_and_the_environment(make_settings, tmp_path):
    (tmp_path / "stockpipe.toml").write_text("[health]\nlate_after_hours = 20\nquota_left_warn = 0.25\n")
    limits = checks.health_thresholds(make_settings(environ={"STOCKPIPE_HEALTH_QUOTA_LEFT_WARN": "0.2"}).health)
    assert (limits["late_after_hours"], limits["quota_left_warn"]) == (20, 0.2)  # the environment beats the file
    assert limits["disk_free_warn_gb"] == checks.HEALTH_DEFAULTS["disk_free_warn_gb"]


@pytest.mark.parametrize("table, fragment", [
    ({"late_after_hour": 12}, "unknown setting [health] late_after_hour (STOCKPIPE_HEALTH_LATE_AFTER_HOUR)"),
    ({"disk_free_warn_gb": -1}, "not a number >= 0"),
    ({"disk_free_warn_gb": "lots"}, "not a number >= 0"),
    ({"failing_share_warn": float("nan")}, "not a number >= 0"),
    ({"quota_left_warn": True}, "not a number >= 0"),
    ({"quota_left_warn": 10}, "is a share"),
    ({"missed_sessions_critical": 1.5}, "whole number"),
    ({"disk_free_warn_gb": 1, "disk_free_critical_gb": 2}, "the warning must come before"),
    ({"failing_share_warn": 0.6}, "the warning must come before"),
])
def test_bad_health_thresholds_are_refused(table, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        checks.health_thresholds(table)


def test_validate_names_a_bad_threshold_and_health_check_cannot_run(cli, tmp_path, monkeypatch):
    assert cli("db", "upgrade")[0] == 0
    monkeypatch.setenv("STOCKPIPE_HEALTH_DISK_FREE_WARN_GB", "lots")
    code, out, _ = cli("validate", "--json")
    failed = [c for c in json.loads(out)["checks"] if not c["ok"]]
    assert code == ExitCode.CONFIG and [c["name"] for c in failed] == ["health thresholds"]
    assert "disk_free_warn_gb" in failed[0]["detail"] and "'lots'" in failed[0]["detail"]
    code, _, err = cli("health-check")
    assert code == HealthCode.UNKNOWN and "STOCKPIPE_HEALTH_DISK_FREE_WARN_GB" in err


# ---------------------------------------------------------- runs on time (calendar)


@pytest.mark.parametrize("last, now, missed", [
    ("2026-11-20T22:45", "2026-11-23T08:00", 0),  # Friday's run, judged on Monday morning: no weekend session
    ("2026-11-20T22:45", "2026-11-24T03:59", 0),  # Monday's close (16:00) is due 12 h later, at 04:00
    ("2026-11-20T22:45", "2026-11-24T04:01", 1),  # ... and then it is missed
    ("2026-11-25T22:45", "2026-11-27T09:00", 0),  # Thanksgiving (Thursday 26th) is no session
    ("2026-11-25T22:45", "2026-11-28T01:01", 1),  # Friday's early close (13:00) was due at 01:00
])
def test_last_success_is_judged_by_the_exchange_calendar(last, now, missed):
    now = new_york(now)
    found = checks._check_on_time(new_york(last), closes.compute({"XNYS"}, now), now, checks.HEALTH_DEFAULTS, {})
    assert (found.ok, found.observed) == (missed == 0, missed)
    assert pipeline.health_level(found) == (HealthCode.WARNING if missed else HealthCode.OK)
    if missed:
        assert "XNYS session(s) missed" in found.detail


def test_many_missed_sessions_are_critical_and_no_run_or_no_calendar_is_not_ok():
    now = new_york("2026-11-24T09:00")
    found = checks._check_on_time(new_york("2026-11-16T22:45"), closes.compute({"XNYS"}, now), now,
                                  checks.HEALTH_DEFAULTS, {})
    assert (found.observed, pipeline.health_level(found)) == (5, HealthCode.CRITICAL)  # Tue..Fri and Monday
    never = checks._check_on_time(None, closes.compute({"XNYS"}, now), now, checks.HEALTH_DEFAULTS, {})
    assert pipeline.health_level(never) == HealthCode.WARNING
    blind = checks._check_on_time(now, {}, now, checks.HEALTH_DEFAULTS, {})
    assert pipeline.health_level(blind) == HealthCode.UNKNOWN


def test_health_after_a_friday_run_through_the_following_week(make_settings, database_url):
    settings = make_settings(database_url=database_url, symbols=("IBM",), history_days=30)
    friday = new_york("2026-11-20T22:45")
    assert pipeline.run(settings, clock=lambda: friday).exit_code == ExitCode.OK
    assert (settings.data_dir / closes.FILE_NAME).is_file()  # health-check reads it instead of the calendars

    def verdict(when: str) -> int:
        now = new_york(when)
        return pipeline.health_check(settings, clock=lambda: now).exit_code

    assert [verdict(w) for w in ("2026-11-23T08:00", "2026-11-24T09:00", "2026-11-30T09:00")] == [
        HealthCode.OK, HealthCode.WARNING, HealthCode.CRITICAL]
    (settings.data_dir / closes.FILE_NAME).unlink()  # without the file: the calendars, same verdict
    assert verdict("2026-11-24T09:00") == HealthCode.WARNING


def test_session_closes_file_round_trip(tmp_path):
    now = new_york("2026-11-23T18:00")
    closes.save(tmp_path, {"XNYS", "XLON"}, now)
    saved = closes.load(tmp_path)
    assert saved == closes.compute({"XNYS", "XLON"}, now)
    sessions = dict(saved["XNYS"])
    assert dt.date(2026, 11, 26) not in sessions  # Thanksgiving
    assert sessions[dt.date(2026, 11, 27)] == new_york("2026-11-27T13:00")  # early close
    assert dt.date(2026, 11, 26) in dict(saved["XLON"])  # London trades that day
    (tmp_path / closes.FILE_NAME).write_text("{not json")
    assert closes.load(tmp_path) is None


# ---------------------------------------------- failing symbols, last run, quota, disk


def test_failing_symbols_and_the_last_run(make_settings, database_url):
    symbols = ("IBM", "MSFT", "AAPL", "BAD1")
    settings = make_settings(database_url=database_url, provider="partly", symbols=symbols, history_days=30)
    assert pipeline.fetch(settings, clock=clock).exit_code == ExitCode.PARTIAL
    assert not check(pipeline.health_check(settings, clock=clock), "lake loaded").ok  # fetched, not yet loaded
    assert pipeline.load(settings, clock=clock).exit_code == ExitCode.OK
    result = pipeline.health_check(settings, clock=clock)
    failing, last_run = check(result, "failing symbols"), check(result, "last run")
    assert (failing.ok, failing.severity, failing.observed) == (False, "warn", 0.25)
    assert "1 of 4 symbol(s) failed their last fetch (25.0%): BAD1 (1x)" in failing.detail
    assert (last_run.ok, last_run.observed) == (False, 0.25)
    assert "1 of 4 symbol(s) failed, 0 deferred" in last_run.detail
    assert result.exit_code == HealthCode.WARNING
    assert result.extra["observed"]["last_run"]["failed"] == 1
    strict = make_settings(database_url=database_url, provider="partly", symbols=symbols,
                           environ={"STOCKPIPE_HEALTH_FAILING_SHARE_CRITICAL": "0.2"})
    assert pipeline.health_check(strict, clock=clock).exit_code == HealthCode.CRITICAL


def test_quota_left_per_provider(make_settings, database_url):
    settings = make_settings(database_url=database_url)
    engine = pipeline.open_warehouse(settings)
    Ledger(engine, "eodhd", 100, clock=clock).record(95)
    Ledger(engine, "yahoo", None, clock=clock).record(7)
    engine.dispose()
    result = pipeline.health_check(settings, clock=clock)
    eodhd, yahoo = check(result, "quota eodhd"), check(result, "quota yahoo")
    assert (eodhd.ok, eodhd.observed) == (False, 5) and "5 of 100 calls left (5%)" in eodhd.detail
    assert yahoo.ok and "7 call(s) made, no daily limit known" in yahoo.detail
    assert result.extra["observed"]["quota"][0] == {"provider": "eodhd", "calls": 95, "limit": 100, "remaining": 5,
                                                    "resets_at": "2026-11-24T00:00:00+00:00"}
    later = NOW + dt.timedelta(hours=2)  # a new quota day
    assert check(pipeline.health_check(settings, clock=lambda: later), "quota").ok


@pytest.mark.parametrize("environ, level", [
    ({}, HealthCode.OK),
    ({"STOCKPIPE_HEALTH_DISK_FREE_WARN_GB": "1e9"}, HealthCode.WARNING),  # more than any disk holds
    ({"STOCKPIPE_HEALTH_DISK_FREE_WARN_GB": "1e9", "STOCKPIPE_HEALTH_DISK_FREE_CRITICAL_GB": "1e9"},
     HealthCode.CRITICAL),
])
def test_disk_free_thresholds(make_settings, environ, level):
    found = checks.health(make_settings(environ=environ), NOW)
    disk = next(c for c in found.checks if c.name == "disk free")
    assert pipeline.health_level(disk) == level and found.observed["disk_free_bytes"] > 0


def test_health_check_after_a_run_imports_no_pandas(tmp_path):
    env = environment_without_settings(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="30")
    subprocess.run([sys.executable, "-m", "stockpipe", "run", "--all"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=300)
    probe = ("import sys\nfrom stockpipe.cli import main\ncode = main(['health-check'])\n"
             "heavy = [m for m in ('pandas', 'pyarrow', 'numpy', 'exchange_calendars') if m in sys.modules]\n"
             "print('HEAVY', heavy, 'CODE', code, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert "HEAVY [] CODE 0" in done.stderr, done.stderr + done.stdout


def test_a_failing_symbol_is_one_log_line_in_either_format(cli):
    code, _, err = cli("fetch", "--symbol", "IBM", "--symbol", "BAD1", "--provider", "partly")
    assert code == ExitCode.PARTIAL
    logged = [line for line in err.splitlines() if not line.startswith("stockpipe fetch: error:")]
    assert [line.split(" ", 3)[2:] for line in logged if "BAD1" in line] == [
        ["WARNING", "fetch BAD1 failed: partly does not know BAD1"]]
    code, _, err = cli("fetch", "--symbol", "BAD1", "--symbol", "IBM", "--provider", "partly", "--log-format", "json")
    docs = [json.loads(line) for line in err.splitlines()]
    assert [(d["symbol"], d["outcome"], d["level"]) for d in docs if d.get("symbol") == "BAD1"] == [
        ("BAD1", "failed", "WARNING")]
    closing = (docs[-1]["level"], docs[-1]["command"], docs[-1]["exit_code"])
    assert closing == ("ERROR", "fetch", ExitCode.BAD_INPUT)  # IBM is current: BAD1 alone was planned


# ------------------------------------------------------------------------- metrics


def test_metric_names_follow_prometheus_conventions():
    for name, (kind, help_text) in {**metrics.FAMILIES, **metrics.HEALTH_FAMILIES}.items():
        assert re.fullmatch(r"stockpipe_[a-z_]+", name) and help_text
        assert name.endswith("_total") == (kind == "counter"), name
    assert all(name.startswith("stockpipe_health_") for name in metrics.HEALTH_FAMILIES)


def test_run_writes_its_metrics_atomically_for_the_textfile_collector(cli, tmp_path):
    path = tmp_path / "run.prom"
    old = os.umask(0o077)  # as under systemd's UMask=0077: node_exporter must still read the file
    try:
        code, out, _ = cli("run", "--all", "--json", "--metrics-file", str(path))
    finally:
        os.umask(old)
    assert code == 0
    doc, found = json.loads(out), samples(path)
    run = (("command", "run"),)
    assert found[("stockpipe_run_exit_code", run)] == 0
    assert found[("stockpipe_runs_total", run + (("status", "ok"),))] == 1
    finished = dt.datetime.fromisoformat(doc["finished_at"]).timestamp()
    assert found[("stockpipe_last_success_timestamp_seconds", run)] == pytest.approx(finished)
    assert found[("stockpipe_rows_fetched", run + (("stage", "fetch"),))] == doc["counts"]["rows_fetched"] > 0
    assert found[("stockpipe_rows_loaded", run + (("stage", "load"),))] == doc["counts"]["rows_loaded"] > 0
    assert found[("stockpipe_symbols", run + (("outcome", "ok"), ("stage", "fetch")))] == 4
    assert found[("stockpipe_api_calls", run + (("provider", "demo"),))] == 0
    assert all(dict(labels)["command"] == "run" for _, labels in found)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".prom" and p.name.startswith(".")] == []


def test_a_failed_run_keeps_the_last_success(cli, tmp_path):
    path = tmp_path / "fetch.prom"
    assert cli("fetch", "--symbol", "IBM", "--metrics-file", str(path))[0] == 0
    first = samples(path)[("stockpipe_last_success_timestamp_seconds", (("command", "fetch"),))]
    code, _, _ = cli("fetch", "--symbol", "BAD1", "--provider", "partly", "--metrics-file", str(path))
    found = samples(path)
    assert found[("stockpipe_run_exit_code", (("command", "fetch"),))] == code == ExitCode.BAD_INPUT
    assert found[("stockpipe_last_success_timestamp_seconds", (("command", "fetch"),))] == first
    assert found[("stockpipe_runs_total", (("command", "fetch"), ("status", "failed")))] == 1
    assert found[("stockpipe_symbols", (("command", "fetch"), ("outcome", "failed"), ("stage", "fetch")))] == 1


def test_shard_and_quota_labels(cli, tmp_path):
    path = tmp_path / "shard.prom"
    code, _, _ = cli("fetch", "--all", "--shard", "1/2", "--metrics-file", str(path))
    assert code in (ExitCode.OK, ExitCode.NOTHING_TO_DO)
    assert {dict(labels).get("shard") for _, labels in samples(path)} == {"1/2"}


def test_every_command_takes_a_metrics_file(cli, tmp_path):
    assert cli("run", "--all")[0] == 0
    for command in ("transform", "load", "quality-check"):
        path = tmp_path / f"{command}.prom"
        assert cli(command, "--metrics-file", str(path))[0] == 0
        assert samples(path)[("stockpipe_run_exit_code", (("command", command),))] == 0
    quotes = tmp_path / "quotes.prom"
    cli("fetch", "--quotes", "--all", "--metrics-file", str(quotes))  # demo has no quotes: exits 4, no file
    assert not quotes.exists()


def test_health_check_metrics_file(cli, tmp_path):
    assert cli("run", "--all")[0] == 0
    path = tmp_path / "health.prom"
    code, out, _ = cli("health-check", "--json", "--metrics-file", str(path))
    doc, found = json.loads(out), samples(path)
    assert found[("stockpipe_health_status", ())] == code == 0
    statuses = {dict(labels)["check"]: value for (name, labels), value in found.items()
                if name == "stockpipe_health_check_status"}
    assert statuses == {c["name"]: 0 for c in doc["checks"]}
    assert found[("stockpipe_health_tracked_symbols", ())] == doc["observed"]["tracked_symbols"] == 4
    assert found[("stockpipe_health_missed_sessions", ())] == 0
    assert found[("stockpipe_health_disk_free_bytes", ())] > 0
    assert all(name.startswith("stockpipe_health_") for name, _ in found)


def test_label_values_are_escaped():
    out = metrics.Samples(metrics.HEALTH_FAMILIES)
    odd = 'a "quoted" back\\slash and\nnewline'
    out.add("stockpipe_health_check_status", 2, check=odd)
    [family] = text_string_to_metric_families(out.render())
    assert (family.samples[0].labels, family.samples[0].value) == ({"check": odd}, 2)


def test_a_bad_metrics_path_is_refused_before_any_work(cli, tmp_path):
    code, _, err = cli("run", "--all", "--metrics-file", str(tmp_path / "run.txt"))
    assert code == ExitCode.USAGE and "*.prom" in err
    code, _, err = cli("run", "--all", "--metrics-file", str(tmp_path / "nowhere" / "run.prom"))
    assert code == ExitCode.USAGE and "does not exist" in err
    assert not (tmp_path / "stockpipe-data" / "stockpipe.db").exists()
    code, _, err = cli("health-check", "--metrics-file", str(tmp_path / "health.txt"))
    assert code == HealthCode.UNKNOWN and "*.prom" in err


def test_an_unwritable_metrics_file_is_an_error_line_not_a_failed_run(cli, tmp_path):
    (tmp_path / "run.prom").mkdir()  # a directory in the way: the rename fails
    code, _, err = cli("run", "--all", "--metrics-file", str(tmp_path / "run.prom"))
    assert code == 0 and "ERROR cannot write the metrics file" in err
