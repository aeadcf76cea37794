"""The PostgreSQL load on a real PostgreSQL: a failing encoder, the plain-COPY, fresh-month and
staged paths of upsert and their exact counts, the caller's transaction, month partitions
made as loads need them (the encoder's round trips: test_pgcopy.py; delete_keys on both
dialects: test_warehouse.py)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pyarrow as pa
import pytest
import sqlalchemy as sa

from stockpipe.models import DATASETS, arrow_schema
from stockpipe.storage import partitions, pgcopy, pgload, schema, warehouse

PRICES, INDICATORS = DATASETS["prices_daily"], DATASETS["indicators_daily"]
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 23, 23, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: conftest's `engine` is then a PostgreSQL warehouse at the newest
    revision (prices and indicators partitioned)."""
    return postgres_url


@pytest.fixture
def pg(engine):
    return engine


def bars(symbols=("AAA",), days=(dt.date(2024, 1, 2),), close=100.0, fetched_at=T0) -> pa.Table:
    rows = [{"symbol": s, "date": d, "open": 1.0, "high": 2.0, "low": 0.5, "close": close, "adj_close": None,
             "volume": 7, "provider": "demo", "fetched_at": fetched_at} for s in symbols for d in days]
    return pa.Table.from_pylist(rows, schema=arrow_schema(PRICES))


def upsert(eng, table, dataset=PRICES) -> int:
    with eng.begin() as conn:
        return warehouse.upsert(conn, dataset, table)


def where_rows_are(eng, table="prices_daily") -> dict[str, int]:
    with eng.connect() as conn:
        return dict(conn.exec_driver_sql(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1").all())


def count(eng, table="prices_daily") -> int:
    with eng.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()


# ------------------------------------------------------------------------ encoder


def test_a_failing_encoder_fails_the_copy_and_leaves_nothing(pg, monkeypatch):
    def broken(*_args, **_kwargs):
        yield pgcopy.HEADER
        raise RuntimeError("encoder broke")

    monkeypatch.setattr(pgcopy, "encode", broken)
    with pytest.raises(Exception, match="encoder broke"):
        upsert(pg, bars())
    assert count(pg) == 0


# --------------------------------------------------------------------------- upsert


def test_new_rows_take_the_plain_copy_and_resent_rows_the_staged_path(pg, monkeypatch):
    paths = []
    monkeypatch.setattr(pgload, "merge", lambda *a, _m=pgload.merge: paths.append("staged") or _m(*a))
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(40)]
    assert upsert(pg, bars(symbols=("AAA", "BBB"), days=days)) == 80  # a backfill
    assert upsert(pg, bars(symbols=("CCC",), days=days)) == 40  # more symbols
    assert upsert(pg, bars(symbols=("AAA", "BBB", "CCC"), days=[dt.date(2024, 3, 1)])) == 3  # a new day
    assert paths == []
    assert upsert(pg, bars(symbols=("AAA", "BBB", "CCC"), days=[dt.date(2024, 3, 1)],
                           fetched_at=T0 + dt.timedelta(days=1))) == 0  # the same day re-sent
    assert upsert(pg, bars(symbols=("AAA", "BBB", "CCC"), days=[dt.date(2024, 3, 1)], close=101.0)) == 3  # restated
    mixed = pa.concat_tables([bars(symbols=("AAA",), days=days[:5], close=99.0),  # 5 changed
                              bars(symbols=("AAA",), days=days[5:10]),  # 5 unchanged
                              bars(symbols=("DDD",), days=days[:7])])  # 7 new
    assert upsert(pg, mixed) == 12
    assert paths == ["staged"] * 3
    assert count(pg) == 40 * 3 + 3 + 7


@pytest.mark.parametrize("statement", ["on_conflict", "merge"])
def test_the_staged_statements_write_exactly_the_rows_that_differ(pg, statement):
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(10)]
    with pg.begin() as conn:
        assert pgload.merge(conn, PRICES, bars(symbols=("AAA", "BBB"), days=days), statement) == 20
        assert pgload.merge(conn, PRICES, bars(symbols=("AAA", "BBB"), days=days, fetched_at=T0 + dt.timedelta(1)),
                            statement) == 0
        mixed = pa.concat_tables([bars(symbols=("AAA",), days=days[:4], close=1.0), bars(symbols=("BBB",), days=days),
                                  bars(symbols=("CCC",), days=days[:3])])
        assert pgload.merge(conn, PRICES, mixed, statement) == 4 + 3
    with pg.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), sum(close) FROM prices_daily").one() == (23, 4 * 1.0 + 19 * 100.0)


