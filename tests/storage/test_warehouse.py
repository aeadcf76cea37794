"""The warehouse on real SQLite and real PostgreSQL: migrations, schema drift, bulk upsert, URLs."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from helpers import as_utc
from stockpipe.errors import ConfigError, DatabaseUnavailableError
from stockpipe.models import DATASETS, LOAD_ORDER, arrow_schema
from stockpipe.storage import schema, warehouse

PRICES = DATASETS["prices_daily"]
REJECTS = DATASETS["rejects"]
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 23, 23, 0, 0, 123456, tzinfo=UTC)
T1 = dt.datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
STOCKPIPE_TABLES = set(schema.metadata.tables)


def price_table(closes=(100.0, 101.5, 99.25), fetched_at=T0, adj_close=None, symbol="AAA") -> pa.Table:
    rows = [
        {"symbol": symbol, "date": dt.date(2026, 11, 17) + dt.timedelta(days=i), "open": 100.0 + i,
         "high": 110.0 + i, "low": 90.0 + i, "close": close, "adj_close": adj_close,
         "volume": 5_000_000_000 + i, "provider": "demo", "fetched_at": fetched_at}
        for i, close in enumerate(closes)
    ]
    return pa.Table.from_pylist(rows, schema=arrow_schema(PRICES))


def upsert(eng, dataset, table) -> int:
    with eng.begin() as conn:
        return warehouse.upsert(conn, dataset, table)


def stored_prices(eng) -> dict[dt.date, dict]:
    p = schema.prices_daily
    with eng.connect() as conn:
        return {r["date"]: dict(r) for r in conn.execute(sa.select(p).order_by(p.c.symbol, p.c.date)).mappings()}


# ------------------------------------------------------------------------ migrations


def test_migrations_upgrade_downgrade_upgrade(database_url: str):
    eng = warehouse.create(database_url)
    try:
        assert warehouse.current_revision(eng) is None
        head = warehouse.head_revision()
        assert head == max(p.name[:4] for p in warehouse.migrations_dir().joinpath("versions").glob("0*.py"))

        warehouse.upgrade(eng)
        assert warehouse.current_revision(eng) == head
        assert STOCKPIPE_TABLES <= set(sa.inspect(eng).get_table_names())

        warehouse.downgrade(eng)
        assert warehouse.current_revision(eng) is None
        left = set(sa.inspect(eng).get_table_names())
        assert left & STOCKPIPE_TABLES == set()
        assert left <= {"alembic_version"}

        warehouse.upgrade(eng)
        assert warehouse.current_revision(eng) == head
        assert set(sa.inspect(eng).get_table_names()) == STOCKPIPE_TABLES | {"alembic_version"}
    finally:
        eng.dispose()


def test_migration_0005_keeps_every_run_and_keys_them_by_invocation(database_url: str):
    eng = warehouse.create(database_url)
    old = ("INSERT INTO pipeline_runs (run_id, command, arguments, provider, started_at, status, exit_code, planned) "
           "VALUES (:r, :c, '{}', 'demo', :t, 'ok', 0, :n)")
    try:
        warehouse.upgrade(eng, "0004")
        with eng.begin() as conn:
            conn.execute(sa.text(old), [{"r": "20261120T2300Z-aaaaaa", "c": "run", "t": T0, "n": 4},
                                        {"r": "20261121T2300Z-bbbbbb", "c": "load", "t": T1, "n": 0}])
        warehouse.upgrade(eng)
        runs = schema.pipeline_runs
        with eng.begin() as conn:
            kept = conn.execute(sa.select(runs.c.id, runs.c.run_id, runs.c.command, runs.c.planned)
                                .order_by(runs.c.id)).all()
            conn.execute(runs.insert().values(run_id="20261120T2300Z-aaaaaa", command="load", arguments="{}",
                                              started_at=T1, status="ok"))  # the same name again: fine now
        assert [tuple(r)[1:] for r in kept] == [("20261120T2300Z-aaaaaa", "run", 4), ("20261121T2300Z-bbbbbb", "load", 0)]
        assert kept[0][0] < kept[1][0]  # ids follow the order the runs started in

        warehouse.downgrade(eng, "0004")  # back to one row per run_id: the latest invocation of each
        with eng.connect() as conn:
            back = conn.execute(sa.text("SELECT run_id, command FROM pipeline_runs ORDER BY run_id")).all()
        assert [tuple(r) for r in back] == [("20261120T2300Z-aaaaaa", "load"), ("20261121T2300Z-bbbbbb", "load")]
    finally:
        eng.dispose()


def test_migrated_database_matches_schema_py_exactly(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, schema.metadata)
    assert diff == []


def _reflects_as(type_, reflected) -> bool:
    """Whether a reflected column type is the one a declared column type makes (SQLite reflects
    DOUBLE as DOUBLE, PostgreSQL as DOUBLE_PRECISION: both are Float)."""
    if type_.kind == "str":
        return isinstance(reflected, sa.String) and reflected.length == type_.size
    if type_.kind == "int":
        return isinstance(reflected, sa.Integer) and isinstance(reflected, sa.BigInteger) == (type_.size != 4)
    kinds = {"date": sa.Date, "float": sa.Float, "json": sa.Text, "ts": sa.DateTime}
    return isinstance(reflected, kinds[type_.kind])


def test_migrated_tables_are_the_datasets_models_declares(engine):
    """models.py is the one declaration of a dataset; the migrations, history written by hand,
    must build exactly it: the columns (in any order: 0002 appended indicators), their types
    and nullability, the key."""
    inspector = sa.inspect(engine)
    assert set(DATASETS) <= set(inspector.get_table_names())
    for dataset in DATASETS.values():
        columns = {c["name"]: c for c in inspector.get_columns(dataset.name)}
        assert sorted(columns) == sorted(dataset.column_names), dataset.name
        assert inspector.get_pk_constraint(dataset.name)["constrained_columns"] == list(dataset.key), dataset.name
        for name, type_ in dataset.columns:
            column = columns[name]
            assert column["nullable"] == (type_.nullable and name not in dataset.key), (dataset.name, name)
            assert _reflects_as(type_, column["type"]), (dataset.name, name, type_, column["type"])
    if engine.dialect.name == "postgresql":
        stamps = [c for c in inspector.get_columns("prices_daily") if c["name"] == "fetched_at"]
        assert stamps[0]["type"].timezone


def test_load_order_is_every_dataset_with_adjustments_right_after_corporate_actions():
    names = [d.name for d in LOAD_ORDER]
    assert sorted(names) == sorted(DATASETS) and names[:3] == ["prices_daily", "corporate_actions", "adjustments"]
    assert [d.name for d in LOAD_ORDER if d.replaced] == ["adjustments"]


def test_migrated_indexes_match_schema_py(engine):
    inspector = sa.inspect(engine)
    for name in ("run_events", "quality_results", "pipeline_runs"):
        indexes = {(i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(name)}
        assert indexes == {(f"ix_{name}_run_id", ("run_id",))}
    assert inspector.get_pk_constraint("pipeline_runs")["constrained_columns"] == ["id"]
    assert inspector.get_pk_constraint("prices_daily")["constrained_columns"] == ["symbol", "date"]
    assert inspector.get_pk_constraint("rejects")["constrained_columns"] == ["run_id", "symbol", "date", "reason"]


def test_sqlite_price_tables_are_without_rowid(tmp_path):
    eng = warehouse.create(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        warehouse.upgrade(eng)
        with eng.connect() as conn:
            ddl = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all())
    finally:
        eng.dispose()
    for name in schema.DATA_TABLES:
        assert "WITHOUT ROWID" in ddl[name], name
    assert "WITHOUT ROWID" not in ddl["pipeline_runs"]


# --------------------------------------------------------------------------- upsert


def test_upsert_writes_new_rows_then_nothing_then_only_the_changed_one(engine):
    assert upsert(engine, PRICES, price_table()) == 3
    first = stored_prices(engine)
    assert sorted(first) == [dt.date(2026, 11, 17), dt.date(2026, 11, 18), dt.date(2026, 11, 19)]

    # The same bars fetched again a day later: fetched_at is volatile, so nothing is written.
    assert upsert(engine, PRICES, price_table(fetched_at=T1)) == 0
    second = stored_prices(engine)
    assert second == first
    assert {as_utc(r["fetched_at"]) for r in second.values()} == {T0}

    assert upsert(engine, PRICES, price_table(closes=(100.0, 101.75, 99.25), fetched_at=T1)) == 1
    third = stored_prices(engine)
    changed = third[dt.date(2026, 11, 18)]
    assert changed["close"] == 101.75
    assert as_utc(changed["fetched_at"]) == T1
    for day in (dt.date(2026, 11, 17), dt.date(2026, 11, 19)):
        assert third[day] == first[day]


def test_upsert_round_trips_values_exactly(engine):
    upsert(engine, PRICES, price_table(closes=(100.125,), adj_close=98.0625))
    row = stored_prices(engine)[dt.date(2026, 11, 17)]
    assert row == {**row, "symbol": "AAA", "open": 100.0, "high": 110.0, "low": 90.0, "close": 100.125,
                   "adj_close": 98.0625, "volume": 5_000_000_000, "provider": "demo"}
    assert as_utc(row["fetched_at"]) == T0  # microseconds kept


def test_null_adj_close_round_trips_as_null_and_compares_as_null(engine):
    assert upsert(engine, PRICES, price_table(closes=(100.0,), adj_close=None)) == 1
    assert stored_prices(engine)[dt.date(2026, 11, 17)]["adj_close"] is None
    with engine.connect() as conn:
        nulls = conn.execute(sa.select(sa.func.count()).where(schema.prices_daily.c.adj_close.is_(None))).scalar()
    assert nulls == 1

    assert upsert(engine, PRICES, price_table(closes=(100.0,), adj_close=None, fetched_at=T1)) == 0
    assert upsert(engine, PRICES, price_table(closes=(100.0,), adj_close=97.5)) == 1
    assert stored_prices(engine)[dt.date(2026, 11, 17)]["adj_close"] == 97.5
    assert upsert(engine, PRICES, price_table(closes=(100.0,), adj_close=None)) == 1
    assert stored_prices(engine)[dt.date(2026, 11, 17)]["adj_close"] is None


def test_upsert_of_nothing_writes_nothing(engine):
    assert upsert(engine, PRICES, arrow_schema(PRICES).empty_table()) == 0
    assert stored_prices(engine) == {}


def test_upsert_ignores_column_order_and_extra_columns(engine):
    table = price_table(closes=(100.0, 101.0))
    shuffled = table.select(list(reversed(table.column_names))).append_column("extra", pa.array([1, 2]))
    assert upsert(engine, PRICES, shuffled) == 2
    assert [r["close"] for r in stored_prices(engine).values()] == [100.0, 101.0]


def test_two_upserts_in_one_transaction(engine):
    with engine.begin() as conn:
        assert warehouse.upsert(conn, PRICES, price_table(symbol="AAA")) == 3
        assert warehouse.upsert(conn, PRICES, price_table(symbol="BBB")) == 3
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.prices_daily)).scalar() == 6


def adjustment_table(symbol: str, ends: list[dt.date]) -> pa.Table:
    rows = [{"symbol": symbol, "valid_to": end, "valid_from": dt.date(1900, 1, 1), "price_factor": 0.5,
             "volume_factor": 2.0, "computed_at": T0} for end in ends]
    return pa.Table.from_pylist(rows, schema=arrow_schema(DATASETS["adjustments"]))


def test_replace_makes_the_rows_all_of_the_symbols_rows_and_keeps_the_others(engine):
    spans, d = DATASETS["adjustments"], dt.date
    with engine.begin() as conn:
        assert warehouse.replace(conn, spans, ["A"], adjustment_table("A", [d(2024, 1, 2), d(2024, 3, 4)])) == (0, 2)
        assert warehouse.replace(conn, spans, ["B"], adjustment_table("B", [d(2024, 2, 2)])) == (0, 1)
    with engine.begin() as conn:  # a new split: A's span to 2024-03-04 is gone, one to 2024-05-06 is new
        assert warehouse.replace(conn, spans, ["A"], adjustment_table("A", [d(2024, 1, 2), d(2024, 5, 6)])) == (2, 2)
    a = schema.adjustments
    with engine.connect() as conn:
        held = conn.execute(sa.select(a.c.symbol, a.c.valid_to).order_by(a.c.symbol, a.c.valid_to)).all()
    assert [tuple(r) for r in held] == [("A", d(2024, 1, 2)), ("A", d(2024, 5, 6)), ("B", d(2024, 2, 2))]


def test_delete_rows_by_keys_deletes_exactly_the_keys_held(engine):
    """The lake's deleted rows applied: keys the table holds go, others count nothing."""
    for symbol in ("AAA", "BBB"):
        upsert(engine, PRICES, price_table(closes=(1.0,) * 5, symbol=symbol))
    gone = pa.table({"symbol": ["AAA", "AAA", "AAA"], "date": [dt.date(2026, 11, 17), dt.date(2026, 11, 18),
                                                                dt.date(2020, 1, 1)]})
    with engine.begin() as conn:
        assert warehouse.delete_rows(conn, PRICES, keys=gone) == 2
        assert warehouse.delete_rows(conn, PRICES, keys=gone) == 0
        assert warehouse.delete_rows(conn, PRICES, keys=gone.slice(0, 0)) == 0
    p = schema.prices_daily
    with engine.connect() as conn:
        held = conn.execute(sa.select(p.c.symbol, sa.func.count()).group_by(p.c.symbol).order_by(p.c.symbol)).all()
    assert [tuple(r) for r in held] == [("AAA", 3), ("BBB", 5)]


