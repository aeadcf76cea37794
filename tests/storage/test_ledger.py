"""The quota ledger on real SQLite and real PostgreSQL: shared counts, windows, concurrency."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from stockpipe.errors import ConfigError
from stockpipe.storage import schema, warehouse
from stockpipe.storage.ledger import Ledger

from helpers import as_utc

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def rows(engine) -> list[dict]:
    t = schema.quota_ledger
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(t).order_by(t.c.provider, t.c.window_start)).mappings()]


def test_a_second_run_the_same_day_sees_what_the_first_spent(engine):
    first = Ledger(engine, "alphavantage", calls_per_day=25, clock=Clock())
    assert first.remaining() == 25
    first.record()
    first.record(3)
    second = Ledger(engine, "alphavantage", calls_per_day=25, clock=Clock(NOW + dt.timedelta(minutes=30)))
    assert second.remaining() == 21
    assert second.try_spend(2)
    assert first.remaining() == second.remaining() == 19
    assert Ledger(engine, "eodhd", calls_per_day=20, clock=Clock()).remaining() == 20  # per provider
    (row,) = rows(engine)
    assert row["provider"] == "alphavantage" and row["calls"] == 6 and row["call_limit"] == 25
    assert as_utc(row["window_start"]) == dt.datetime(2026, 11, 23, tzinfo=UTC)
    assert as_utc(row["resets_at"]) == dt.datetime(2026, 11, 24, tzinfo=UTC)
    assert as_utc(row["updated_at"]) == NOW + dt.timedelta(minutes=30)


def test_try_spend_stops_at_the_limit_and_counts_nothing_it_refuses(engine):
    ledger = Ledger(engine, "eodhd", calls_per_day=100, clock=Clock())
    assert ledger.try_spend(99)
    assert not ledger.try_spend(2)  # a bulk call of 2 does not fit in the 1 left
    assert ledger.try_spend(1)
    assert not ledger.try_spend(1)
    assert not ledger.try_spend(101)
    assert ledger.status().calls == 100 and ledger.remaining() == 0


def test_the_window_rolls_over_at_the_reset_time(engine):
    clock = Clock()
    ledger = Ledger(engine, "eodhd", calls_per_day=3, clock=clock)
    assert ledger.window() == (dt.datetime(2026, 11, 23, tzinfo=UTC), dt.datetime(2026, 11, 24, tzinfo=UTC))
    ledger.record(3)
    clock.now = dt.datetime(2026, 11, 23, 23, 59, 59, 999999, tzinfo=UTC)
    assert ledger.remaining() == 0 and not ledger.try_spend()
    clock.now = dt.datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert ledger.remaining() == 3
    assert ledger.try_spend()
    assert [r["calls"] for r in rows(engine)] == [3, 1]  # yesterday's row stays, as history


def test_the_window_follows_the_vendors_reset_zone_across_dst(engine):
    clock = Clock()  # 23:00 UTC = 18:00 in New York (EST): the day began at 05:00 UTC
    ledger = Ledger(engine, "stooq", calls_per_day=10, reset_zone="America/New_York", clock=clock)
    assert ledger.window() == (dt.datetime(2026, 11, 23, 5, tzinfo=UTC), dt.datetime(2026, 11, 24, 5, tzinfo=UTC))
    clock.now = dt.datetime(2026, 11, 24, 4, 59, tzinfo=UTC)  # 23:59 the same New York day
    assert ledger.window()[0] == dt.datetime(2026, 11, 23, 5, tzinfo=UTC)
    clock.now = dt.datetime(2026, 3, 8, 12, tzinfo=UTC)  # spring forward: a 23-hour quota day
    start, resets = ledger.window()
    assert (start, resets) == (dt.datetime(2026, 3, 8, 5, tzinfo=UTC), dt.datetime(2026, 3, 9, 4, tzinfo=UTC))
    warsaw = Ledger(engine, "stooq", calls_per_day=10, reset_zone="Europe/Warsaw", clock=Clock())
    # 23:00 UTC is midnight in Warsaw (CET): a new quota day has just begun there.
    assert warsaw.window() == (dt.datetime(2026, 11, 23, 23, tzinfo=UTC), dt.datetime(2026, 11, 24, 23, tzinfo=UTC))


def test_concurrent_record_from_threads_loses_no_call(engine):
    ledgers = [Ledger(engine, "finnhub", calls_per_day=None, clock=Clock()) for _ in range(2)]  # two "runs"
    barrier = threading.Barrier(8)

    def worker(ledger: Ledger) -> None:
        barrier.wait()
        for _ in range(25):
            ledger.record()

    threads = [threading.Thread(target=worker, args=(ledgers[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledgers[0].status().calls == 200
    assert ledgers[0].remaining() is None


def test_concurrent_try_spend_never_spends_past_the_limit(engine):
    ledgers = [Ledger(engine, "alphavantage", calls_per_day=50, clock=Clock()) for _ in range(2)]
    granted, lock = [], threading.Lock()
    barrier = threading.Barrier(8)

    def worker(ledger: Ledger) -> None:
        barrier.wait()
        for _ in range(15):
            ok = ledger.try_spend()
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=worker, args=(ledgers[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 50 and len(granted) == 120
    assert ledgers[1].status().calls == 50


def test_a_vendors_quota_spent_answer_wins_over_our_count(engine):
    ledger = Ledger(engine, "alphavantage", calls_per_day=25, clock=Clock())
    ledger.record(2)
    ledger.mark_exhausted()
    assert ledger.remaining() == 0 and not ledger.try_spend()
    assert ledger.status().calls == 25
    upgraded = Ledger(engine, "alphavantage", calls_per_day=75, clock=Clock())  # a paid plan, mid-day
    assert upgraded.remaining() == 50


def test_without_a_configured_limit_the_vendors_answer_still_stops_the_day(engine):
    clock = Clock()
    ledger = Ledger(engine, "stooq", calls_per_day=None, clock=clock)
    assert ledger.remaining() is None
    ledger.record(7)
    ledger.mark_exhausted()
    assert ledger.remaining() == 0 and not ledger.try_spend()
    again = Ledger(engine, "stooq", calls_per_day=None, clock=clock)  # a second run the same day
    assert again.remaining() == 0
    clock.now += dt.timedelta(days=1)
    assert ledger.remaining() is None and ledger.try_spend()

    fresh = Ledger(engine, "yahoo", calls_per_day=None, clock=Clock())
    fresh.mark_exhausted()  # before any call was counted
    assert fresh.remaining() == 0


def test_describe_says_what_is_spent_and_when_it_resets(engine):
    ledger = Ledger(engine, "alphavantage", calls_per_day=25, clock=Clock())
    assert ledger.describe() == "alphavantage has 25 of 25 calls left; resets at 00:00 UTC (in 1 h)"
    ledger.record(25)
    assert ledger.describe().startswith("alphavantage quota spent (25 of 25 calls); resets at 00:00 UTC (in 1 h);")
    assert "STOCKPIPE_ALPHAVANTAGE_CALLS_PER_DAY" in ledger.describe()
    ny = Ledger(engine, "stooq", calls_per_day=None, reset_zone="America/New_York",
                clock=Clock(NOW - dt.timedelta(minutes=75)))
    assert ny.describe() == ("stooq made 0 calls in this quota day (no daily limit set); "
                             "resets at 00:00 EST (in 7 h 15 min)")


def test_bad_settings_are_config_errors(engine):
    with pytest.raises(ConfigError):
        Ledger(engine, "stooq", calls_per_day=10, reset_zone="Mars/Olympus_Mons")
    with pytest.raises(ConfigError):
        Ledger(engine, "stooq", calls_per_day=-1)


def test_migration_0003_adds_and_removes_only_the_quota_ledger(database_url: str):
    eng = warehouse.create(database_url)
    try:
        warehouse.upgrade(eng, "0003")
        assert warehouse.current_revision(eng) == "0003"
        inspector = sa.inspect(eng)
        assert inspector.get_pk_constraint("quota_ledger")["constrained_columns"] == ["provider", "window_start"]
        warehouse.downgrade(eng, "0002")
        tables = set(sa.inspect(eng).get_table_names())
        assert "quota_ledger" not in tables and "prices_daily" in tables
        warehouse.upgrade(eng)
        assert "quota_ledger" in set(sa.inspect(eng).get_table_names())
    finally:
        eng.dispose()
