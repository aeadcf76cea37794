"""Scheduling files: rendering, the committed systemd/ files, the crontab, and systemd's own checks.

Tests that need `systemd-analyze` (Debian package `systemd`) skip with a reason when it is
missing; under CI=true they fail instead. croniter is a dev dependency.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from stockpipe import render, schedule
from stockpipe.cli import app
from stockpipe.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
SERVICES = ("stockpipe.service", "stockpipe-quotes.service", "stockpipe@.service")
TIMERS = ("stockpipe.timer", "stockpipe-quotes.timer", "stockpipe@.timer")


def _keys(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


# --- rendering ---------------------------------------------------------------------------

def test_committed_files_equal_the_default_rendering():
    rendered = schedule.systemd_units()
    assert rendered, "nothing rendered"
    for name, text in rendered.items():
        assert (REPO / "systemd" / name).read_text() == text, (
            f"systemd/{name} drifted from the rendering: regenerate with "
            "`stockpipe schedule systemd --output systemd` (the templates are in schedule.py)")
    shipped = {p.name for p in (REPO / "systemd").iterdir() if p.name != "README.md"}
    assert shipped == set(rendered)


def test_units_run_the_intended_commands_for_the_prefix():
    units = schedule.systemd_units("/srv/sp/venv", "etl")
    assert _keys(units["stockpipe.service"], "ExecStart") == ["/srv/sp/venv/bin/stockpipe run --all"]
    assert _keys(units["stockpipe-quotes.service"], "ExecStart") == ["/srv/sp/venv/bin/stockpipe fetch --quotes --all"]
    (shard,) = _keys(units["stockpipe@.service"], "ExecStart")
    assert shard.endswith(" /srv/sp/venv/bin/stockpipe %i") and "--shard" in shard
    for name in SERVICES:
        text = units[name]
        assert _keys(text, "Type") == ["oneshot"]
        assert _keys(text, "User") == ["etl"]
        assert _keys(text, "StateDirectory") == ["stockpipe"]
        assert _keys(text, "TimeoutStartSec")
        assert not _keys(text, "LoadCredential") and not _keys(text, "Environment")  # no secrets unless asked
    assert _keys(units["stockpipe.service"], "SuccessExitStatus") == ["99"]
    assert _keys(units["stockpipe@.service"], "SuccessExitStatus") == ["99"]
    assert _keys(units["stockpipe-quotes.service"], "SuccessExitStatus") == ["3 99"]
    for name in ("stockpipe.timer", "stockpipe@.timer"):
        assert _keys(units[name], "OnCalendar") == ["Mon..Fri 22:30 America/New_York"]
        assert _keys(units[name], "Persistent") == ["true"]
        assert _keys(units[name], "RandomizedDelaySec")


def test_shard_instance_name_becomes_the_shard_option():
    """What /bin/sh makes of the ExecStart= once systemd has resolved $$, %% and %i."""
    (line,) = _keys(schedule.systemd_units("/usr", "stockpipe")["stockpipe@.service"], "ExecStart")
    resolved = line.replace("$$", "$").replace("%%", "%").replace("%i", "3-of-8")
    resolved = resolved.replace("/usr/bin/stockpipe", "/bin/echo")
    out = subprocess.run(resolved, shell=True, capture_output=True, text=True, check=True).stdout
    assert out == "run --all --shard 3/8\n"


def test_credentials_are_loaded_never_inlined():
    text = schedule.systemd_units(credentials=("eodhd", "pgpass"))["stockpipe.service"]
    assert _keys(text, "LoadCredential") == ["eodhd_api_key:/etc/stockpipe/credentials/eodhd_api_key",
                                             "pgpass:/etc/stockpipe/credentials/pgpass"]
    assert _keys(text, "Environment") == ["STOCKPIPE_EODHD_API_KEY_FILE=%d/eodhd_api_key", "PGPASSFILE=%d/pgpass"]


def test_env_example_lists_settings_but_no_secret():
    text = schedule.systemd_units()["stockpipe.env.example"]
    for name in ("STOCKPIPE_PROVIDER", "STOCKPIPE_DATABASE_URL", "STOCKPIPE_DATA_DIR", "STOCKPIPE_CONFIG",
                 "STOCKPIPE_SYMBOLS", "STOCKPIPE_SYMBOLS_FILE", "STOCKPIPE_LOG_FORMAT", "STOCKPIPE_HISTORY_DAYS",
                 "STOCKPIPE_CSV_PATH", "STOCKPIPE_BATCH_ROWS", "STOCKPIPE_AUTO_MIGRATE"):
        assert re.search(rf"^#?{name}=", text, re.M), name
    assert not re.search(r"^#?STOCKPIPE_\w+_API_KEY(_FILE)?=", text, re.M)


@pytest.mark.parametrize("prefix, user", [("relative/venv", "stockpipe"), ("/opt/my venv", "stockpipe"),
                                          ("/opt/%i", "stockpipe"), ("/opt/../x", "stockpipe"),
                                          ("/opt/venv", "Root User")])
def test_unsafe_prefix_or_user_is_a_usage_error(prefix, user):
    with pytest.raises(UsageError):
        schedule.systemd_units(prefix, user)


def test_cli_prints_and_writes(tmp_path):
    runner = CliRunner()
    printed = runner.invoke(app, ["schedule", "systemd", "--prefix", "/srv/venv", "--user", "etl"])
    assert printed.exit_code == 0, printed.output
    assert "# ==> stockpipe@.timer <==" in printed.stdout
    assert "ExecStart=/srv/venv/bin/stockpipe run --all\n" in printed.stdout
    written = runner.invoke(app, ["schedule", "systemd", "--prefix", "/srv/venv", "--output", str(tmp_path / "u")])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == sorted(schedule.systemd_units())
    assert (tmp_path / "u" / "stockpipe.service").read_text() == schedule.systemd_units("/srv/venv")["stockpipe.service"]
    cron = runner.invoke(app, ["schedule", "cron", "--prefix", "/srv/venv"])
    assert cron.exit_code == 0 and cron.stdout == schedule.crontab("/srv/venv")
    bad = runner.invoke(app, ["schedule", "cron", "--prefix", "venv"])
    assert bad.exit_code == 2 and "--prefix" in bad.output


# --- cron ----------------------------------------------------------------------------------

def _cron_jobs(text: str) -> list[tuple[str, str]]:
    jobs = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#") and not re.match(r"^\w+=", line):
            fields = line.split(None, 5)
            jobs.append((" ".join(fields[:5]), fields[5]))
    return jobs


def _guard_passes(command: str, at_utc: dt.datetime) -> bool:
    """The crontab guard, evaluated in Python: the shell test compares New York's hour with 22."""
    match = re.match(r'^\[ "\$\(TZ=America/New_York date \+\\%H\)" = (\d\d) \] && ', command)
    assert match, f"unexpected guard in {command!r}"
    return at_utc.astimezone(NEW_YORK).strftime("%H") == match.group(1)


