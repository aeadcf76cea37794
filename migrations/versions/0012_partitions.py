"""prices_daily and indicators_daily range-partitioned by month on PostgreSQL (no-op on SQLite).

Each table is rebuilt as a `PARTITION BY RANGE (date)` parent keeping every row: a month
partition for every month from its first row to its last, and a DEFAULT partition, all in
the schema stockpipe_partitions (storage/partitions.py; loads create later months). Rows
are copied before the primary key is built (one sort per partition, not a btree insert per
row). Everything that hangs on the old table comes back on the new one: its other indexes,
its grants, its comment, and every view (or materialized view) that depends on it, directly
or through another view, recreated from `pg_get_viewdef` with its options, comment and
grants, so views added by any migration survive. Downgrade rebuilds the plain tables the
same way.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

from stockpipe.storage import partitions

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = tuple(partitions.PARTITIONED)

# Every view over the tables, and views over those, each once, deepest last.
_VIEWS = """
WITH RECURSIVE over(oid, depth) AS (
    SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = ANY(%(tables)s::regclass[]) AND r.ev_class <> d.refobjid
    UNION
    SELECT r.ev_class, over.depth + 1 FROM over JOIN pg_depend d ON d.refobjid = over.oid
    JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND r.ev_class <> over.oid
)
SELECT c.oid, format('%%I.%%I', n.nspname, c.relname), c.relkind, pg_get_viewdef(c.oid),
       array_to_string(c.reloptions, ', '), max(over.depth)
FROM over JOIN pg_class c ON c.oid = over.oid JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.reloptions
ORDER BY max(over.depth), c.oid
"""


def _rows(sql: str, **params) -> list:
    return op.get_bind().exec_driver_sql(sql, params).all()


def _run(statement: str) -> None:
    """Run DDL as written: a view's text may hold % or :name, which no layer must rewrite."""
    cursor = op.get_bind().connection.driver_connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def _extras(oid: int, name: str, kind: str = "TABLE") -> list[str]:
    """The statements that put back `oid`'s comment, grants and (non-key) indexes on `name`."""
    out = [f"COMMENT ON {kind} {name} IS {comment}"
           for (comment,) in _rows("SELECT quote_literal(obj_description(%(o)s, 'pg_class'))", o=oid) if comment]
    out += [f"GRANT {privilege} ON {name} TO {grantee}{' WITH GRANT OPTION' if grantable else ''}"
            for privilege, grantee, grantable in _rows(
                "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
                "a.is_grantable FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
                "WHERE c.oid = %(o)s AND a.grantee <> c.relowner", o=oid)]
    out += [definition for (definition,) in _rows(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %(o)s AND NOT i.indisprimary", o=oid)]
    return out


def _capture_views() -> list[list[str]]:
    """For each view over the tables (shallowest first): the statements that recreate it."""
    views = []
    for oid, name, kind, definition, options, _ in _rows(_VIEWS, tables=list(TABLES)):
        noun = "MATERIALIZED VIEW" if kind == "m" else "VIEW"
        with_ = f" WITH ({options})" if options else ""
        views.append([f"DROP {noun} IF EXISTS {name} CASCADE",
                      f"CREATE {noun} {name}{with_} AS {definition.rstrip().rstrip(';')}",
                      *_extras(oid, name, noun)])
    return views


def _rebuild(table: str, partitioned: bool) -> None:
    """Rebuild `table` (partitioned, or plain again) keeping its rows, key, indexes and grants."""
    old = f"{table}_{'unpartitioned' if partitioned else 'partitioned'}"
    (oid,) = _rows("SELECT %(t)s::regclass::oid", t=table)[0]
    key_name, key = _rows("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                          "WHERE conrelid = %(o)s AND contype = 'p'", o=oid)[0]
    extras = _extras(oid, table)
    _run(f"ALTER TABLE {table} RENAME TO {old}")
    like = f"(LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
    if partitioned:
        column = partitions.PARTITIONED[table]
        _run(f'CREATE TABLE {table} {like} PARTITION BY RANGE ("{column}")')
        low, high = _rows(f'SELECT min("{column}"), max("{column}") FROM {old}')[0]
        month = low.replace(day=1) if low else None
        while month is not None and month <= high:
            partitions.create_month(op.get_bind(), table, month)
            month = partitions.next_month(month)
        _run(f"CREATE TABLE {partitions.default_partition(table)} PARTITION OF {table} DEFAULT")
    else:
        _run(f"CREATE TABLE {table} {like}")
    _run(f"INSERT INTO {table} SELECT * FROM {old}")
    _run(f"DROP TABLE {old}")  # its partitions and its key's name go with it
    _run(f"ALTER TABLE {table} ADD CONSTRAINT {key_name} {key}")
    for statement in extras:
        _run(statement)


def _convert(partitioned: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    views = _capture_views()
    for drop, *_ in reversed(views):
        _run(drop)
    if partitioned:
        _run(f"CREATE SCHEMA IF NOT EXISTS {partitions.SCHEMA}")
    for table in TABLES:
        _rebuild(table, partitioned)
    if not partitioned and not _rows("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                     "WHERE n.nspname = %(s)s", s=partitions.SCHEMA):
        _run(f"DROP SCHEMA IF EXISTS {partitions.SCHEMA}")
    for _, *create in views:
        for statement in create:
            _run(statement)


def upgrade() -> None:
    _convert(partitioned=True)


def downgrade() -> None:
    _convert(partitioned=False)