def test_replace_with_no_rows_deletes_the_symbols_rows(engine):
    spans = DATASETS["adjustments"]
    with engine.begin() as conn:
        warehouse.replace(conn, spans, ["A"], adjustment_table("A", [dt.date(2024, 1, 2)]))
        assert warehouse.replace(conn, spans, ["A"], arrow_schema(spans).empty_table()) == (1, 0)


RAW_VALUES = [
    '{"close": "1,234.5", "note": "say \\"hi\\"", "open": null}',
    'line one\nline two\r\nline three, with "quotes" and a \\ backslash',
    '\\.',  # COPY's text end-of-data marker must be data here
    "",  # empty string, not NULL
    'ünïcødé, "ok"',
]


def test_rejects_raw_json_round_trips_exactly(engine):
    rows = [
        {"run_id": "20261123T230000Z-abc123", "symbol": "AAA", "date": f"2026-11-{10 + i}",
         "reason": "missing_value", "raw": raw, "provider": "csv", "rejected_at": T0}
        for i, raw in enumerate(RAW_VALUES)
    ]
    rows.append({"run_id": "20261123T230000Z-abc123", "symbol": "AAA", "date": "", "reason": "unparseable",
                 "raw": "a,,b", "provider": "csv", "rejected_at": T0})
    table = pa.Table.from_pylist(rows, schema=arrow_schema(REJECTS))

    assert upsert(engine, REJECTS, table) == len(rows)
    assert upsert(engine, REJECTS, table) == 0

    r = schema.rejects
    with engine.connect() as conn:
        stored = {row.date: row for row in conn.execute(sa.select(r))}
    assert set(stored) == {row["date"] for row in rows}
    for row in rows:
        got = stored[row["date"]]
        assert got.raw == row["raw"]
        assert got.reason == row["reason"]
        assert as_utc(got.rejected_at) == T0