def test_crontab_fires_once_per_new_york_weekday_at_2230_in_2026_and_2027():
    croniter = pytest.importorskip("croniter").croniter
    text = schedule.crontab("/opt/stockpipe/venv")
    jobs = _cron_jobs(text)
    assert len(jobs) == 2
    start = dt.datetime(2026, 1, 1, tzinfo=NEW_YORK).astimezone(UTC)  # New York days 2026-01-01 .. 2027-12-31
    end = dt.datetime(2028, 1, 1, tzinfo=NEW_YORK).astimezone(UTC)
    runs = []
    for spec, command in jobs:
        assert "flock -n " in command and "/opt/stockpipe/venv/bin/stockpipe run --all" in command
        it = croniter(spec, start)  # the host's cron runs in UTC
        while (fire := it.get_next(dt.datetime)) < end:
            if _guard_passes(command, fire):
                runs.append(fire.astimezone(NEW_YORK))
    days = sorted(r.date() for r in runs)
    assert len(days) == len(set(days)), "a New York day ran twice"
    expected = [d for d in (dt.date(2026, 1, 1) + dt.timedelta(n) for n in range(730)) if d.weekday() < 5]
    assert days == expected
    assert all((r.hour, r.minute) == (22, 30) for r in runs)


def test_crontab_guard_is_valid_shell():
    """After cron turns \\% into %, the guard is a test the shell evaluates (exit 0 or 1, never 2)."""
    (_, command), _ = _cron_jobs(schedule.crontab())
    guard = command.split(" && ")[0].replace("\\%", "%")
    before = dt.datetime.now(NEW_YORK).hour
    result = subprocess.run(["/bin/sh", "-c", guard], capture_output=True, text=True)
    after = dt.datetime.now(NEW_YORK).hour
    assert result.returncode in (0, 1) and result.stderr == ""
    if before == after:  # not across an hour boundary
        assert (result.returncode == 0) == (before == 22)


