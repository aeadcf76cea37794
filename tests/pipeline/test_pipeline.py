"""The pipeline library end to end, on real SQLite and real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from conftest import clock, table_counts
from stockpipe import pipeline
from stockpipe.errors import ExitCode
from stockpipe.models import DATASETS
from stockpipe.storage.lake import Lake

from helpers import query

AUDIT = {"pipeline_runs", "run_events", "quality_results"}


def test_run_twice_on_both_warehouses(make_settings, database_url):
    settings = make_settings(database_url=database_url, symbols=("IBM", "AAPL", "BRK.B"), history_days=120)
    first = pipeline.run(settings, clock=clock)
    assert first.exit_code == ExitCode.OK, first.message
    counts = {s.stage: s.counts for s in first.stages}
    fetched = counts["fetch"]["rows_fetched"]
    assert fetched == 3 * 85  # NYSE sessions from 2026-07-26 to 2026-11-23 (the clock's Monday; not Labor Day)
    assert counts["load"]["prices_daily_written"] == fetched == counts["load"]["indicators_daily_written"]
    assert query(database_url, "SELECT COUNT(*), MAX(date) FROM prices_daily")[0][0] == fetched
    assert str(query(database_url, "SELECT MAX(date) FROM prices_daily")[0][0]) == "2026-11-23"
    before = table_counts(database_url)

    second = pipeline.run(settings, clock=clock)
    assert second.exit_code == ExitCode.NOTHING_TO_DO
    assert sum(s.counts.get("rows_written", 0) for s in second.stages) == 0
    after = table_counts(database_url)
    assert {k: v for k, v in after.items() if k not in AUDIT} == {k: v for k, v in before.items() if k not in AUDIT}
    assert after["pipeline_runs"] == 2


def test_next_session_fetches_one_bar_per_symbol(make_settings, database_url):
    settings = make_settings(database_url=database_url, symbols=("MSFT", "GOOGL"), history_days=60)
    monday = lambda: dt.datetime(2026, 11, 16, 23, 0, tzinfo=dt.timezone.utc)  # noqa: E731
    assert pipeline.run(settings, clock=monday).exit_code == ExitCode.OK
    tuesday = lambda: dt.datetime(2026, 11, 17, 23, 0, tzinfo=dt.timezone.utc)  # noqa: E731
    result = pipeline.run(settings, clock=tuesday)
    counts = {s.stage: s.counts for s in result.stages}
    assert result.exit_code == ExitCode.OK
    # each symbol's request re-reads its last 5 sessions (restate_sessions) with the new one; only
    # the new bar is written, the unchanged ones are not
    assert counts["fetch"]["rows_fetched"] == 2 * 6 and counts["load"]["prices_daily_written"] == 2
    # indicators are recomputed from the whole history, but only the new day's values change
    assert counts["load"]["indicators_daily_written"] == 2


def test_restated_bar_in_the_lake_loads_exactly_one_row(make_settings, database_url):
    settings = make_settings(database_url=database_url, symbols=("IBM",), history_days=40)
    assert pipeline.run(settings, clock=clock).exit_code == ExitCode.OK
    lake = Lake(settings.lake_dir)
    prices = lake.read_frame(DATASETS["prices_daily"], ["IBM"])
    restated = prices.tail(1).copy()
    restated["close"] = restated["high"]  # a vendor's correction, still inside the bar
    changed = lake.merge(DATASETS["prices_daily"], restated)
    assert changed.changed == {"IBM": 1}  # load finds it in the lake's change feed: nothing to flag
    loaded = pipeline.load(settings, clock=clock)
    assert loaded.stages[0].counts["prices_daily_written"] == 1
    close = query(database_url, "SELECT close FROM prices_daily ORDER BY date DESC LIMIT 1")[0][0]
    assert close == float(restated["high"].iloc[0])


def test_quality_and_health_on_both_warehouses(make_settings, database_url):
    settings = make_settings(database_url=database_url, symbols=("IBM",), history_days=30)
    assert pipeline.run(settings, clock=clock).exit_code == ExitCode.OK
    health = pipeline.health_check(settings, clock=clock)
    assert health.exit_code == 0, [c for c in health.stages[0].checks if not c.ok]
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE prices_daily SET volume = -5 WHERE symbol = 'IBM'")
    engine.dispose()
    quality = pipeline.quality_check(settings, clock=clock)
    assert quality.exit_code == ExitCode.QUALITY
    failed = {(c.name, c.symbol, c.observed) for c in quality.stages[0].checks if not c.ok}
    assert ("volume_non_negative", "IBM", float(query(database_url, "SELECT COUNT(*) FROM prices_daily")[0][0])) in failed
    stored = query(database_url, "SELECT COUNT(*) FROM quality_results WHERE check_name = 'volume_non_negative' "
                                 "AND passed = false")
    assert stored == [(1,)]


def test_lake_partitions_by_month(make_settings):
    settings = make_settings(symbols=("IBM", "AAPL"), history_days=70)
    assert pipeline.fetch(settings, clock=clock).exit_code == ExitCode.OK
    files = Lake(settings.lake_dir).files(DATASETS["prices_daily"])
    months = sorted(p.parent.name for p in files)
    assert months == ["month=2026-09", "month=2026-10", "month=2026-11"]
    table = pd.read_parquet(files[-1])
    assert sorted(table["symbol"].unique()) == ["AAPL", "IBM"]


def test_quotes_become_quotes_daily_in_the_warehouse(make_settings, database_url):
    """A streaming user's minute quotes land in quotes; transform builds quotes_daily; load moves both."""
    settings = make_settings(database_url=database_url, symbols=("AAPL",))
    ts = pd.date_range("2026-11-23 14:30", periods=390, freq="min", tz="UTC")
    price = 100 + (pd.Series(range(390)) % 7).to_numpy() * 0.1
    quotes = pd.DataFrame({"symbol": "AAPL", "ts": ts, "price": price, "open": None, "high": None, "low": None,
                           "prev_close": 99.5, "change": None, "change_pct": None,
                           "volume": pd.Series(range(1, 391)) * 1000, "provider": "stream"})
    lake = Lake(settings.lake_dir)
    assert lake.merge(DATASETS["quotes"], quotes).changed == {"AAPL": 390}  # the change feed tells transform
    assert pipeline.transform(settings, clock=clock).exit_code == ExitCode.OK
    assert pipeline.load(settings, clock=clock).exit_code == ExitCode.OK
    rows = query(database_url, "SELECT date, open, high, low, close, prev_close, volume, quotes FROM quotes_daily")
    assert [(str(r[0]), *r[1:]) for r in rows] == [
        ("2026-11-23", float(price[0]), float(price.max()), float(price.min()), float(price[-1]), 99.5, 390000, 390)]
    assert query(database_url, "SELECT COUNT(*) FROM quotes") == [(390,)]
    again = pipeline.transform(settings, clock=clock)
    assert sum(s.counts.get("rows_written", 0) for s in again.stages) == 0