# ------------------------------------------------------------------------ URLs


def test_redact_hides_the_password():
    redacted = warehouse.redact("postgresql+psycopg2://etl:secretpw@db.example:5432/market")
    assert "secretpw" not in redacted
    assert redacted == "postgresql+psycopg2://etl:***@db.example:5432/market"
    assert warehouse.redact("sqlite:////var/lib/stockpipe/w.db") == "sqlite:////var/lib/stockpipe/w.db"


def test_create_hands_out_one_engine_per_database(tmp_path, monkeypatch):
    path = tmp_path / "w.db"
    engine = warehouse.create(f"sqlite:///{path}")
    assert warehouse.create(f"sqlite:///{path}") is engine
    monkeypatch.chdir(tmp_path)
    assert warehouse.create("sqlite:///w.db") is engine  # a relative path names the same file
    assert warehouse.create(f"sqlite:///{tmp_path / 'other.db'}") is not engine
    assert warehouse.create("sqlite://") is not warehouse.create("sqlite://")  # each in-memory one is new


def test_check_reachable_on_a_closed_port_raises_without_the_password():
    eng = warehouse.create("postgresql+psycopg2://u:secretpw@127.0.0.1:1/x")
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            warehouse.check_reachable(eng)
    finally:
        eng.dispose()
    message = str(info.value)
    assert "secretpw" not in message
    assert "postgresql+psycopg2://u:***@127.0.0.1:1/x" in message
    assert info.value.exit_code == 5
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_check_reachable_passes_on_a_live_database(engine):
    assert warehouse.check_reachable(engine) is None


