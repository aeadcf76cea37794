"""The pipeline library: the only module that joins I/O and the pure stages.

Every subcommand is one function here taking `Settings` and returning a `CommandResult`;
`run` is only the chain validate -> fetch -> transform -> load -> quality-check. Each stage
saves its output (lake files, warehouse rows, symbol_state) before the next starts, so a
run interrupted anywhere and started again resumes from what is saved:

- fetch commits bars to the lake, then symbol_state with the lake version it reflects; the
  next plan reconciles symbol_state from the lake if a kill came in between (daily.py);
- transform records the input versions it consumed in the commit of its output (changes.py);
- load records the lake version it applied in the same transaction as the rows (loading.py).

    from stockpipe import pipeline
    from stockpipe.config import load_settings
    result = pipeline.run(load_settings({"provider": "demo"}))
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from .. import calendars
from ..config import Settings
from ..errors import ExitCode, HealthCode
from ..models import Check, CommandResult, StageResult
from ..storage import warehouse
from .context import Clock, Context, Progress, connect, finish, no_progress, open_warehouse, recorded

__all__ = ["Context", "check_report_path", "db_current", "db_upgrade", "fetch", "fetch_intraday", "fetch_quotes",
           "health_check", "health_level", "load", "open_warehouse", "quality_check", "run", "transform", "validate"]

# ------------------------------------------------------------------------ commands


def validate(settings: Settings, clock: Clock = calendars.utcnow, probe: bool = False) -> CommandResult:
    """Check configuration, credentials, data directory, database and symbols; with `probe`,
    one cheap call per configured provider (latency, key accepted, quota left)."""
    from . import checks

    now = clock()
    result = checks.validate(settings, "call" if probe else None, now.date())
    return CommandResult("validate", "", result.exit_code, (result,), now, clock())


def fetch(settings: Settings, start: dt.date | None = None, end: dt.date | None = None,
          progress: Progress = no_progress, clock: Clock = calendars.utcnow) -> CommandResult:
    """Fetch what each symbol lacks into the lake."""
    from .daily import fetch_stage

    args = {"start": start, "end": end, "symbols": len(settings.symbols)}
    with recorded(settings, "fetch", args, progress, clock) as ctx:
        _lake_whole(settings)
        stage = fetch_stage(ctx, start, end)
        return finish(ctx, "fetch", (stage,), stage.exit_code)


def fetch_quotes(settings: Settings, progress: Progress = no_progress,
                 clock: Clock = calendars.utcnow) -> CommandResult:
    """Fetch one quote per symbol into the lake's `quotes` (`fetch --quotes`).

    Recorded in pipeline_runs as "fetch-quotes", so a quotes-only run never passes for a
    daily fetch in health-check.
    """
    from .marketdata import quotes_stage

    with recorded(settings, "fetch-quotes", {"symbols": len(settings.symbols)}, progress, clock) as ctx:
        stage = quotes_stage(ctx)
        return finish(ctx, "fetch", (stage,), stage.exit_code)


def fetch_intraday(settings: Settings, interval: str, start: dt.date | None = None, end: dt.date | None = None,
                   progress: Progress = no_progress, clock: Clock = calendars.utcnow) -> CommandResult:
    """Fetch `interval` bars (1m 5m 15m 30m 60m) into the lake's `prices_intraday`
    (`fetch --interval`), for sessions start..end within the vendor's retention."""
    from .marketdata import intraday_stage

    args = {"interval": interval, "start": start, "end": end, "symbols": len(settings.symbols)}
    with recorded(settings, "fetch-intraday", args, progress, clock) as ctx:
        stage = intraday_stage(ctx, interval, start, end)
        return finish(ctx, "fetch", (stage,), stage.exit_code)


def transform(settings: Settings, progress: Progress = no_progress, clock: Clock = calendars.utcnow,
              full: bool = False) -> CommandResult:
    """Compute indicators (and quotes_daily) for the symbols whose inputs changed since the
    last transform (every symbol with `full`)."""
    from .transforming import quotes_daily_stage, transform_stage

    with recorded(settings, "transform", {"full": full}, progress, clock) as ctx:
        _lake_whole(settings)
        stages = (transform_stage(ctx, full), quotes_daily_stage(ctx, full))
        return finish(ctx, "transform", stages, ExitCode.OK)


def load(settings: Settings, progress: Progress = no_progress, clock: Clock = calendars.utcnow,
         full: bool = False) -> CommandResult:
    """Apply what changed in the lake since the warehouse's watermark (all of it with `full`)."""
    from .loading import load_stage

    with recorded(settings, "load", {"full": full}, progress, clock) as ctx:
        _lake_whole(settings)
        stage = load_stage(ctx, full)
        return finish(ctx, "load", (stage,), stage.exit_code)


def quality_check(settings: Settings, clock: Clock = calendars.utcnow) -> CommandResult:
    """Run the quality rules on the warehouse and store their results."""
    from .quality import quality_stage

    with recorded(settings, "quality-check", {"symbols": len(settings.symbols)}, no_progress, clock) as ctx:
        _lake_whole(settings)
        stage = quality_stage(ctx)
        return finish(ctx, "quality-check", (stage,), stage.exit_code)


