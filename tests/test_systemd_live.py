"""Live test of the systemd units: the real stockpipe.service in a real systemd (systemd-nspawn).

`tests/test_schedule.py` checks the unit files statically (systemd-analyze verify, calendar,
security); this boots systemd and runs them, hardening and all: a successful run must land in
the warehouse and leave the unit not failed, and a failing run must leave the unit failed with
stockpipe's documented exit code.

Decisions:

- The units are rendered by the CLI of the virtualenv pytest runs in (`--prefix sys.prefix`),
  exactly as an operator renders them, and used unchanged. What the test adds is what an
  operator adds: a drop-in (`systemctl edit`) choosing the offline demo provider and two
  symbols, and /etc/stockpipe/stockpipe.env copied from the rendered example.
- The container is volatile (a tmpfs root over the host's /usr), so the virtualenv, the
  interpreter and, for an editable install, the package's source are bound read-only at their
  own paths; the unit directory and /etc/stockpipe are bound read-only from temp dirs; the
  service's state directory (/var/lib/private/stockpipe under DynamicUser=) is a host temp dir,
  so the warehouse is read on the host with sqlite3 after the container is gone.
- The failing run is a real configuration error (an invalid STOCKPIPE_HISTORY_DAYS in the env
  file, which systemd rereads at every start): exit 4, so the unit must be failed with
  ExecMainStatus=4 (SuccessExitStatus= lists only 99).
- Needs root, systemd-nspawn (Debian: systemd-container) and a virtualenv whose Python is not
  under /root or /home (ProtectHome=yes hides it: status=203/EXEC). Without them it skips with
  the reason, except when CI is set (anything but empty, 0, false, no): then it fails.
  Select it with `-m live`, leave it out with `-m "not live"`; the two small tests of the
  test's own switches at the end run everywhere.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import nspawn
from stockpipe.errors import ExitCode

SYMBOLS = ("AAPL", "IBM")
UNIT = "stockpipe.service"
START_TIMEOUT = 90.0  # a bound for a hung start, not an expectation: the run takes ~4 s
DROP_IN = f"""\
# What an operator adds with `systemctl edit {UNIT}`: the offline demo provider, two symbols.
[Service]
Environment=STOCKPIPE_PROVIDER=demo STOCKPIPE_SYMBOLS={",".join(SYMBOLS)}
"""
HIDDEN_BY_PROTECT_HOME = (Path("/root"), Path("/home"), Path("/run/user"))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _cannot_run(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI is set, so the live systemd test must run, but: {reason}")
    pytest.skip(reason)


def _runtime_roots() -> list[Path]:
    """What the service's Python needs from the host outside /usr, outermost directories only."""
    migrations = importlib.util.find_spec("stockpipe.migrations")
    stockpipe = importlib.util.find_spec("stockpipe")
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent,
             *(Path(p) for p in stockpipe.submodule_search_locations),
             *(Path(p) for p in migrations.submodule_search_locations)]
    paths = sorted({p.resolve() for p in paths}, key=lambda p: len(p.parts))
    roots: list[Path] = []
    for path in paths:
        if not path.is_relative_to("/usr") and not any(path.is_relative_to(r) for r in roots):
            roots.append(path)
    return roots


def _check_machine() -> list[Path]:
    """The runtime roots to bind, or skip (fail in CI) with the reason this machine cannot run the test."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        _cannot_run("needs root on Linux: systemd-nspawn boots a container")
    missing = [tool for tool in ("systemd-nspawn", "nsenter", "systemctl") if shutil.which(tool) is None]
    if missing:
        _cannot_run(f"{', '.join(missing)} not found: apt-get install systemd-container util-linux systemd")
    if not (Path(sys.prefix) / "bin" / "stockpipe").is_file():
        _cannot_run(f"no {sys.prefix}/bin/stockpipe: run pytest from the virtualenv stockpipe is installed in")
    roots = _runtime_roots()
    hidden = [str(r) for r in roots if any(r.is_relative_to(h) for h in HIDDEN_BY_PROTECT_HOME)]
    if hidden:
        _cannot_run(f"this Python needs {', '.join(hidden)}, which ProtectHome=yes hides from the service "
                    "(status=203/EXEC): run pytest from a venv built from /usr/bin/python3 under /opt, "
                    "e.g. /usr/bin/python3 -m venv /opt/stockpipe-live/venv")
    return roots


def _render(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Rendered unit dir (plus the drop-in), /etc/stockpipe, and the state dir, on the host."""
    units, etc, state = tmp_path / "units", tmp_path / "etc-stockpipe", tmp_path / "state"
    subprocess.run([f"{sys.prefix}/bin/stockpipe", "schedule", "systemd", "--prefix", sys.prefix,
                    "--user", "stockpipe", "--output", str(units)], check=True, capture_output=True, timeout=60)
    etc.mkdir()
    (units / "stockpipe.env.example").replace(etc / "stockpipe.env")  # the operator's copy step
    (units / f"{UNIT}.d").mkdir()
    (units / f"{UNIT}.d" / "live-test.conf").write_text(DROP_IN)
    state.mkdir()
    return units, etc, state


