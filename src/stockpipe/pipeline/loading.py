"""`load`: upsert what changed in the lake into the warehouse, dataset by dataset."""

from __future__ import annotations

from .. import logs
from ..errors import ExitCode
from ..models import LOAD_ORDER, StageResult
from ..storage import state, warehouse
from ..storage.lake import Lake
from .context import Context, chunks


@logs.stage("load")
def load_stage(ctx: Context) -> StageResult:
    """Upsert each dataset's changed symbols from the lake into the warehouse, in LOAD_ORDER.

    A `replaced` dataset (adjustments) is replaced rather than upserted: for each symbol loaded, its warehouse
    spans are deleted and the lake's inserted in one transaction (with loaded_version), so
    a span a new split made obsolete vanishes and the view never mixes old and new spans.
    Only symbols whose lake_version changed are loaded, so a re-run writes nothing.
    rows_loaded counts rows inserted or updated; rows_written adds the spans deleted.
    """
    lake, counts, deleted = Lake(ctx.settings.lake_dir), {}, 0
    for dataset in LOAD_ORDER:
        with ctx.engine.connect() as conn:
            pending = ctx.mine(state.symbols_where(conn, dataset.name, "unloaded"))
        written = 0
        for chunk in chunks(pending):
            with ctx.engine.begin() as conn:
                versions = state.read_states(conn, dataset.name, chunk)
                if dataset.replaced:
                    gone, rows = warehouse.replace(conn, dataset, chunk, lake.read(dataset, chunk))
                    deleted, written = deleted + gone, written + rows
                else:
                    written += warehouse.upsert(conn, dataset, lake.read(dataset, chunk))
                state.save_states(conn, [{"symbol": s, "dataset": dataset.name,
                                          "loaded_version": versions[s]["lake_version"]} for s in chunk])
        counts[f"{dataset.name}_written"] = written
        ctx.progress("load", 1, 1)
    loaded = sum(counts.values())
    counts["adjustments_deleted"] = deleted
    counts["rows_loaded"], counts["rows_written"] = loaded, loaded + deleted
    return StageResult("load", ExitCode.OK, counts)
