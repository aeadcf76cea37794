"""Migration 0012 on a real PostgreSQL: prices_daily and indicators_daily become month-
partitioned keeping every row, every view over them (however deep), their indexes, grants and
comments; downgrade turns them back; SQLite is left as it was."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from stockpipe.models import INDICATOR_COLUMNS
from stockpipe.storage import partitions, schema, warehouse

T0 = dt.datetime(2026, 11, 23, 23, 0, 0, 123456, tzinfo=dt.timezone.utc)
DAYS = [dt.date(2023, 12, 29), dt.date(2024, 1, 2), dt.date(2024, 1, 31), dt.date(2024, 3, 1)]  # February: none
VIEWS = {  # views other migrations (or a user) might add: over a view, with % and :: in their text
    "v_a_symbols": "CREATE VIEW v_a_symbols AS SELECT symbol, date, close, 'x:y'::text AS tag "
                   "FROM prices_daily_adjusted WHERE symbol LIKE 'A%'",
    "v_latest": "CREATE VIEW v_latest AS SELECT s.symbol, max(s.date) AS date, max(i.rsi_14) AS rsi "
                "FROM v_a_symbols s JOIN indicators_daily i USING (symbol, date) GROUP BY s.symbol",
    "mv_counts": "CREATE MATERIALIZED VIEW mv_counts AS SELECT symbol, count(*) AS n FROM prices_daily GROUP BY symbol",
}


@pytest.fixture
def pg(postgres_url: str):
    eng = warehouse.create(postgres_url)
    yield eng
    eng.dispose()


def fill_0011(eng) -> None:
    """Rows, views, an index, a grant and comments on a database at 0011 (plain tables)."""
    warehouse.upgrade(eng, "0011")
    prices = [{"symbol": s, "date": d, "open": 1.0 + i, "high": 2.0, "low": 0.5, "close": 1.5 * (i + 1),
               "adj_close": None if i % 2 else 1.25, "volume": 10 * i, "provider": "demo", "fetched_at": T0,
               "split_basis": DAYS[-1] if i == 0 else None}
              for s in ("AAA", "ABB", "BBB") for i, d in enumerate(DAYS)]
    indicators = [{"symbol": r["symbol"], "date": r["date"], "computed_at": T0,
                   **{c: (None if k % 3 == 0 else k * r["close"]) for k, c in enumerate(INDICATOR_COLUMNS)}}
                  for r in prices]
    with eng.begin() as conn:
        conn.execute(schema.prices_daily.insert(), prices)
        conn.execute(schema.indicators_daily.insert(), indicators)
        for statement in VIEWS.values():
            conn.exec_driver_sql(statement.replace("%", "%%"))
        conn.exec_driver_sql("CREATE INDEX ix_mv_counts_symbol ON mv_counts (symbol)")
        conn.exec_driver_sql("CREATE INDEX ix_prices_daily_close ON prices_daily (close)")
        conn.exec_driver_sql("GRANT SELECT ON prices_daily, v_latest TO PUBLIC")
        conn.exec_driver_sql("COMMENT ON VIEW v_latest IS 'the newest A bar''s RSI'")
        conn.exec_driver_sql("COMMENT ON TABLE indicators_daily IS 'indicators'")


def snapshot(eng) -> dict:
    """Everything the conversion must keep, read back."""
    with eng.connect() as conn:
        read = lambda sql: [tuple(r) for r in conn.exec_driver_sql(sql).all()]  # noqa: E731
        return {
            "prices": read("SELECT * FROM prices_daily ORDER BY symbol, date"),
            "indicators": read(f"SELECT symbol, date, {', '.join(INDICATOR_COLUMNS)}, computed_at "
                               "FROM indicators_daily ORDER BY symbol, date"),
            **{name: read(f"SELECT * FROM {name} ORDER BY 1, 2")
               for name in (*VIEWS, "prices_daily_adjusted", "daily_analytics")},  # 0002's, 0006's
            "indexes": read("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid IN "
                            "('prices_daily'::regclass, 'indicators_daily'::regclass, 'mv_counts'::regclass) ORDER BY 1"),
            "grants": read("SELECT has_table_privilege('public', 'prices_daily', 'SELECT'), "
                           "has_table_privilege('public', 'v_latest', 'SELECT')"),
            "comments": read("SELECT obj_description('v_latest'::regclass), obj_description('indicators_daily'::regclass)"),
        }


def kinds(eng) -> dict[str, str]:
    with eng.connect() as conn:
        return dict(conn.exec_driver_sql("SELECT relname, relkind::text FROM pg_class WHERE relname IN "
                                         "('prices_daily', 'indicators_daily')").all())


def test_0012_partitions_by_month_keeping_every_row_view_index_grant_and_comment(pg):
    fill_0011(pg)
    before = snapshot(pg)
    assert len(before["prices"]) == 12 and len(before["v_latest"]) == 2 and before["grants"] == [(True, True)]
    assert len(before["daily_analytics"]) == 12

    warehouse.upgrade(pg)
    assert kinds(pg) == {"prices_daily": "p", "indicators_daily": "p"}
    assert snapshot(pg) == before
    with pg.connect() as conn:
        months = sorted(partitions.ranges(conn, "prices_daily"))
        placed = dict(conn.exec_driver_sql("SELECT tableoid::regclass::text, count(*) FROM indicators_daily "
                                           "GROUP BY 1").all())
    assert months == [(dt.date(2023, 12, 1), dt.date(2024, 1, 1)), (dt.date(2024, 1, 1), dt.date(2024, 2, 1)),
                      (dt.date(2024, 2, 1), dt.date(2024, 3, 1)), (dt.date(2024, 3, 1), dt.date(2024, 4, 1))]
    assert placed == {f"{partitions.SCHEMA}.indicators_daily_2023_12": 3,
                      f"{partitions.SCHEMA}.indicators_daily_2024_01": 6,
                      f"{partitions.SCHEMA}.indicators_daily_2024_03": 3}
    assert set(sa.inspect(pg).get_table_names()) == set(schema.metadata.tables) | {"alembic_version"}

    warehouse.downgrade(pg, "0011")
    assert kinds(pg) == {"prices_daily": "r", "indicators_daily": "r"}
    assert snapshot(pg) == before
    with pg.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regnamespace(%(s)s)", {"s": partitions.SCHEMA}).scalar() is None

    warehouse.upgrade(pg)
    assert snapshot(pg) == before


def test_0012_on_empty_tables_leaves_only_the_default_partitions(pg):
    warehouse.upgrade(pg)
    with pg.connect() as conn:
        assert partitions.ranges(conn, "prices_daily") == [] and partitions.ranges(conn, "indicators_daily") == []
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'prices_daily'::regclass").scalar() == 1


def test_0012_is_a_no_op_on_sqlite(tmp_path):
    eng = warehouse.create(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        warehouse.upgrade(eng, "0011")
        with eng.begin() as conn:
            conn.execute(schema.prices_daily.insert().values(
                symbol="AAA", date=DAYS[0], open=1.0, high=2.0, low=0.5, close=1.5, volume=1, provider="demo",
                fetched_at=T0))
        warehouse.upgrade(eng)
        assert partitions.PARTITIONED and warehouse.current_revision(eng) == warehouse.head_revision()
        with eng.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.prices_daily)).scalar() == 1
        warehouse.downgrade(eng, "0011")
    finally:
        eng.dispose()
