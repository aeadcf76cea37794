"""Row counts of the lake's Delta tables from their logs' statistics, for `health-check`:
deltalake only, never pyarrow or pandas (storage/lake.py imports both)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


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