def _set_env_file(etc: Path, extra: str) -> None:
    """Add a line to /etc/stockpipe/stockpipe.env, replacing the file atomically inside the bound dir."""
    path = etc / "stockpipe.env"
    tmp = path.with_name(".stockpipe.env.tmp")
    tmp.write_text(path.read_text() + extra + "\n")
    tmp.replace(path)


def _start(machine: nspawn.Machine) -> subprocess.CompletedProcess[str]:
    # A oneshot's `systemctl start` returns when the run has finished (or failed).
    return machine.systemctl("start", UNIT, timeout=START_TIMEOUT)


def _warehouse(state: Path) -> tuple[list[tuple], list[tuple]]:
    """(command, status, exit code, provider) of every run and (symbol, rows, providers) of prices_daily."""
    with sqlite3.connect(f"file:{state / 'stockpipe.db'}?mode=ro", uri=True) as db:
        runs = db.execute("SELECT command, status, exit_code, provider FROM pipeline_runs ORDER BY id").fetchall()
        prices = db.execute("SELECT symbol, COUNT(*), GROUP_CONCAT(DISTINCT provider) FROM prices_daily "
                            "GROUP BY symbol ORDER BY symbol").fetchall()
    return runs, prices


def _succeed_then_fail(machine: nspawn.Machine, etc: Path) -> None:
    """Start the unit as configured (must succeed), then with an invalid setting (must fail with exit 4)."""
    ok = _start(machine)
    assert ok.returncode == 0, f"{UNIT} failed: {ok.stderr}\n{machine.journal(UNIT)}"
    is_failed = machine.systemctl("is-failed", UNIT)
    assert (is_failed.returncode, is_failed.stdout.strip()) == (1, "inactive"), machine.journal(UNIT)
    assert machine.show(UNIT, "Result", "ExecMainStatus") == {"Result": "success", "ExecMainStatus": "0"}

    _set_env_file(etc, "STOCKPIPE_HISTORY_DAYS=not-a-number")
    failed = _start(machine)
    journal = machine.journal(UNIT)
    assert failed.returncode != 0, journal
    is_failed = machine.systemctl("is-failed", UNIT)
    assert (is_failed.returncode, is_failed.stdout.strip()) == (0, "failed"), journal
    shown = machine.show(UNIT, "Result", "ExecMainCode", "ExecMainStatus")
    # ExecMainCode 1 = CLD_EXITED: stockpipe exited with its code, it was not killed.
    assert shown == {"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": str(int(ExitCode.CONFIG))}, journal
    assert "STOCKPIPE_HISTORY_DAYS" in journal, "the journal must name the setting to fix"


@pytest.mark.live
def test_stockpipe_service_runs_under_systemd_and_fails_visibly(tmp_path: Path):
    roots = _check_machine()
    units, etc, state = _render(tmp_path)
    binds = [nspawn.Bind(root, str(root)) for root in roots] + [
        nspawn.Bind(units, "/etc/systemd/system"),
        nspawn.Bind(etc, "/etc/stockpipe"),
        nspawn.Bind(state, "/var/lib/private/stockpipe", writable=True),
    ]
    try:
        with nspawn.boot(binds, tmp_path) as machine:
            _succeed_then_fail(machine, etc)
    except nspawn.CannotBootError as exc:
        _cannot_run(f"this machine cannot run a systemd-nspawn container: {exc}")

    runs, prices = _warehouse(state)
    assert runs == [("run", "ok", 0, "demo")], "one successful run; the misconfigured one never reached the warehouse"
    assert [(symbol, providers) for symbol, _, providers in prices] == [(s, "demo") for s in SYMBOLS]
    assert all(rows > 0 for _, rows, _ in prices)
    database = (state / "stockpipe.db").stat()
    # DynamicUser= and UMask=0077 took effect: written by the unit's own user, readable by it alone.
    assert database.st_uid != 0 and database.st_mode & 0o077 == 0


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("1", pytest.fail.Exception),
                                         ("", pytest.skip.Exception), ("false", pytest.skip.Exception)])
def test_a_reason_not_to_run_is_a_failure_only_in_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no systemd here"):
        _cannot_run("no systemd here")


def test_runtime_roots_hold_the_installed_package_outside_usr():
    roots = _runtime_roots()
    package = Path(importlib.util.find_spec("stockpipe").submodule_search_locations[0]).resolve()
    assert package.is_relative_to("/usr") or any(package.is_relative_to(r) for r in roots)
    assert not any(r.is_relative_to("/usr") for r in roots)
    assert not any(a != b and a.is_relative_to(b) for a in roots for b in roots), "nested roots are bound twice"