def test_create_on_a_malformed_url_raises_config_error():
    with pytest.raises(ConfigError) as info:
        warehouse.create("notadb://")
    assert "notadb://" in str(info.value)
    assert info.value.exit_code == 4


def test_create_on_a_malformed_url_never_leaks_a_password():
    with pytest.raises(ConfigError) as info:
        warehouse.create("notadb://u:secretpw@host/db")
    assert "secretpw" not in str(info.value)


def test_adjusted_view_applies_the_span_factor(database_url: str):
    """prices_daily_adjusted multiplies each bar by the factor of the span it falls in."""
    import datetime as dt

    eng = warehouse.create(database_url)
    try:
        warehouse.upgrade(eng)
        now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        with eng.begin() as conn:
            conn.execute(schema.prices_daily.insert(), [
                {"symbol": "X", "date": dt.date(2024, 6, d), "open": 100.0, "high": 110.0, "low": 90.0,
                 "close": 100.0, "adj_close": None, "volume": 1000, "provider": "t", "fetched_at": now}
                for d in (3, 4, 5)])
            conn.execute(schema.adjustments.insert(), [
                {"symbol": "X", "valid_from": dt.date(1900, 1, 1), "valid_to": dt.date(2024, 6, 4),
                 "price_factor": 0.1, "volume_factor": 10.0, "computed_at": now}])
            got = conn.exec_driver_sql(
                "SELECT date, close, volume, price_factor FROM prices_daily_adjusted ORDER BY date").fetchall()
        assert [(str(d), c, v, f) for d, c, v, f in got] == [
            ("2024-06-03", 10.0, 10000.0, 0.1), ("2024-06-04", 100.0, 1000.0, 1.0), ("2024-06-05", 100.0, 1000.0, 1.0)]
    finally:
        eng.dispose()
