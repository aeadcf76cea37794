"""Named crash points for the fault tests: `STOCKPIPE_CRASHPOINT=<name>` makes the process
SIGKILL itself when it reaches that point (no cleanup, no finally, no atexit — the way the
kernel's OOM killer or `kill -9` ends it).

A test hook, not a setting: it is read here rather than through config.Settings so that
the storage and pipeline code can mark a point without being handed anything; unset (every
real run), `hit` is one dictionary lookup.

Points: after_lake_write (fetch: the lake committed, symbol_state not yet),
after_fetch_state, after_adjustments (transform: spans committed, indicators not yet),
after_transform, before_load_commit (load: rows sent, the transaction not committed),
after_load_commit. Apart, since it lies before any run: during_migration (`db upgrade`, or a
command's automatic migration: the first migration's DDL ran, its transaction not committed).
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_lake_write", "after_fetch_state", "after_adjustments", "after_transform",
          "before_load_commit", "after_load_commit")
MIGRATION_POINTS = ("during_migration",)


def hit(name: str) -> None:
    """SIGKILL this process if the crash point `name` is armed."""
    if os.environ.get("STOCKPIPE_CRASHPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