def run(settings: Settings, start: dt.date | None = None, end: dt.date | None = None,
        progress: Progress = no_progress, clock: Clock = calendars.utcnow, report: Path | None = None) -> CommandResult:
    """validate -> fetch -> transform -> load -> quality-check, resuming from what is saved;
    then, with `report`, the run's HTML report written there (the result's extra "report").

    Exit code: validate's when it fails; else quality's (6) when an error rule fails;
    else fetch's when it is a failure (partial, bad input, ...); else 99 when nothing was
    planned or written; else 0.
    """
    result = _run(settings, start, end, progress, clock)
    if report is None or not result.run_id:
        return result
    from .report import report as write_report

    written = write_report(settings, report, result.run_id, clock)
    return dataclasses.replace(result, extra={**result.extra, "report": str(written.path)})


def check_report_path(path: Path) -> None:
    """Refuse a `run --report` path that cannot be written, before the run starts.

    Raises:
        UsageError: not an .html file in an existing directory.
    """
    from .report import check_out

    check_out(path)


def _run(settings: Settings, start: dt.date | None, end: dt.date | None, progress: Progress,
         clock: Clock) -> CommandResult:
    from . import checks
    from .daily import fetch_stage
    from .loading import load_stage
    from .quality import quality_stage
    from .transforming import quotes_daily_stage, transform_stage

    started = clock()
    open_warehouse(settings)  # a fresh machine's database is migrated before it is checked
    checked = checks.validate(settings, "connect", started.date())  # a provider that is down stops the run here
    if checked.exit_code != ExitCode.OK:
        return CommandResult("run", "", checked.exit_code, (checked,), started, clock(),
                             message=checked.message)
    args = {"start": start, "end": end, "symbols": len(settings.symbols)}
    with recorded(settings, "run", args, progress, clock) as ctx:
        _lake_whole(settings)
        fetched = fetch_stage(ctx, start, end)
        middle = (transform_stage(ctx), quotes_daily_stage(ctx), load_stage(ctx))
        quality = quality_stage(ctx)
        stages = (checked, fetched, *middle, quality)
        return finish(ctx, "run", stages, _run_exit_code(fetched, middle, quality))


def _run_exit_code(fetched: StageResult, middle: tuple[StageResult, ...], quality: StageResult) -> int:
    if quality.exit_code != ExitCode.OK:
        return quality.exit_code
    if fetched.exit_code not in (ExitCode.OK, ExitCode.NOTHING_TO_DO):
        return fetched.exit_code
    wrote = any(s.counts.get("rows_written", 0) for s in middle)
    return ExitCode.NOTHING_TO_DO if fetched.exit_code == ExitCode.NOTHING_TO_DO and not wrote else ExitCode.OK


def _lake_whole(settings: Settings) -> None:
    """Stop before reading a damaged lake (storage/lake_stats.py: every file the logs name is
    there, whole and unchanged); `stockpipe verify --repair` moves damaged files aside.

    Raises:
        LakeDamagedError: names the damaged files (exit 5).
    """
    from ..models import DATASETS
    from ..storage import lake_stats

    lake_stats.ensure_whole(settings.lake_dir, DATASETS)


def health_check(settings: Settings, clock: Clock = calendars.utcnow) -> CommandResult:
    """Database, migrations, runs on time (calendar-aware), failing symbols, the last run,
    quota, disk, lake: fast, without pandas or pyarrow (pipeline/health.py).

    Exit code: the worst level among the checks, critical (2) over unknown (3) over
    warning (1): a monitor pages for a known outage before a check that could not run.
    The values judged are in the result's `observed` (for --json and --metrics-file).

    Raises:
        ConfigError: invalid [health] thresholds (the CLI exits 3, unknown).
    """
    from . import health

    now = clock()
    found = health.health(settings, now)
    worst = max((health_level(c) for c in found.checks), key=_HEALTH_RANK.__getitem__, default=HealthCode.OK)
    stage = StageResult("health-check", worst, checks=tuple(found.checks))
    return CommandResult("health-check", "", worst, (stage,), now, clock(), extra={"observed": found.observed})


_HEALTH_RANK = {HealthCode.OK: 0, HealthCode.WARNING: 1, HealthCode.UNKNOWN: 2, HealthCode.CRITICAL: 3}


def health_level(check: Check) -> HealthCode:
    """A failed check's severity: error -> critical, unknown -> unknown, warn -> warning."""
    if check.ok:
        return HealthCode.OK
    return {"error": HealthCode.CRITICAL, "unknown": HealthCode.UNKNOWN}.get(check.severity, HealthCode.WARNING)


def db_upgrade(settings: Settings, revision: str = "head", clock: Clock = calendars.utcnow) -> CommandResult:
    """Migrate the warehouse to `revision` (default: the newest)."""
    started = clock()
    engine = connect(settings)
    before = warehouse.current_revision(engine)
    warehouse.upgrade(engine, revision)
    after = warehouse.current_revision(engine)
    message = f"database at {after}" + ("" if before == after else f" (was {before or 'empty'})")
    return CommandResult("db upgrade", "", ExitCode.OK, (), started, clock(), message,
                         {"before": before, "after": after})


def db_current(settings: Settings, clock: Clock = calendars.utcnow) -> CommandResult:
    """Report the database's revision and the newest one the package ships."""
    started = clock()
    current, head = warehouse.current_revision(connect(settings)), warehouse.head_revision()
    state = "current" if current == head else (
        warehouse.revision_fix(current, head) if current and not warehouse.known_revision(current)
        else "behind: run `stockpipe db upgrade`")
    return CommandResult("db current", "", ExitCode.OK, (), started, clock(),
                         f"database at {current or 'empty'}, newest {head} ({state})",
                         {"current": current, "head": head})
