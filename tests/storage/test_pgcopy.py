"""The binary COPY encoder on a real PostgreSQL: whatever Arrow array a column arrives as (the
lake's reads hand string, large_string, string_view or dictionary text, sliced arrays with
offsets, NULLs in any column, dates, timestamps in any unit and zone, ints of any width,
bools), COPY then SELECT gives back the rows' values. One round trip per representation,
then seeded random tables mixing them (property-style: random types, NULLs, slices, chunks
and widths, so a text column of 8-byte and shorter values, "dividend" beside "split",
is among them)."""

from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from helpers import as_utc
from stockpipe.models import DATASETS, Dataset, Type, arrow_schema
from stockpipe.storage import pgcopy

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 23, 23, 0, 0, 123456, tzinfo=UTC)
# Text before and after each fixed-width column, so a mis-sized text value shifts what follows.
COLUMNS = (("t", Type("str", nullable=True, size=64)), ("f", Type("float", nullable=True)),
           ("i4", Type("int", nullable=True, size=4)), ("i8", Type("int", nullable=True)),
           ("d", Type("date", nullable=True)), ("ts", Type("ts", nullable=True)),
           ("j", Type("json", nullable=True)))
ANY = Dataset("any_kind", COLUMNS, ("t",))
SQL = "t text, f float8, i4 int4, i8 int8, d date, ts timestamptz, j text"

TEXTS = ["dividend", "split", "", "ü" * 10, 'a "quoted", b', "line\nbreak\r\n", "\\.", "x" * 64, "12345678"]
FLOATS = [1.5, -0.0, 1e300, -2.25e-300, 3.0, 0.1]
INTS4 = [0, 1, -1, 2**31 - 1, -(2**31), 7]
INTS8 = [0, 2**40, -(2**63), 2**63 - 1, 5, -3]
DATES = [dt.date(1999, 12, 31), dt.date(2000, 1, 1), dt.date(1970, 1, 1), dt.date(2024, 2, 29), dt.date(1, 1, 1),
         dt.date(9999, 12, 31)]
STAMPS = [T0, dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
          dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2100, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
          dt.datetime(1960, 6, 1, 0, 0, 0, 1, tzinfo=UTC)]


def pick(values: list, n: int, rng: random.Random, nulls: float) -> list:
    return [None if rng.random() < nulls else rng.choice(values) for _ in range(n)]


def dirty_null_strings(values: list) -> pa.Array:
    """A string array whose NULL slots still hold bytes (Arrow allows it; a kernel's output may)."""
    data = b"".join(("garbage!" if v is None else v).encode() for v in values)
    offsets, at = [0], 0
    for v in values:
        at += len(("garbage!" if v is None else v).encode())
        offsets.append(at)
    valid = pa.array([v is not None for v in values]).buffers()[1]
    return pa.Array.from_buffers(pa.string(), len(values), [valid, pa.py_buffer(pa.array(offsets, pa.int32())
                                                                                 .buffers()[1]), pa.py_buffer(data)],
                                 null_count=sum(v is None for v in values))


# Each column's representations: name -> (python values -> Arrow array). Timestamps and dates
# are the same instants/days in every representation.
TEXT_TYPES = {
    "string": lambda v: pa.array(v, pa.string()),
    "large_string": lambda v: pa.array(v, pa.large_string()),
    "string_view": lambda v: pa.array(v, pa.string_view()),
    "dictionary": lambda v: pa.array(v, pa.string()).dictionary_encode(),
    "dictionary_int8": lambda v: pa.array(v, pa.string()).dictionary_encode().cast(pa.dictionary(pa.int8(),
                                                                                                  pa.string())),
    "dirty_nulls": dirty_null_strings,
}
FLOAT_TYPES = {
    "float64": lambda v: pa.array(v, pa.float64()),
    "float32": lambda v: pa.array(v, pa.float32()),
    "nan_for_null": lambda v: pa.array([math.nan if x is None else x for x in v], pa.float64()),
}
INT_TYPES = {name: (lambda t: lambda v: pa.array(v, pa.int64()).cast(t, safe=False))(t)
             for name, t in (("int64", pa.int64()), ("int8", pa.int8()), ("int16", pa.int16()),
                             ("int32", pa.int32()), ("uint8", pa.uint8()), ("uint32", pa.uint32()))}
