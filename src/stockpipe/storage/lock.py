"""One writer per data directory: an flock(2) lock file.

The kernel releases the lock when the holder dies (even on SIGKILL), so a crashed run
never leaves a stale lock behind. A second run exits at once with the "locked" code,
before any API call or write.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import LockedError, UnavailableError

LOCK_NAME = ".stockpipe.lock"


@contextmanager
def hold(data_dir: Path, owner: str) -> Iterator[None]:
    """Hold the data directory's lock for the duration of the block.

    Raises:
        LockedError: another process holds it.
        UnavailableError: the data directory cannot be created or written.
    """
    path = data_dir / LOCK_NAME
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UnavailableError(f"cannot write to data directory {data_dir}: {exc.strerror}: "
                               "fix its permissions or set STOCKPIPE_DATA_DIR") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise LockedError(f"{data_dir} is locked by {holder}: wait for it to finish "
                              "(the lock is released when that process exits)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({owner})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
