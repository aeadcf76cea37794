"""`stockpipe prune` through the real CLI, on SQLite and PostgreSQL: quotes older than the
cutoff out of the lake and the warehouse (quotes_daily kept), raw payloads and run records,
prices only when named with --yes, old lake versions vacuumed, the prune recorded as a run."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from deltalake import DeltaTable
from sqlalchemy import create_engine, text

from stockpipe import calendars
from stockpipe.errors import ExitCode
from stockpipe.models import DATASETS
from stockpipe.storage.lake import Lake

from helpers import query

UTC = dt.timezone.utc


@pytest.fixture
def cli(make_cli, database_url):
    return make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="400", STOCKPIPE_DATABASE_URL=database_url)


def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "stockpipe-data" / "lake")


def quotes_on(days: list[dt.date]) -> pd.DataFrame:
    """Two quotes a day for AAPL at 15:00 and 20:00 UTC (inside a New York session)."""
    ts = [dt.datetime.combine(d, dt.time(h), UTC) for d in days for h in (15, 20)]
    return pd.DataFrame({"symbol": "AAPL", "ts": pd.to_datetime(ts, utc=True).astype("datetime64[us, UTC]"),
                         "price": [100.0 + i for i in range(len(ts))], "open": 99.0, "high": 200.0, "low": 90.0,
                         "prev_close": 98.0, "change": 1.0, "change_pct": 1.0, "volume": 1000, "provider": "eodhd"})


def test_quotes_raw_and_runs_older_than_the_cutoff_go_and_the_prune_is_a_run(cli, database_url, tmp_path):
    today = calendars.utcnow().date()
    old, recent = today - dt.timedelta(days=120), today - dt.timedelta(days=10)
    days = [d for d in (old, old + dt.timedelta(days=1), recent) if d.weekday() < 5] or [recent]
    assert cli("fetch", "-s", "AAPL")[0] == ExitCode.OK  # a warehouse, a run and raw payloads
    lake(tmp_path).merge(DATASETS["quotes"], quotes_on(days))
    assert cli("transform")[0] == ExitCode.OK and cli("load")[0] == ExitCode.OK
    daily_before = query(database_url, "SELECT date, close FROM quotes_daily ORDER BY date")
    raw = tmp_path / "stockpipe-data" / "raw" / "demo"
    (raw / "2020-01-02").mkdir(parents=True)
    (raw / "2020-01-02" / "AAPL.r1.json.gz").write_bytes(b"x")
    (raw / "notes").mkdir()  # not a day's folder: never deleted
    engine = create_engine(database_url)  # a run that finished long ago
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pipeline_runs (run_id, command, arguments, started_at, finished_at, status) "
                          "VALUES ('old-run', 'fetch', '{}', :t, :t, 'ok')"), {"t": dt.datetime(2020, 1, 2, tzinfo=UTC)})
    engine.dispose()

    code, out, err = cli("prune", "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    stages = {s["stage"]: s["counts"] for s in doc["stages"]}
    old_quotes = 2 * sum(d < today - dt.timedelta(days=90) for d in days)
    assert stages["prune-quotes"] == {"rows_removed": old_quotes, "warehouse_rows_removed": old_quotes}
    assert stages["prune-raw"] == {"files_removed": 1} and stages["prune-runs"] == {"rows_removed": 1}
    assert "prune-prices_daily" not in stages  # never without being named
    kept = query(database_url, "SELECT ts FROM quotes")
    assert len(kept) == 2 * len(days) - old_quotes
    assert not (raw / "2020-01-02").exists() and (raw / "notes").exists() and any(raw.iterdir())
    assert query(database_url, "SELECT COUNT(*) FROM pipeline_runs WHERE run_id = 'old-run'") == [(0,)]
    run = query(database_url, "SELECT command, status, arguments FROM pipeline_runs ORDER BY id DESC LIMIT 1")[0]
    assert run[:2] == ("prune", "ok") and json.loads(run[2])["datasets"][0] == "quotes"
    events = dict(query(database_url, f"SELECT symbol, rows FROM run_events WHERE run_id = '{doc['run_id']}'"))
    assert events["quotes"] == old_quotes and events["raw"] == 1

    # the derived daily rows stay: transform does not rebuild them from the quotes left
    assert cli("transform")[0] == ExitCode.OK and cli("load")[0] == ExitCode.OK
    assert query(database_url, "SELECT date, close FROM quotes_daily ORDER BY date") == daily_before
    assert len(query(database_url, "SELECT ts FROM quotes")) == len(kept)


def test_prices_only_when_named_with_older_than_and_yes(cli, database_url, tmp_path):
    assert cli("run", "-s", "AAPL")[0] == ExitCode.OK
    first = query(database_url, "SELECT MIN(date) FROM prices_daily")[0][0]
    for args in (("-d", "prices_daily"), ("-d", "prices_daily", "--older-than", "300d")):
        code, _, err = cli("prune", *args)
        assert code == ExitCode.USAGE and "--yes" in err
    assert query(database_url, "SELECT MIN(date) FROM prices_daily")[0][0] == first
    code, out, err = cli("prune", "-d", "prices_daily", "--older-than", "300d", "--yes", "--json")
    assert code == ExitCode.OK, err
    removed = json.loads(out)["counts"]["rows_removed"]
    cutoff = (calendars.utcnow() - dt.timedelta(days=300)).date()
    assert removed > 0 and str(query(database_url, "SELECT MIN(date) FROM prices_daily")[0][0]) >= str(cutoff)
    assert str(query(database_url, "SELECT first_date FROM symbol_state WHERE symbol = 'AAPL'")[0][0]) >= str(cutoff)
    assert lake(tmp_path).read(DATASETS["prices_daily"], columns=["date"]).num_rows == query(
        database_url, "SELECT COUNT(*) FROM prices_daily")[0][0]
    assert cli("fetch", "-s", "AAPL")[0] == ExitCode.NOTHING_TO_DO  # the pruned years are not fetched again


@pytest.mark.parametrize(("age", "code"), [("90x", ExitCode.USAGE), ("-3d", ExitCode.USAGE)])
def test_bad_ages_and_datasets_are_usage_errors(cli, age, code):
    assert cli("prune", "--older-than", age)[0] == code
    assert cli("prune", "-d", "indicators_daily")[0] == ExitCode.USAGE


def test_vacuum_removes_versions_older_than_time_travel(make_cli, database_url, tmp_path):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="30", STOCKPIPE_DATABASE_URL=database_url)
    assert cli("fetch", "-s", "AAPL")[0] == ExitCode.OK
    assert cli("prune", "-d", "prices_daily", "--older-than", "10d", "--yes")[0] == ExitCode.OK
    path = tmp_path / "stockpipe-data" / "lake" / "prices_daily"
    assert DeltaTable(str(path), version=1).to_pyarrow_table().num_rows > 0  # within 7 days of time travel
    code, out, _ = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_DATABASE_URL=database_url,
                            STOCKPIPE_TIME_TRAVEL_DAYS="0")("prune", "-d", "rejects", "--json")
    assert code == ExitCode.OK
    assert {s["stage"]: s["counts"] for s in json.loads(out)["stages"]}["vacuum"]["files_removed"] >= 1
    with pytest.raises(Exception):  # noqa: B017 - delta-rs raises its own error types for a missing file
        DeltaTable(str(path), version=1).to_pyarrow_table()