INT_TYPES["bool"] = lambda v: pa.array([None if x is None else bool(x) for x in v], pa.bool_())
DATE_TYPES = {"date32": lambda v: pa.array(v, pa.date32()), "date64": lambda v: pa.array(v, pa.date64())}
TS_TYPES = {
    f"{unit}_{zone or 'naive'}": (lambda unit, zone: lambda v: pa.array(v, pa.timestamp("us", tz="UTC")).cast(
        pa.timestamp(unit, tz="UTC")).cast(pa.timestamp(unit, tz=zone)))(unit, zone)
    for unit in ("us", "ns", "ms", "s") for zone in ("UTC", "America/New_York", "Asia/Kolkata", None)
}
KINDS = {"t": TEXT_TYPES, "f": FLOAT_TYPES, "i4": INT_TYPES, "i8": INT_TYPES, "d": DATE_TYPES, "ts": TS_TYPES,
         "j": TEXT_TYPES}
VALUES = {"t": TEXTS, "f": FLOATS, "i4": INTS4, "i8": INTS8, "d": DATES, "ts": STAMPS, "j": TEXTS}


def fit(column: str, representation: str, values: list) -> list:
    """The values a representation can hold exactly (an int8 holds small ints, a second-unit
    timestamp whole seconds, a bool 0/1, a date64's days from 1970 on are fine)."""
    if representation.startswith(("int8", "uint8")):
        return [None if v is None else abs(v) % 100 for v in values]
    if representation.startswith(("int16", "int32", "uint32")):
        return [None if v is None else abs(v) % 30_000 for v in values]
    if representation == "float32":
        with np.errstate(over="ignore"):  # 1e300 is inf in a float32
            return [None if v is None else float(np.float32(v)) for v in values]
    if representation == "bool":
        return [None if v is None else int(v != 0) for v in values]
    if column == "ts" and not representation.startswith("us"):
        whole = {"ns": dt.timedelta(0), "ms": dt.timedelta(microseconds=1000), "s": dt.timedelta(seconds=1)}
        step = whole[representation.split("_")[0]]
        return [None if v is None or (step and (v - STAMPS[1]) % step) else v for v in values]
    return values


def table_of(columns: dict[str, list], types: dict[str, str], rng: random.Random | None = None) -> pa.Table:
    """The columns as the named representations; with `rng`, each column a slice of a longer
    array (an offset into its buffers) and the table split into chunks at random rows."""
    arrays = {}
    for name, values in columns.items():
        make = KINDS[name][types.get(name, next(iter(KINDS[name])))]
        if rng is None:
            arrays[name] = make(values)
            continue
        before, after = rng.randrange(0, 7), rng.randrange(0, 7)
        padding = fit(name, types.get(name, next(iter(KINDS[name]))), pick(VALUES[name], before + after, rng, 0.3))
        arrays[name] = make(padding[:before] + values + padding[before:]).slice(before, len(values))
    table = pa.table(arrays)
    if rng is None or table.num_rows < 2:
        return table
    cuts = sorted(rng.sample(range(1, table.num_rows), min(3, table.num_rows - 1)))
    return pa.concat_tables([table.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, table.num_rows])])


def round_trip(eng, table: pa.Table) -> list[dict]:
    with eng.begin() as conn:
        conn.exec_driver_sql(f"CREATE TEMP TABLE t ({SQL}, n serial)")
        assert pgcopy.copy_rows(conn, "t", ANY, table) == table.num_rows
        got = [dict(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(ANY.column_names)} FROM t ORDER BY n")
               .mappings()]
        conn.exec_driver_sql("DROP TABLE t")
    return [{k: as_utc(v) if isinstance(v, dt.datetime) else v for k, v in row.items()} for row in got]


def expected(columns: dict[str, list]) -> list[dict]:
    """What the warehouse holds for the rows: NaN is NULL (as SQLite stores it)."""
    clean = {k: [None if isinstance(v, float) and math.isnan(v) else v for v in vs] for k, vs in columns.items()}
    return [dict(zip(clean, row)) for row in zip(*clean.values())]


