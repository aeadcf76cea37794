"""The lake's Delta tables as their logs describe them, for `health-check` and `verify`:
deltalake only (its arro3 tables), never pyarrow or pandas (storage/lake.py imports both).

A Delta data file is immutable once committed: its log entry (the add action) records its
size and modification time. A file that is gone, whose size differs, whose Parquet magic
bytes are missing, or that was modified after its commit is damaged — found here without
reading a page. Whether every page of a file reads back is `lake_files.read_fully`'s job
(pyarrow), run by `stockpipe verify`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PARQUET_MAGIC = b"PAR1"
MODIFIED_SLACK_MS = 1  # the log takes the time after the writer closed the file (never before it)
VERIFIED_NAME = ".verified.json"  # files `verify` read fully although their time disagrees


@dataclass(frozen=True)
class LakeFile:
    """One data file of a table's current version, as its add action describes it."""

    table: str
    path: str  # relative to the table's directory (month=YYYY-MM/part-....parquet)
    size: int
    modified_ms: int
    rows: int | None
    month: str | None = None
    stats: dict[str, Any] = field(default_factory=dict, compare=False)  # "min.date" -> value, ...

    def full_path(self, lake_dir: Path) -> Path:
        return lake_dir / self.table / self.path


@dataclass(frozen=True)
class FileProblem:
    """A damaged data file and what is wrong with it."""

    file: LakeFile
    problem: str  # missing | truncated | not parquet | modified | unreadable


def counts(lake_dir: Path, names: Iterable[str]) -> dict[str, int]:
    """dataset -> rows its table holds, for the tables that exist (a 0.1 lake, not yet
    converted, has none: it counts once a command has opened it)."""
    from deltalake import DeltaTable

    found = {}
    for name in names:
        path = lake_dir / name
        if (path / "_delta_log").is_dir():
            found[name] = int(DeltaTable(str(path)).count())
    return found


def tables(lake_dir: Path, names: Iterable[str]) -> list[str]:
    """The datasets of `names` that have a Delta table under `lake_dir`."""
    return [name for name in names if (lake_dir / name / "_delta_log").is_dir()]


def files(lake_dir: Path, name: str) -> list[LakeFile]:
    """The data files of `name`'s current version, from its log, sorted by path."""
    from deltalake import DeltaTable

    actions = DeltaTable(str(lake_dir / name)).get_add_actions(flatten=True)
    columns = {c: actions.column(c).to_pylist() for c in actions.schema.names}
    stats = [c for c in columns if c.split(".", 1)[0] in ("min", "max", "null_count")]
    paths = columns["path"]
    rows = columns.get("num_records") or [None] * len(paths)
    months = columns.get("partition.month") or [None] * len(paths)
    found = [LakeFile(name, path, int(columns["size_bytes"][i]), int(columns["modification_time"][i]),
                      None if rows[i] is None else int(rows[i]), months[i], {c: columns[c][i] for c in stats})
             for i, path in enumerate(paths)]
    return sorted(found, key=lambda f: f.path)


def file_problems(lake_dir: Path, names: Iterable[str]) -> list[FileProblem]:
    """Every damaged data file of the tables `names`, found without reading pages: gone,
    a size other than the log's, no Parquet magic bytes at either end, or modified after its
    commit (unless `verify` read it fully since: `.verified.json`)."""
    verified = read_verified(lake_dir)
    return [p for name in tables(lake_dir, names) for f in files(lake_dir, name)
            if (p := problem_of(f, lake_dir, verified)) is not None]


def problem_of(file: LakeFile, lake_dir: Path, verified: dict[str, list[int]]) -> FileProblem | None:
    """What is wrong with `file` short of reading its pages; None when nothing is."""
    path = file.full_path(lake_dir)
    try:
        stat = path.stat()
        with path.open("rb") as handle:
            head = handle.read(4)
            handle.seek(max(stat.st_size - 4, 0))
            tail = handle.read(4)
    except FileNotFoundError:
        return FileProblem(file, "missing")
    except OSError as exc:
        return FileProblem(file, f"unreadable ({exc.strerror})")
    if stat.st_size != file.size:
        return FileProblem(file, f"truncated ({stat.st_size} bytes, the log says {file.size})")
    if head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        return FileProblem(file, "not a Parquet file (no magic bytes)")
    modified = stat.st_mtime_ns // 1_000_000
    if modified > file.modified_ms + MODIFIED_SLACK_MS and verified.get(_key(file)) != fingerprint(path):
        return FileProblem(file, "modified after its commit")
    return None


def ensure_whole(lake_dir: Path, names: Iterable[str]) -> None:
    """Refuse to go on over a damaged lake (transform, load, quality-check and fetch call it
    first, so none reads a damaged file silently).

    Raises:
        LakeDamagedError: a data file is gone, cut short, not Parquet or modified (names them).
    """
    from ..errors import LakeDamagedError

    problems = file_problems(lake_dir, names) if lake_dir.is_dir() else []
    if problems:
        raise LakeDamagedError(f"{len(problems)} damaged lake file(s): {describe(problems, lake_dir, 3)}: "
                               "run `stockpipe verify --repair` to move them aside and fetch their rows again")


def fingerprint(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _key(file: LakeFile) -> str:
    return f"{file.table}/{file.path}"


def read_verified(lake_dir: Path) -> dict[str, list[int]]:
    """Files `verify` read fully although modified after their commit (a copy that did not
    keep the times): table/path -> [size, mtime_ns] when it read them."""
    try:
        return json.loads((lake_dir / VERIFIED_NAME).read_text())
    except (OSError, ValueError):
        return {}


def save_verified(lake_dir: Path, found: dict[str, list[int]]) -> None:
    """Replace `.verified.json` (atomically)."""
    if not found and not (lake_dir / VERIFIED_NAME).exists():
        return
    tmp = lake_dir / (VERIFIED_NAME + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(found, sort_keys=True))
    os.replace(tmp, lake_dir / VERIFIED_NAME)


def describe(problems: list[FileProblem], lake_dir: Path, limit: int | None = None) -> str:
    """`prices_daily/month=2025-03/part-…parquet (missing), …`: every problem (or `limit`)."""
    shown = problems if limit is None else problems[:limit]
    text = ", ".join(f"{p.file.full_path(lake_dir)} ({p.problem})" for p in shown)
    return text + (f" and {len(problems) - len(shown)} more" if len(problems) > len(shown) else "")