# --- systemd-analyze -----------------------------------------------------------------------

def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing under CI=true: apt-get install -y systemd")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return path


@pytest.fixture
def rendered_units(tmp_path) -> Path:
    """The units rendered for this virtualenv, so verify finds ExecStart='s stockpipe."""
    prefix = Path(sys.prefix)
    if not (prefix / "bin" / "stockpipe").exists():
        pytest.fail(f"{prefix}/bin/stockpipe is missing: install the package (pip install -e .)")
    directory = tmp_path / "units"
    render.write_files(schedule.systemd_units(str(prefix), "stockpipe", ("eodhd", "pgpass")), directory)
    return directory


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={**os.environ, "TZ": "UTC", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""})


def test_systemd_analyze_verify_is_silent(rendered_units):
    tool = _systemd_analyze()
    names = ["stockpipe.service", "stockpipe.timer", "stockpipe-quotes.service", "stockpipe-quotes.timer",
             "stockpipe@3-of-8.service", "stockpipe@3-of-8.timer"]
    result = _run(tool, "verify", *[str(rendered_units / n) for n in names], cwd=rendered_units)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_systemd_analyze_verify_catches_a_typo(rendered_units):
    """The check above means something: a typo'd key is only a warning, with exit 0."""
    tool = _systemd_analyze()
    timer = rendered_units / "stockpipe.timer"
    timer.write_text(timer.read_text().replace("Persistent=", "Persistant="))
    result = _run(tool, "verify", str(timer), cwd=rendered_units)
    assert "Persistant" in result.stdout + result.stderr


def _elapses(tool: str, calendar: str, base: str, iterations: int) -> list[dt.datetime]:
    result = _run(tool, "calendar", f"--base-time={base}", f"--iterations={iterations}", calendar)
    assert result.returncode == 0, result.stderr
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", result.stdout)
    assert len(stamps) == iterations, result.stdout
    return [dt.datetime.fromisoformat(s).replace(tzinfo=UTC) for s in stamps]


@pytest.mark.parametrize("base, expected_utc", [
    # 2027-03-14: EST -> EDT. Fri 22:30 EST = Sat 03:30 UTC; Mon 22:30 EDT = Tue 02:30 UTC.
    ("2027-03-12 12:00 UTC", ["2027-03-13 03:30", "2027-03-16 02:30", "2027-03-17 02:30"]),
    # 2027-11-07: EDT -> EST. Fri 22:30 EDT = Sat 02:30 UTC; Mon 22:30 EST = Tue 03:30 UTC.
    ("2027-11-05 12:00 UTC", ["2027-11-06 02:30", "2027-11-09 03:30", "2027-11-10 03:30"]),
])
def test_daily_timer_elapses_across_the_2027_dst_changes(base, expected_utc):
    tool = _systemd_analyze()
    (calendar,) = _keys(schedule.systemd_units()["stockpipe.timer"], "OnCalendar")
    got = _elapses(tool, calendar, base, 3)
    assert got == [dt.datetime.fromisoformat(e).replace(tzinfo=UTC) for e in expected_utc]
    assert all(g.astimezone(NEW_YORK).strftime("%a %H:%M") in
               {f"{d} 22:30" for d in ("Mon", "Tue", "Wed", "Thu", "Fri")} for g in got)


def test_quotes_timer_is_hourly_inside_the_session():
    tool = _systemd_analyze()
    (calendar,) = _keys(schedule.systemd_units()["stockpipe-quotes.timer"], "OnCalendar")
    got = [g.astimezone(NEW_YORK) for g in _elapses(tool, calendar, "2027-03-12 12:00 UTC", 10)]
    assert [(g.date().isoformat(), g.hour) for g in got] == (
        [("2027-03-12", h) for h in range(10, 17)] + [("2027-03-15", h) for h in range(10, 13)])


@pytest.mark.parametrize("unit", ["stockpipe.service", "stockpipe-quotes.service", "stockpipe@3-of-8.service"])
def test_security_exposure_at_most_2(rendered_units, unit):
    tool = _systemd_analyze()
    result = _run(tool, "security", "--offline=true", "--threshold=100", str(rendered_units / unit),
                  cwd=rendered_units)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
    assert "RestrictAddressFamilies" in result.stdout  # network allowed, not PrivateNetwork=
