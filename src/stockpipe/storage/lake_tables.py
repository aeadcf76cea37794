"""The Delta tables a Lake has opened, kept and caught up on each use (storage/lake.py).

Opening a table replays its log: 95 ms for a 20,000-symbol indicators table, a dozen times
per transform chunk. Catching a held table up reads only the commits after its version
(5 ms). What another writer committed meanwhile (another shard, another process) is seen
either way. A table deleted and created again must not be caught up with the new table's
log, which would silently mix two tables: the held one is kept only while the commit file
of its version is the very file it was (inode, size and mtime; the directory's inode is
reused after a delete), else the table is opened anew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Stamp = tuple[int, int, int]


class OpenTables:
    def __init__(self) -> None:
        self._held: dict[Path, tuple[Stamp | None, Any]] = {}

    def forget(self, path: Path) -> None:
        """Drop the table at `path` (gone, or a write on it failed): the next use opens it."""
        self._held.pop(path, None)

    def latest(self, path: Path):
        """The DeltaTable at `path` at its newest version."""
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError

        stamp, table = self._held.get(path, (None, None))
        if table is not None and (stamp is None or stamp != _stamp(path, table.version())):
            table = None
        if table is not None:
            try:
                table.update_incremental()
            except DeltaError:  # a log it cannot follow: read it afresh
                table = None
        table = table or DeltaTable(str(path))
        self._held[path] = (_stamp(path, table.version()), table)
        return table


def _stamp(path: Path, version: int) -> Stamp | None:
    """(inode, size, mtime in ns) of the table's commit file of `version`; None without it."""
    try:
        found = (path / "_delta_log" / f"{version:020d}.json").stat()
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns
