"""The fault suite's figures: every test adds its numbers to faults-figures.json under
pytest's base temporary directory (faultharness.record); the session prints them at the end
(the README's "Reliability" table quotes one such run)."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def fault_figures(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "faults-figures.json"
    os.environ["STOCKPIPE_FAULT_FIGURES"] = str(path)  # read by faultharness.record (tests only)
    yield path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = os.environ.get("STOCKPIPE_FAULT_FIGURES")
    if not path or not os.path.exists(path):
        return
    terminalreporter.section("fault figures (issue 11)")
    for name, figures in sorted(json.loads(open(path).read()).items()):
        shown = ", ".join(f"{k}={v}" for k, v in sorted(figures.items()) if k != "recorded_at")
        terminalreporter.write_line(f"{name}: {shown}")
    terminalreporter.write_line(f"written to {path}")
