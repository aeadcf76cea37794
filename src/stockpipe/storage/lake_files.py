"""The lake's data files one by one, for `stockpipe verify`: read each fully, and take a
damaged one out of its table. Uses DeltaTable directly (storage/lake.py is the tables'
reader and writer; this is their repair kit).

* `read_fully` reads every page of a file with pyarrow and holds what it read against the
  log's statistics (row count, per-column min/max and null counts), so garbage behind valid
  framing that still decodes is caught as well as garbage that does not.
* `quarantine` moves files to `<data dir>/quarantine/<table>/<run stamp>/<path>` (nothing is
  deleted: a person can still look at them) and commits their removal from the table (Delta's
  FSCK: a remove action per file that is gone), so readers see a table without them.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Iterable
from pathlib import Path

from .lake_stats import FileProblem, LakeFile

QUARANTINE = "quarantine"


def read_fully(file: LakeFile, lake_dir: Path) -> str | None:
    """None when every page of `file` reads back and agrees with the log's statistics,
    else what is wrong ("unreadable: ...", "3 rows, the log says 20", ...)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file.full_path(lake_dir))
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable: {str(exc).splitlines()[0][:200]}"
    if file.rows is not None and table.num_rows != file.rows:
        return f"{table.num_rows} rows, the log says {file.rows}"
    for name in table.column_names:
        column = table[name]
        nulls = file.stats.get(f"null_count.{name}")
        if nulls is not None and column.null_count != nulls:
            return f"{name}: {column.null_count} nulls, the log says {nulls}"
        low, high = file.stats.get(f"min.{name}"), file.stats.get(f"max.{name}")
        if low is None or high is None or not pa.types.is_primitive(column.type):
            continue
        try:
            found = pc.min_max(column).as_py()
        except (pa.ArrowException, TypeError):
            continue
        if _outside(found["min"], found["max"], low, high):
            return f"{name}: values {found['min']}..{found['max']} outside the log's {low}..{high}"
    return None


def _outside(found_low, found_high, low, high) -> bool:
    """Whether values read fall outside the log's min/max. The log keeps timestamps to the
    millisecond and long strings cut short, so those are compared at that precision."""
    if found_low is None or found_high is None:
        return False
    if isinstance(found_low, dt.datetime):
        found_low, found_high = (v.replace(microsecond=v.microsecond // 1000 * 1000) for v in (found_low, found_high))
    if isinstance(found_low, str) and max(len(str(low)), len(str(high))) >= 32:
        return False
    if isinstance(found_low, float) and (math.isnan(found_low) or math.isnan(found_high)):
        return True
    try:
        return found_low < low or found_high > high
    except TypeError:  # a type the stats hold differently (timestamps with or without a zone)
        return False


def quarantine(lake_dir: Path, quarantine_dir: Path, problems: Iterable[FileProblem], now: dt.datetime) -> list[Path]:
    """Move each problem's file (when it is still there) under `quarantine_dir` and commit
    the removal of every missing file from its table. Returns where the files went."""
    from deltalake import CommitProperties, DeltaTable

    moved, tables = [], set()
    for problem in problems:
        source = problem.file.full_path(lake_dir)
        tables.add(problem.file.table)
        if not source.exists():
            continue
        target = quarantine_dir / problem.file.table / f"{now:%Y%m%dT%H%M%SZ}" / problem.file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target))
        moved.append(target)
    for table in sorted(tables):
        DeltaTable(str(lake_dir / table)).repair(
            dry_run=False, commit_properties=CommitProperties(custom_metadata={"stockpipe.stage": "verify --repair"}))
    return moved