@pytest.fixture(scope="module")
def pg():
    import os

    url = os.environ.get("STOCKPIPE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("STOCKPIPE_TEST_DATABASE_URL is not set")
    eng = sa.create_engine(url)
    yield eng
    eng.dispose()


def columns_for(rng: random.Random, n: int, nulls: float, types: dict[str, str]) -> dict[str, list]:
    """n random values per column from a random few of its VALUES (so that a column's widest
    text varies: 8 bytes, shorter, longer), with NULLs at the rate `nulls`."""
    return {name: fit(name, types.get(name, next(iter(KINDS[name]))),
                      pick(rng.sample(VALUES[name], rng.randint(1, len(VALUES[name]))), n, rng, nulls))
            for name in VALUES}


@pytest.mark.parametrize("column, representation",
                         [(column, r) for column in ("t", "f", "i4", "d", "ts") for r in KINDS[column]])
def test_every_arrow_representation_round_trips(pg, column, representation):
    rng = random.Random(f"{column}-{representation}")
    columns = columns_for(rng, 40, 0.25, {column: representation})
    columns[column] = fit(column, representation, [*VALUES[column], None, *columns[column]])  # every value
    for name in columns:
        columns[name] += [None] * (len(columns[column]) - len(columns[name]))
    assert round_trip(pg, table_of(columns, {column: representation})) == expected(columns)
    assert round_trip(pg, table_of(columns, {column: representation}, rng)) == expected(columns)  # sliced


@pytest.mark.parametrize("seed", range(25))
def test_random_tables_round_trip(pg, seed):
    """Random representations per column, NULL rates from none to all, slices, chunks (past
    the encoder's block of 4,096 rows)."""
    rng = random.Random(seed)
    types = {name: rng.choice(list(KINDS[name])) for name in KINDS}
    n = rng.choice([1, 2, 9, 100, 5_000])
    columns = columns_for(rng, n, rng.choice([0.0, 0.1, 0.5, 1.0]), types)
    table = table_of(columns, types, rng)
    assert round_trip(pg, table) == expected(columns), types


def test_a_text_column_of_eight_byte_and_shorter_values_keeps_the_columns_after_it(pg):
    """The lake's corporate actions: `kind` is "dividend" (8 bytes) or "split" (5), the
    float `value` after it (the ProtocolViolation "insufficient data left in message,
    COPY corporate_actions, line 1, column value")."""
    actions = DATASETS["corporate_actions"]
    rows = [{"symbol": "AAPL", "date": dt.date(2024, 1, d), "kind": kind, "value": 0.25 * d, "provider": "demo",
             "fetched_at": T0} for d, kind in ((2, "split"), (3, "dividend"), (4, "split"))]
    with pg.begin() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE ca (symbol text, date date, kind text, value float8, "
                             "provider text, fetched_at timestamptz)")
        pgcopy.copy_rows(conn, "ca", actions, pa.Table.from_pylist(rows, schema=arrow_schema(actions)))
        got = conn.exec_driver_sql("SELECT kind, value FROM ca ORDER BY date").all()
        conn.exec_driver_sql("DROP TABLE ca")
    assert [tuple(r) for r in got] == [("split", 0.5), ("dividend", 0.75), ("split", 1.0)]


def test_encoder_streams_chunks_with_one_header_and_trailer():
    table = pa.table({name: pa.array(pick(VALUES[name], 600, random.Random(1), 0.1), pa.string())
                      if name in ("t", "j") else KINDS[name][next(iter(KINDS[name]))](
                          fit(name, next(iter(KINDS[name])), pick(VALUES[name], 600, random.Random(1), 0.1)))
                      for name in VALUES})
    chunks = list(pgcopy.encode(ANY, table, rows_per_chunk=64))
    assert chunks[0] == pgcopy.HEADER and chunks[-1] == pgcopy.TRAILER
    assert len(chunks) > 10 and all(pgcopy.HEADER not in c for c in chunks[1:])
