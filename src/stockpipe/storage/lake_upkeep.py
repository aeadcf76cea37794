"""Upkeep of the lake's Delta tables: retention deletes, vacuum and compaction.

Each works on one dataset's table through `Lake.table` and commits like any write (a
delete is in the change feed, so the next `load` applies it too); a table that does not
exist is left alone.
"""

from __future__ import annotations

import datetime as dt

from ..errors import UnavailableError
from ..models import Dataset
from .lake import Commit, Lake
from .lake_ranges import FILE_BYTES


def delete_before(lake: Lake, dataset: Dataset, column: str, cutoff: dt.datetime | dt.date, commit: Commit) -> int:
    """Delete the rows whose `column` (a date or UTC timestamp) is before `cutoff`, in one
    commit (the change feed records them as deletes); returns how many."""
    table = lake.table(dataset)
    if table is None:
        return 0
    literal = cutoff.isoformat().replace("+00:00", "Z") if isinstance(cutoff, dt.datetime) else cutoff.isoformat()
    return int(table.delete(f"{column} < '{literal}'", commit_properties=commit.properties())["num_deleted_rows"])


def vacuum(lake: Lake, dataset: Dataset, hours: int) -> int:
    """Remove the files no version of the last `hours` needs (old versions' data and change
    feed); returns how many. Consumers whose watermark is older read the snapshot instead."""
    table = lake.table(dataset)
    if table is None:
        return 0
    return len(table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False))


def optimize(lake: Lake, dataset: Dataset, vacuum_hours: int | None = None) -> dict[str, int]:
    """Compact the table's small files (a nightly adds a few per month touched) into bigger
    ones, then, with `vacuum_hours`, delete the files no version newer than that many hours
    still needs. Compaction changes no row (its commit is empty in the change feed);
    vacuuming drops the feed before the retention, so a consumer whose watermark is older
    falls back to the table's snapshot. A commit racing it is retried by delta-rs.

    Returns files_removed / files_added by compaction and files_vacuumed.

    Raises:
        UnavailableError: the disk is full or the lake not writable.
    """
    table = lake.table(dataset)
    if table is None:
        return {"files_removed": 0, "files_added": 0, "files_vacuumed": 0}
    try:
        metrics = table.optimize.compact(target_size=FILE_BYTES)
        vacuumed = 0 if vacuum_hours is None else vacuum(lake, dataset, vacuum_hours)
    except OSError as exc:
        raise UnavailableError(f"cannot optimize the lake's {dataset.name} under {lake.root}: {exc}: "
                               "free disk space or fix permissions") from None
    return {"files_removed": int(metrics.get("numFilesRemoved", 0)),
            "files_added": int(metrics.get("numFilesAdded", 0)), "files_vacuumed": vacuumed}
