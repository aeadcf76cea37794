"""What one invocation shares between its stages, and how it is recorded.

`recorded()` takes the shard's lock, opens the warehouse (one engine per process, migrated
when `auto_migrate`), marks `abandoned` the runs a killed process left `running` (the lock
proves them dead), and writes the invocation's pipeline_runs row; `finish()` closes it
with the summed counts. A failure or a stop closes it as failed/interrupted, so a run row
never stays `running` after the process ends normally or by an exception.

Imports neither pandas nor pyarrow: `health-check` and `--help` go through here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .. import calendars, errors, interrupt, logs
from ..config import Settings
from ..errors import ConfigError, ExitCode, StockpipeError
from ..models import CommandResult, StageResult
from ..storage import warehouse

log = logging.getLogger("stockpipe")

Progress = Callable[[str, int, int], None]  # (stage, done, total)
Clock = Callable[[], dt.datetime]
SYMBOLS_PER_CHUNK = 2000  # every stage saves, reads and loads this many symbols at a time


def no_progress(stage: str, done: int, total: int) -> None:
    """The default progress callback: nothing to show."""


def chunks(items: Sequence[str], size: int = SYMBOLS_PER_CHUNK) -> Iterator[Sequence[str]]:
    """`items` in slices of `size` (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class Context:
    """What one invocation shares between its stages."""

    settings: Settings
    engine: Any
    run_id: str
    now: dt.datetime
    progress: Progress
    clock: Clock
    invocation: int = 0  # pipeline_runs.id of this invocation

    @property
    def latest_session(self) -> dt.date:
        return calendars.latest_closed_session(self.now)

    def consumer(self, kind: str) -> str:
        """This invocation's name as a consumer of the lake ("load", "load:2/4"): each shard
        keeps its own watermarks, since it applies only its own symbols' changes."""
        return f"{kind}:{self.settings.shard}" if self.settings.shard else kind

    def mine(self, symbols: Iterable[str]) -> list[str]:
        """`symbols` restricted to this invocation's `--shard` (all without one)."""
        from ..shards import select

        return select(self.settings.shard, symbols)


def connect(settings: Settings):
    """A reachable engine for the configured warehouse.

    Raises:
        DatabaseUnavailableError: the database cannot be reached.
    """
    engine = warehouse.create(settings.database_url)
    warehouse.check_reachable(engine)
    return engine


def open_warehouse(settings: Settings):
    """A reachable engine at the newest migration (migrating it when `auto_migrate`), over a
    data directory that can be written.

    Raises:
        ConfigError: the data directory cannot be written; the database is behind with
            `auto_migrate` off, or at a revision newer than this stockpipe.
        DatabaseUnavailableError: the database cannot be reached.
    """
    writable_dir(settings.data_dir)
    calendars.check_exchanges(settings.exchanges)
    engine = connect(settings)
    current, head = warehouse.check_revision(engine, settings.auto_migrate)
    if current != head:
        warehouse.upgrade(engine)
    return engine


def writable_dir(path: Path) -> None:
    """Create the data directory if it is missing and make sure it can be written.

    Raises:
        ConfigError: it is a file, cannot be created, or cannot be written (read-only file
            system, permissions): names the path and the fix.
    """
    fix = "point STOCKPIPE_DATA_DIR / --data-dir at a writable directory"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"data directory {path} is a file, not a directory: {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create data directory {path} ({exc.strerror}): {fix}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"data directory {path} is not writable (read-only file system or permissions): {fix}, "
                          "or fix its permissions")


def known_error(exc: BaseException, url: str | None = None) -> StockpipeError | None:
    """The StockpipeError an exception that reached no handler stands for (a database that
    went away, a full disk, a path that cannot be written), or None: a bug."""
    if isinstance(exc, StockpipeError):
        return exc
    found = errors.from_os_error(exc)
    if found is None and type(exc).__module__.startswith(("sqlalchemy", "sqlite3", "psycopg2")):
        found = warehouse.from_db_error(exc, url)
    return found


@contextmanager
def recorded(settings: Settings, command: str, args: dict[str, Any], progress: Progress,
             clock: Clock) -> Iterator[Context]:
    """Take the shard's lock (storage/lock.py) and record the invocation in pipeline_runs
    under the scheduler's run id (`--run-id`) or a new one."""
    from ..storage import lock, state

    engine = open_warehouse(settings)
    shard = str(settings.shard) if settings.shard else None
    with lock.hold(settings.data_dir, command, settings.shard, settings.database_url):
        now = clock()
        ctx = Context(settings, engine, settings.run_id or state.new_run_id(now), now, _checked(progress), clock)
        with engine.begin() as conn:  # holding the lock: a run of this shard still "running" is dead
            abandoned = state.abandon_running(conn, shard, now)
            ctx.invocation = state.start_run(conn, ctx.run_id, command, args, settings.provider, now, shard)
        if abandoned:
            log.warning("marked %d earlier run(s) abandoned: they ended without recording an end", abandoned)
        try:
            with logs.bind(run_id=ctx.run_id, command=command, shard=shard):
                yield ctx
        except BaseException as exc:
            known = known_error(exc, settings.database_url)
            interrupted = isinstance(exc, KeyboardInterrupt)
            code = known.exit_code if known is not None else (ExitCode.INTERRUPTED if interrupted else ExitCode.BUG)
            _record_end(engine, ctx.invocation, "interrupted" if interrupted else "failed", int(code),
                        _safe_message(known or exc), clock)
            if known is not None and known is not exc:
                raise known from exc
            raise


def _record_end(engine, invocation: int, status: str, code: int, message: str, clock: Clock) -> None:
    """Close the run row as failed/interrupted. When the database itself went away, say so:
    the row stays `running` until the next run of this shard marks it abandoned."""
    from ..storage import state

    try:
        with engine.begin() as conn:
            state.finish_run(conn, invocation, status, code, {}, message, clock())
    except Exception as exc:  # noqa: BLE001 - the original error is the one to report
        log.warning("could not record the run's end (%s): the next run marks it abandoned", type(exc).__name__)


def _checked(progress: Progress) -> Progress:
    """Progress reports double as the points where a lost SIGINT/SIGTERM is raised again."""
    def report(stage: str, done: int, total: int) -> None:
        interrupt.check()
        progress(stage, done, total)

    return report


def _safe_message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, StockpipeError) else type(exc).__name__


def finish(ctx: Context, command: str, stages: tuple[StageResult, ...], exit_code: int) -> CommandResult:
    """Record the invocation finished (counts summed over its stages) and build its result."""
    from ..storage import state

    counts: dict[str, int] = {}
    for stage in stages:
        for key, value in stage.counts.items():
            counts[key] = counts.get(key, 0) + value
    status = "ok" if exit_code in (ExitCode.OK, ExitCode.NOTHING_TO_DO) else "failed"
    message = next((s.message for s in stages if s.message and s.exit_code not in (0, 99)), "")
    interrupt.check()  # a stop requested during the run is never recorded as a success
    finished = ctx.clock()
    with ctx.engine.begin() as conn:
        state.finish_run(conn, ctx.invocation, status, int(exit_code), counts, message or None, finished)
    if command in ("fetch", "run"):  # health-check reads these closes instead of importing pandas
        from .. import closes

        closes.save(ctx.settings.data_dir, closes.exchanges_of(ctx.settings.symbols, ctx.settings.exchanges), finished)
    return CommandResult(command, ctx.run_id, int(exit_code), stages, ctx.now, finished, message)
