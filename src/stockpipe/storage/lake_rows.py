"""Rows shaped for the lake's tables and back (storage/lake.py uses them)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..models import Dataset, arrow_schema
from .lake_ranges import MONTH


def source_rows(dataset: Dataset, rows: pd.DataFrame | pa.Table) -> pa.Table:
    """`rows` as the table's schema: deduplicated on the key (the last wins), sorted by it (so
    each file a merge writes is, for one-symbol reads by row-group statistics), with the
    month partition, and without rows whose partition column is empty (they have no month)."""
    schema = arrow_schema(dataset)
    if isinstance(rows, pd.DataFrame):
        rows = pa.Table.from_pandas(rows.reindex(columns=dataset.column_names), schema=schema, preserve_index=False)
    else:
        rows = conform(rows, schema)
    rows = rows.filter(pc.is_valid(rows[dataset.partition]))
    if rows.num_rows:
        numbered = rows.append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
        last = numbered.group_by(list(dataset.key), use_threads=False).aggregate([("__row", "max")])["__row_max"]
        rows = rows.take(pc.take(last, pc.sort_indices(last))).sort_by([(k, "ascending") for k in dataset.key])
    return rows.append_column(MONTH, pc.strftime(rows[dataset.partition], format="%Y-%m"))


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast what delta-rs hands back (string_view, large_string, other timestamp units) to
    the dataset's own types; a column the table predates (added by a later release, e.g.
    prices_daily.split_basis) reads as nulls until a write adds it (`merge_schema`)."""
    return pa.Table.from_arrays([table[name].cast(field.type) if name in table.column_names
                                 else pa.nulls(table.num_rows, field.type) for name, field in zip(schema.names, schema)],
                                schema=schema)


def to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(timestamp_as_object=False, date_as_object=False)
