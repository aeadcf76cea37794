"""`load`: upsert what changed in the lake into the warehouse, dataset by dataset."""

from __future__ import annotations

from .. import logs
from ..errors import ExitCode
from ..models import DATASETS, StageResult
from ..storage import state, warehouse
from ..storage.lake import Lake
from .context import Context, chunks

PRICES, ACTIONS, INDICATORS, REJECTS = (DATASETS[n] for n in ("prices_daily", "corporate_actions", "indicators_daily",
                                                              "rejects"))
LOAD_ORDER = (PRICES, ACTIONS, INDICATORS, REJECTS, DATASETS["quotes"], DATASETS["quotes_daily"],
              DATASETS["prices_intraday"])


@logs.stage("load")
def load_stage(ctx: Context) -> StageResult:
    """Upsert each dataset's changed symbols from the lake into the warehouse.

    `adjustments` is replaced rather than upserted: for each symbol loaded, its warehouse
    spans are deleted and the lake's inserted in one transaction (with loaded_version), so
    a span a new split made obsolete vanishes and the view never mixes old and new spans.
    Only symbols whose lake_version changed are loaded, so a re-run writes nothing.
    rows_loaded counts rows inserted or updated; rows_written adds the spans deleted.
    """
    from ..storage import schema

    adjustments = DATASETS["adjustments"]
    order = list(LOAD_ORDER)
    if adjustments.name not in {d.name for d in order}:  # after the actions it derives from
        order.insert(order.index(ACTIONS) + 1, adjustments)
    lake, counts, deleted = Lake(ctx.settings.lake_dir), {}, 0
    for dataset in order:
        with ctx.engine.connect() as conn:
            pending = ctx.mine(state.symbols_where(conn, dataset.name, "unloaded"))
        written = 0
        for chunk in chunks(pending):
            with ctx.engine.begin() as conn:
                versions = state.read_states(conn, dataset.name, chunk)
                if dataset.name == adjustments.name:
                    table = schema.adjustments
                    for start in range(0, len(chunk), 500):  # far below every driver's parameter limit
                        part = list(chunk[start:start + 500])
                        deleted += max(conn.execute(table.delete().where(table.c.symbol.in_(part))).rowcount, 0)
                written += warehouse.upsert(conn, dataset, lake.read(dataset, chunk))
                state.save_states(conn, [{"symbol": s, "dataset": dataset.name,
                                          "loaded_version": versions[s]["lake_version"]} for s in chunk])
        counts[f"{dataset.name}_written"] = written
        ctx.progress("load", 1, 1)
    loaded = sum(counts.values())
    counts["adjustments_deleted"] = deleted
    counts["rows_loaded"], counts["rows_written"] = loaded, loaded + deleted
    return StageResult("load", ExitCode.OK, counts)
