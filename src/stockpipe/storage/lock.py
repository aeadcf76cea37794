"""One writer per shard: flock(2) lock files, and PostgreSQL advisory locks.

Two runs of the same shard never overlap; the second exits at once with the "locked"
code (75), before any API call or write. Different shards of one universe run side by
side; a run without `--shard` covers every shard and so excludes them all:

- a run without a shard holds the data directory's `.stockpipe.lock` exclusively;
- a run of shard i/n holds `.stockpipe.lock` *shared* (so it excludes, and is excluded
  by, an unsharded run, but not other shards) and `.stockpipe.shard-i-of-n.lock`
  exclusively.

flock locks belong to the open file: the kernel releases them when the holder dies (even
on SIGKILL), so a crashed run never leaves a stale lock behind.

With a PostgreSQL warehouse, machines that share nothing but the database must exclude
each other too, so the same two-level scheme is taken with advisory locks
(`pg_try_advisory_lock_shared` / `pg_try_advisory_lock`), on a connection of its own that
never goes back to a pool (NullPool): a session-level advisory lock lives as long as its
connection, and a pooled connection would keep it after the run, or hand it to the next
checkout. The server drops it when the connection closes or the process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import LockedError, UnavailableError
from ..shards import Shard

LOCK_NAME = ".stockpipe.lock"


def lock_file(data_dir: Path, shard: Shard | None = None) -> Path:
    return data_dir / (LOCK_NAME if shard is None else f".stockpipe.shard-{shard.slug}.lock")


@contextmanager
def hold(data_dir: Path, owner: str, shard: Shard | None = None, database_url: str | None = None) -> Iterator[None]:
    """Hold the lock of `shard` (the whole universe when None) for the duration of the block:
    the data directory's lock files, and advisory locks when `database_url` is PostgreSQL.

    Raises:
        LockedError: another process holds it.
        UnavailableError: the data directory cannot be created or written.
    """
    what = "the whole universe" if shard is None else f"shard {shard}"
    with ExitStack() as stack:
        if shard is None:
            stack.enter_context(_flock(data_dir, lock_file(data_dir), owner, exclusive=True, what=what))
        else:
            stack.enter_context(_flock(data_dir, lock_file(data_dir), owner, exclusive=False, what=what))
            stack.enter_context(_flock(data_dir, lock_file(data_dir, shard), owner, exclusive=True, what=what))
        if database_url and database_url.startswith("postgresql"):
            stack.enter_context(_advisory(database_url, shard, what))
        yield


@contextmanager
def _flock(data_dir: Path, path: Path, owner: str, exclusive: bool, what: str) -> Iterator[None]:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UnavailableError(f"cannot write to data directory {data_dir}: {exc.strerror}: "
                               "fix its permissions or set STOCKPIPE_DATA_DIR") from None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path, data_dir)
            raise LockedError(f"{what} in {data_dir} is locked by {holder}: wait for it to finish "
                              "(the lock is released when that process exits)") from None
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({owner})\n".encode(), 0)
        try:
            yield
        finally:
            if exclusive:
                os.ftruncate(fd, 0)  # a holder's name never outlives its hold
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _holder(path: Path, data_dir: Path) -> str:
    """Who holds the lock, as the exclusive holders wrote it (shard holders name themselves
    in their own shard files)."""
    names = [path] if path.name != LOCK_NAME else [path, *sorted(data_dir.glob(".stockpipe.shard-*.lock"))]
    for name in names:
        try:
            text = name.read_text(errors="replace").strip()
        except OSError:
            continue
        if text:
            return text if name == path else f"{text} [{name.name}]"
    return "another process"


def advisory_keys(shard: Shard | None) -> tuple[int, int | None]:
    """(universe key, shard key): signed 64-bit advisory lock keys, stable across machines."""
    def key(text: str) -> int:
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)

    return key("stockpipe:universe"), None if shard is None else key(f"stockpipe:shard:{shard.slug}")


@contextmanager
def _advisory(database_url: str, shard: Shard | None, what: str) -> Iterator[None]:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    universe, mine = advisory_keys(shard)
    engine = sa.create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        try:
            conn = engine.connect()
        except sa.exc.OperationalError:
            raise UnavailableError("cannot reach the PostgreSQL warehouse to take the run's advisory lock: "
                                   "check that the server is up and STOCKPIPE_DATABASE_URL") from None
        with conn:
            if shard is None:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": universe}).scalar()
            else:
                got = (conn.execute(sa.text("SELECT pg_try_advisory_lock_shared(:k)"), {"k": universe}).scalar()
                       and conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": mine}).scalar())
            if not got:
                raise LockedError(f"{what} is locked in the PostgreSQL warehouse by another run (an advisory "
                                  "lock, perhaps from another machine): wait for it to finish")
            yield
        # The connection is really closed here (NullPool), which releases its advisory locks.
    finally:
        engine.dispose()