def test_a_key_that_appears_after_the_probe_falls_back_to_the_staged_path(pg, monkeypatch):
    """A concurrent writer may add a key between the probe and the COPY: the COPY fails on the
    primary key, is rolled back to its savepoint, and the staged path writes what differs."""
    assert upsert(pg, bars(days=[dt.date(2024, 1, 2), dt.date(2024, 1, 3)])) == 2
    monkeypatch.setattr(pgload, "_may_exist", lambda *_: False)
    with pg.begin() as conn:
        conn.execute(schema.symbol_state.insert().values(symbol="AAA", dataset="prices_daily"))
        assert warehouse.upsert(conn, PRICES, bars(days=[dt.date(2024, 1, d) for d in (2, 3, 4)], close=5.0)) == 3
    with pg.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), min(close) FROM prices_daily").one() == (3, 5.0)
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.symbol_state)).scalar() == 1


def test_rows_commit_and_roll_back_with_the_callers_other_writes(pg):
    with pytest.raises(RuntimeError):
        with pg.begin() as conn:
            warehouse.upsert(conn, PRICES, bars())
            conn.execute(schema.symbol_state.insert().values(symbol="AAA", dataset="prices_daily", loaded_version=1))
            raise RuntimeError("the load dies before its commit")
    assert count(pg) == 0 and count(pg, "symbol_state") == 0
    with pg.begin() as conn:
        assert warehouse.upsert(conn, PRICES, bars()) == 1
        conn.execute(schema.symbol_state.insert().values(symbol="AAA", dataset="prices_daily", loaded_version=1))
    assert count(pg) == 1 and count(pg, "symbol_state") == 1


def test_replace_then_copy_in_one_transaction(pg):
    spans = DATASETS["adjustments"]
    rows = lambda ends: pa.Table.from_pylist(  # noqa: E731
        [{"symbol": "A", "valid_to": e, "valid_from": dt.date(1900, 1, 1), "price_factor": 0.5,
          "volume_factor": 2.0, "computed_at": T0} for e in ends], schema=arrow_schema(spans))
    with pg.begin() as conn:
        assert warehouse.replace(conn, spans, ["A"], rows([dt.date(2024, 1, 2), dt.date(2024, 3, 4)])) == (0, 2)
        assert warehouse.replace(conn, spans, ["A"], rows([dt.date(2024, 1, 2)])) == (2, 1)


# ----------------------------------------------------------------------- partitions


def test_a_load_into_a_month_without_partition_creates_it_and_the_next(pg):
    with pg.connect() as conn:
        assert partitions.ranges(conn, "prices_daily") == []  # a fresh warehouse: only the default
    assert upsert(pg, bars(symbols=("AAA", "BBB"), days=[dt.date(2031, 7, 30), dt.date(2031, 8, 1)])) == 4
    with pg.connect() as conn:
        held = partitions.ranges(conn, "prices_daily")
    assert sorted(held) == [(dt.date(2031, m, 1), dt.date(2031, m + 1, 1)) for m in (7, 8, 9)]
    assert where_rows_are(pg) == {f"{partitions.SCHEMA}.prices_daily_2031_07": 2,
                                  f"{partitions.SCHEMA}.prices_daily_2031_08": 2}


def test_a_backfill_fills_new_months_before_keying_them_and_the_key_then_holds(pg, monkeypatch):
    filled = []
    attach = partitions.attach
    monkeypatch.setattr(partitions, "attach", lambda conn, table, month, key=(): filled.append((month, bool(key)))
                        or attach(conn, table, month, key=key))
    days = [dt.date(2024, 1, 25) + dt.timedelta(days=i) for i in range(14)]  # January and February
    assert upsert(pg, bars(symbols=("AAA", "BBB"), days=days)) == 28
    assert filled == [(dt.date(2024, 1, 1), True), (dt.date(2024, 2, 1), True), (dt.date(2024, 3, 1), False)]
    with pg.connect() as conn:
        keyed = conn.exec_driver_sql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'prices_daily_pkey'::regclass")
        assert keyed.scalar() == 4  # every partition's key is the parent's (January, February, March, default)
    assert where_rows_are(pg) == {f"{partitions.SCHEMA}.prices_daily_2024_01": 14,
                                  f"{partitions.SCHEMA}.prices_daily_2024_02": 14}
    assert upsert(pg, bars(symbols=("AAA", "BBB"), days=days)) == 0
    assert upsert(pg, bars(symbols=("AAA",), days=days[-2:] + [dt.date(2024, 4, 1)], close=3.0)) == 3  # 2 + April
    with pg.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(schema.prices_daily.insert(), bars(days=days[:1]).to_pylist())


