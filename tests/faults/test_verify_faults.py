"""Issue 11 row 22 and "litter and silence": `stockpipe verify` through the real CLI, a
stored state in the future (the clock went back), ten days of missed runs, temp files of a
failed archive write, future-dated bars — on SQLite and PostgreSQL where a warehouse is used."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import NOW
from stockpipe import calendars, pipeline
from stockpipe.errors import ExitCode
from stockpipe.stages.plan import plan_fetch
from stockpipe.stages.validate import validate_bars
from stockpipe.storage import archive, schema, warehouse

SYMBOLS = ("--symbol", "AAPL", "--symbol", "MSFT")


def test_verify_names_every_problem_with_exit_7_and_one_error_line(make_cli, database_url, tmp_path):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="40", STOCKPIPE_DATABASE_URL=database_url)
    assert cli("run", *SYMBOLS)[0] == ExitCode.OK
    code, out, err = cli("verify")
    assert code == ExitCode.OK and "verify: ok (exit 0)" in out, out + err

    data = tmp_path / "stockpipe-data"
    junk = [data / "raw" / ".AAPL.r.json.gz.tmp", data / "lake" / "prices_daily" / "month=2026-11" / ".data.parquet.7.tmp"]
    for path in junk:
        path.write_bytes(b"partial")
    code, out, err = cli("verify", "--json")
    document = json.loads(out)
    assert code == ExitCode.INCONSISTENT and document["exit_name"] == "inconsistent"
    assert [c["detail"].split(":")[0] for c in document["checks"] if not c["ok"]] == sorted(map(str, junk))
    assert err.count("\n") == 1 and "stockpipe verify --repair" in err, err

    code, out, err = cli("verify", "--repair")
    assert code == ExitCode.OK, out + err
    assert "2 temp file(s) deleted" in out and not any(p.exists() for p in junk)


def test_a_state_in_the_future_blocks_nothing_silently_and_start_resets_it(make_settings, database_url, caplog):
    settings = make_settings(database_url=database_url, symbols=("AAPL", "MSFT"), history_days=30)
    assert pipeline.fetch(settings, clock=lambda: NOW).exit_code == ExitCode.OK
    future = dt.date(2027, 3, 1)
    engine = warehouse.create(settings.database_url)
    with engine.begin() as conn:
        conn.execute(schema.symbol_state.update().where(schema.symbol_state.c.symbol == "AAPL")
                     .values(last_date=future))
    later = NOW + dt.timedelta(days=1)  # Tuesday evening: a new session for both
    with caplog.at_level(logging.WARNING, logger="stockpipe"):
        result = pipeline.fetch(settings, clock=lambda: later)
    assert [o.symbol for o in result.stages[0].outcomes] == ["MSFT"]  # AAPL: no request
    warning = [r.getMessage() for r in caplog.records if "AAPL" in r.getMessage()]
    assert warning and "2027-03-01" in warning[0] and "--start" in warning[0], warning
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.symbol_state.c.last_date)
                            .where(schema.symbol_state.c.symbol == "AAPL")).scalar() == future  # nothing deleted

    settings = make_settings(database_url=database_url, symbols=("AAPL",), history_days=30)
    result = pipeline.fetch(settings, dt.date(2026, 11, 2), clock=lambda: later)
    assert result.exit_code == ExitCode.OK and result.stages[0].outcomes[0].rows > 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.symbol_state.c.last_date)
                            .where(schema.symbol_state.c.symbol == "AAPL")).scalar() == later.date()


def test_ten_days_of_missed_runs_are_asked_for_once():
    last = dt.date(2026, 11, 9)
    plan = plan_fetch(["AAPL"], {"AAPL": {"last_date": last}}, NOW, 730)
    (task,) = plan.tasks
    assert (task.start, task.end) == (last + dt.timedelta(days=1), NOW.date())
    sessions = calendars.sessions_between(task.start, task.end)
    assert len(sessions) == 10 and not plan.ahead
    again = plan_fetch(["AAPL"], {"AAPL": {"last_date": task.end}}, NOW, 730)
    assert again.tasks == () and again.current == ("AAPL",)


def test_a_state_ahead_of_an_explicit_end_is_no_clock_jump():
    plan = plan_fetch(["AAPL"], {"AAPL": {"last_date": dt.date(2026, 11, 20)}}, NOW, 730, end=dt.date(2026, 11, 10))
    assert plan.ahead == () and plan.current == ("AAPL",)


def test_future_dated_bars_are_rejected_with_a_reason():
    bars = pd.DataFrame({"date": pd.to_datetime(["2026-11-23", "2026-11-24"]), "open": [1.0, 1.0], "high": [2.0, 2.0],
                         "low": [0.5, 0.5], "close": [1.5, 1.5], "adj_close": [1.5, 1.5], "volume": [10, 10]})
    checked = validate_bars("AAPL", bars, provider="demo", run_id="r", now=NOW, latest_session=NOW.date())
    assert checked.rows == 1 and [(r["date"], r["reason"]) for r in checked.rejects] == [("2026-11-24", "future_date")]


def test_a_failed_archive_write_leaves_no_temp_file(tmp_path):
    target = tmp_path / "raw" / "demo" / "2026-11-23" / "AAPL.r.json.gz"
    target.mkdir(parents=True)  # os.replace onto a directory fails, as a full disk would
    with pytest.raises(OSError):
        archive.write(target, b"{}")
    assert list(target.parent.glob(".*.tmp")) == []


def test_con_is_a_ticker_not_a_file_name(tmp_path):
    """Decision (README): Linux has no reserved device names, and the archive never names a
    file after a bare symbol, so `CON` (a real NYSE ticker) is accepted."""
    path = archive.archive_path(tmp_path / "raw", "demo", NOW.date(), "CON", "r", "application/json")
    assert path.name == "CON.r.json.gz" and path.parent.parent.parent == tmp_path / "raw"
