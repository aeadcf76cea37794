"""The BI views (migration 0006): daily_analytics and latest_quotes give the same rows on
SQLite and PostgreSQL, hold what they promise, and go away on downgrade."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math

import pytest
import sqlalchemy as sa

from conftest import clock
from stockpipe import pipeline
from stockpipe.errors import ExitCode
from stockpipe.storage import schema, views, warehouse

UTC = dt.timezone.utc
SYMBOLS = ("AAPL", "MSFT")
QUOTES = [  # (symbol, minutes after 14:30 UTC on 2026-11-23, price, prev_close, change, change_pct)
    ("AAPL", 0, 100.0, 98.0, None, None),
    ("AAPL", 5, 101.0, 98.0, None, None),  # the newest AAPL: change computed from prev_close
    ("MSFT", 0, 50.0, 51.0, -1.0, -1.9608),
    ("MSFT", 9, 49.5, 51.0, -1.5, -2.9412),  # the newest MSFT: the vendor's change kept
    ("IBM", 3, 10.0, None, None, None),  # no previous close: no change
]


def fill(url: str, make_settings, data_dir) -> None:
    settings = make_settings(database_url=url, data_dir=data_dir, symbols=SYMBOLS, history_days=120)
    assert pipeline.run(settings, clock=clock).exit_code == ExitCode.OK
    with warehouse.create(url).begin() as conn:
        conn.execute(schema.quotes.insert(), [
            {"symbol": s, "ts": dt.datetime(2026, 11, 23, 14, 30, tzinfo=UTC) + dt.timedelta(minutes=m), "price": p,
             "prev_close": prev, "change": ch, "change_pct": pct, "provider": "test"}
            for s, m, p, prev, ch, pct in QUOTES])


def read(url: str, view: str) -> list[tuple]:
    table = views.VIEWS[view]
    with warehouse.create(url).connect() as conn:
        rows = conn.execute(sa.select(table).order_by(*(table.c[k] for k in ("symbol", "date" if "date" in table.c
                                                                              else "ts")))).all()
    return [tuple(_rounded(v) for v in row) for row in rows]


def _rounded(value):
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.10g}")
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def test_the_views_give_the_same_rows_on_sqlite_and_postgresql(make_settings, postgres_url, tmp_path):
    sqlite_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    for url, name in ((sqlite_url, "a"), (postgres_url, "b")):
        fill(url, make_settings, tmp_path / name)
    for view in ("daily_analytics", "latest_quotes"):
        on_sqlite, on_postgres = read(sqlite_url, view), read(postgres_url, view)
        assert on_sqlite and on_sqlite == on_postgres, view


@pytest.fixture
def filled(make_settings, database_url, tmp_path):
    fill(database_url, make_settings, tmp_path / "data")
    return database_url


def test_daily_analytics_holds_the_closes_the_moving_averages_and_the_indicators(filled):
    table = views.daily_analytics
    with warehouse.create(filled).connect() as conn:
        rows = [r._asdict() for r in conn.execute(sa.select(table).where(table.c.symbol == "AAPL")
                                                  .order_by(table.c.date))]
        adjusted = dict(conn.execute(sa.select(views.prices_daily_adjusted.c.date, views.prices_daily_adjusted.c.close)
                                     .where(views.prices_daily_adjusted.c.symbol == "AAPL")).all())
        held = conn.execute(sa.select(sa.func.count()).select_from(schema.prices_daily)
                            .where(schema.prices_daily.c.symbol == "AAPL")).scalar()
    assert len(rows) == held > 30
    assert all(r["ma7"] is None for r in rows[:6]) and all(r["ma30"] is None for r in rows[:29])
    closes = [adjusted[r["date"]] for r in rows]
    for i in (6, 29, len(rows) - 1):
        assert rows[i]["ma7"] == pytest.approx(sum(closes[i - 6:i + 1]) / 7, rel=1e-12)
    assert rows[-1]["ma30"] == pytest.approx(sum(closes[-30:]) / 30, rel=1e-12)
    assert rows[-1]["adj_close"] == pytest.approx(adjusted[rows[-1]["date"]])
    assert rows[-1]["rsi_14"] is not None and rows[-1]["volatility_30d"] is not None
    assert rows[-1]["provider"] == "demo"


def test_latest_quotes_is_the_newest_quote_per_symbol_with_its_change(filled):
    got = {r[0]: r for r in read(filled, "latest_quotes")}
    assert set(got) == {"AAPL", "MSFT", "IBM"}
    columns = [c.name for c in views.latest_quotes.columns]
    aapl, msft, ibm = (dict(zip(columns, got[s])) for s in ("AAPL", "MSFT", "IBM"))
    assert aapl["price"] == 101.0 and aapl["change"] == 3.0 and aapl["change_pct"] == pytest.approx(100 * 3 / 98)
    assert msft["price"] == 49.5 and msft["change"] == -1.5 and msft["change_pct"] == -2.9412
    assert ibm["change"] is None and ibm["change_pct"] is None
    assert aapl["ts"] == dt.datetime(2026, 11, 23, 14, 35, tzinfo=UTC)


def test_downgrade_drops_the_views_and_upgrade_brings_them_back(engine):
    assert {"daily_analytics", "latest_quotes"} <= set(sa.inspect(engine).get_view_names())
    warehouse.downgrade(engine, "0005")
    assert not {"daily_analytics", "latest_quotes"} & set(sa.inspect(engine).get_view_names())
    assert "prices_daily_adjusted" in sa.inspect(engine).get_view_names()
    warehouse.upgrade(engine)
    assert {"daily_analytics", "latest_quotes"} <= set(sa.inspect(engine).get_view_names())


def test_the_view_tables_match_the_migration():
    path = warehouse.migrations_dir() / "versions" / "0006_views.py"
    spec = importlib.util.spec_from_file_location("migration_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert views.ANALYTICS_INDICATORS == module.INDICATORS
    assert module.revision == "0006" and module.down_revision == "0005"