def test_a_streamed_snapshot_fills_new_months_from_every_batch_and_keys_them_once(pg, monkeypatch):
    keyed = []
    attach = partitions.attach
    monkeypatch.setattr(partitions, "attach", lambda conn, table, month, key=(): keyed.append((month, bool(key)))
                        or attach(conn, table, month, key=key))
    assert upsert(pg, bars(symbols=("OLD",), days=[dt.date(2024, 3, 4)])) == 1  # March exists and holds a row
    keyed.clear()
    days = [dt.date(2024, 2, 26) + dt.timedelta(days=i) for i in range(10)]  # February and March
    batches = [bars(symbols=(f"S{i}", f"T{i}"), days=days) for i in range(3)]
    batches.insert(1, bars(symbols=("OLD",), days=[dt.date(2024, 3, 4), dt.date(2024, 3, 5)], close=7.0))
    with pg.begin() as conn:
        assert warehouse.upsert_batches(conn, PRICES, iter(batches)) == 60 + 2
    assert keyed == [(dt.date(2024, 2, 1), True)]  # once, after every batch; April was there already
    assert where_rows_are(pg) == {f"{partitions.SCHEMA}.prices_daily_2024_02": 24,
                                  f"{partitions.SCHEMA}.prices_daily_2024_03": 36 + 2}
    with pg.begin() as conn:
        assert warehouse.upsert_batches(conn, PRICES, iter(batches)) == 0


def test_a_key_twice_in_a_streamed_backfill_fails_when_keyed(pg):
    with pytest.raises(sa.exc.IntegrityError), pg.begin() as conn:
        warehouse.upsert_batches(conn, PRICES, [bars(), bars()])
    assert count(pg) == 0


def test_indicators_land_in_month_partitions_too(pg):
    rows = [{"symbol": "AAA", "date": dt.date(2024, 5, d), "computed_at": T0,
             **{c: (None if d == 2 else float(d)) for c in INDICATORS.column_names[2:-1]}} for d in (2, 3)]
    assert upsert(pg, pa.Table.from_pylist(rows, schema=arrow_schema(INDICATORS)), INDICATORS) == 2
    assert upsert(pg, pa.Table.from_pylist(rows, schema=arrow_schema(INDICATORS)), INDICATORS) == 0
    assert where_rows_are(pg, "indicators_daily") == {f"{partitions.SCHEMA}.indicators_daily_2024_05": 2}


def test_rows_a_hand_written_insert_put_in_the_default_move_to_their_month(pg):
    with pg.begin() as conn:
        conn.execute(schema.prices_daily.insert(), bars(days=[dt.date(2025, 2, 3)]).to_pylist())
    assert where_rows_are(pg) == {f"{partitions.SCHEMA}.prices_daily_default": 1}
    assert upsert(pg, bars(days=[dt.date(2025, 2, 3), dt.date(2025, 2, 4)])) == 1
    assert where_rows_are(pg) == {f"{partitions.SCHEMA}.prices_daily_2025_02": 2}


def test_a_transaction_that_already_holds_the_table_creates_partitions_itself(pg):
    """A second session could not create a partition while this transaction holds a lock on
    the table (it would wait for it forever): the months are created in the transaction."""
    with pg.begin() as conn:
        assert warehouse.upsert(conn, PRICES, bars(days=[dt.date(2024, 1, 2)])) == 1
        assert warehouse.upsert(conn, PRICES, bars(days=[dt.date(2024, 6, 3)])) == 1
    assert where_rows_are(pg) == {f"{partitions.SCHEMA}.prices_daily_2024_01": 1,
                                  f"{partitions.SCHEMA}.prices_daily_2024_06": 1}


def test_shards_loading_the_same_new_month_at_once(pg):
    """Two loads needing the same missing months at once: one creates them, the other finds
    them made; every row lands in its month."""
    days = [dt.date(2030, 1, 1) + dt.timedelta(days=i) for i in range(90)]
    start, errors, written = threading.Barrier(2), [], []

    def shard(symbol: str) -> None:
        try:
            start.wait()
            written.append(upsert(pg, bars(symbols=(symbol,), days=days)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=shard, args=(s,)) for s in ("AAA", "BBB")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and written == [90, 90]
    placed = where_rows_are(pg)
    assert sum(placed.values()) == 180 and not any(name.endswith("_default") for name in placed)


def test_a_shard_that_read_the_table_before_another_fills_new_months_does_not_deadlock(pg):
    """What two shards' loads do (pipeline/loading.py): begin_load, read the table (the
    shard's symbols), then upsert. Without begin_load first, the second shard holds its read
    of the DEFAULT partition while waiting for the partition lock, and the first shard's
    ATTACH waits for that read: PostgreSQL's "deadlock detected"."""
    days = [dt.date(2030, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    first_reading, errors = threading.Event(), []

    def shard(symbol: str, reader: bool) -> None:
        try:
            with pg.begin() as conn:
                warehouse.begin_load(conn, PRICES)
                conn.execute(warehouse.distinct_symbols(PRICES)).all()
                if reader:
                    first_reading.set()
                    time.sleep(1.0)  # the other load has reached its lock (or, without one, its ATTACH)
                assert warehouse.upsert(conn, PRICES, bars(symbols=(symbol,), days=days)) == 60
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    reader = threading.Thread(target=shard, args=("AAA", True))
    reader.start()
    first_reading.wait(10)
    filler = threading.Thread(target=shard, args=("BBB", False))
    filler.start()
    reader.join(60)
    filler.join(60)
    assert errors == [] and count(pg) == 120
