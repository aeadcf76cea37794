"""`stockpipe prune`: retention. Old rows out of the lake and the warehouse, old raw payloads
and run records deleted, old lake versions vacuumed; recorded as a run (pipeline_runs,
command `prune`; one run_events row per dataset, stage `prune`, `rows` = what it lost) whose
result says what each dataset lost.

| dataset | what goes | default age |
|---|---|---|
| quotes | lake + warehouse rows with `ts` before the cutoff | 90 days |
| prices_intraday | lake + warehouse rows with `ts` before the cutoff | 90 days |
| rejects | lake + warehouse rows with `rejected_at` before the cutoff | 365 days |
| raw | raw/<provider>/<YYYY-MM-DD>/ folders of days before the cutoff | 90 days |
| runs | pipeline_runs finished, run_events and quality_results written before the cutoff | 365 days |
| prices_daily | only when named, with `--older-than` and `--yes`: rows dated before the cutoff | none |

Without `--dataset`, every dataset with a default age is pruned (never prices_daily). The
cutoff is midnight UTC `--older-than` days before now. Then every lake table is vacuumed:
files that no version of the last `time_travel_days` (default 7) needs are removed, so time
travel (`DeltaTable(path, version=...)`) reaches that far back and no further, and a consumer
whose watermark is older than that reads the table's snapshot instead of its change feed.

A pruned lake delete is a commit like any other: the next `load` applies it (the warehouse
rows are already gone), and the derived tables' watermarks are moved past it when they were
current, so `transform` does not rebuild quotes_daily or indicators from what is left (their
rows stay; a derived row is never deleted by a prune).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Sequence

from .. import calendars
from ..config import Settings
from ..errors import ExitCode, UsageError
from ..models import DATASETS, CommandResult, StageResult, SymbolOutcome
from ..storage import retention
from ..storage.lake import Commit, Lake
from .context import Clock, Context, Progress, finish, no_progress, recorded

# dataset -> (the column its age is read from, default age in days; None: only when named)
RETAINED = {"quotes": ("ts", 90), "prices_intraday": ("ts", 90), "rejects": ("rejected_at", 365),
            "raw": (None, 90), "runs": (None, 365), "prices_daily": ("date", None)}
_DERIVED = {"quotes": ("quotes_daily",), "prices_daily": ("indicators_daily", "adjustments")}
_AGE = re.compile(r"^\s*(\d+)\s*([dwy]?)\s*$", re.IGNORECASE)


def parse_age(text: str) -> int:
    """`90d`, `12w`, `2y` or `90` as days.

    Raises:
        UsageError: anything else.
    """
    found = _AGE.match(text or "")
    if not found:
        raise UsageError(f"--older-than {text!r}: use a number of days such as 90d (or 12w, 2y)")
    return int(found.group(1)) * {"": 1, "d": 1, "w": 7, "y": 365}[found.group(2).lower()]


def prune(settings: Settings, datasets: Sequence[str] = (), older_than: str | None = None, yes: bool = False,
          progress: Progress = no_progress, clock: Clock = calendars.utcnow) -> CommandResult:
    """Prune `datasets` (default: every one with a default age) older than `older_than`,
    then vacuum the lake's old versions.

    Raises:
        UsageError: an unknown dataset, a bad age, or prices_daily without --older-than and --yes.
    """
    chosen = list(dict.fromkeys(datasets)) or [d for d, (_, days) in RETAINED.items() if days]
    unknown = [d for d in chosen if d not in RETAINED]
    if unknown:
        raise UsageError(f"prune --dataset {unknown[0]!r}: use one of {', '.join(RETAINED)}")
    days = parse_age(older_than) if older_than is not None else None
    if "prices_daily" in chosen and (days is None or not yes):
        raise UsageError("prune --dataset prices_daily deletes price history for good: give --older-than "
                         "(e.g. 3650d) and --yes")
    args = {"datasets": chosen, "older_than_days": days, "time_travel_days": settings.time_travel_days}
    with recorded(settings, "prune", args, progress, clock) as ctx:
        stages = [_prune(ctx, name, days if days is not None else RETAINED[name][1]) for name in chosen]
        stages.append(_vacuum(ctx))
        _record(ctx, stages)
        removed = sum(s.counts.get("rows_removed", 0) + s.counts.get("files_removed", 0) for s in stages)
        message = f"removed {removed:,} row(s) and file(s) in all" if removed else "nothing older to remove"
        result = finish(ctx, "prune", tuple(stages), ExitCode.OK)
        return CommandResult(result.command, result.run_id, result.exit_code, result.stages, result.started_at,
                             result.finished_at, message)


def _cutoff(ctx: Context, days: int) -> dt.datetime:
    day = (ctx.now.astimezone(dt.timezone.utc) - dt.timedelta(days=days)).date()
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


def _prune(ctx: Context, name: str, days: int) -> StageResult:
    cutoff = _cutoff(ctx, days)
    counts: dict[str, int]
    if name == "raw":
        counts = {"files_removed": _prune_raw(ctx.settings.raw_dir, cutoff.date())}
    elif name == "runs":
        with ctx.engine.begin() as conn:
            counts = {"rows_removed": sum(retention.delete_runs(conn, cutoff).values())}
    else:
        counts = _prune_dataset(ctx, name, cutoff)
    message = f"{name} before {cutoff.date()} ({days} days)"
    return StageResult(f"prune-{name}", ExitCode.OK, counts, message=message)


def _prune_dataset(ctx: Context, name: str, cutoff: dt.datetime) -> dict[str, int]:
    """A lake dataset and its warehouse table: the lake first (one commit), then the
    warehouse in one transaction; a crash in between leaves the lake's delete for `load`."""
    dataset, lake = DATASETS[name], Lake(ctx.settings.lake_dir)
    column = RETAINED[name][0]
    limit: dt.datetime | dt.date = cutoff.date() if column == "date" else cutoff
    before = lake.version(dataset)
    removed = lake.delete_before(dataset, column, limit, Commit(ctx.run_id, "prune"))
    after = lake.version(dataset)
    if removed and before is not None and after is not None:
        _keep_derived(ctx, lake, name, before, after)
    with ctx.engine.begin() as conn:
        warehouse_removed = retention.delete_before(conn, name, column, limit)
        if name == "prices_daily":
            retention.raise_first_dates(conn, name, cutoff.date())
    return {"rows_removed": removed, "warehouse_rows_removed": warehouse_removed}


def _keep_derived(ctx: Context, lake: Lake, name: str, before: int, after: int) -> None:
    """Move the unsharded transform's watermark on `name` past the prune's commit where it was
    current, so the deletes rebuild no derived row from what is left."""
    app = f"transform:{name}"
    for output in _DERIVED.get(name, ()):
        if lake.watermark(DATASETS[output], app) == before:
            lake.mark(DATASETS[output], Commit(ctx.run_id, "prune", {app: after}))


def _prune_raw(raw_dir: Path, cutoff: dt.date) -> int:
    """Delete raw/<provider>/<YYYY-MM-DD>/ folders of days before `cutoff`; returns the files removed."""
    removed = 0
    for folder in sorted(raw_dir.glob("*/*")):
        try:
            day = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue  # not a day's folder: never ours to delete
        if folder.is_dir() and day < cutoff:
            removed += sum(1 for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
    return removed


def _record(ctx: Context, stages: Sequence[StageResult]) -> None:
    """One run_events row per dataset (`symbol` = the dataset, stage `prune`): what it lost."""
    from ..storage import state

    outcomes = [SymbolOutcome(s.stage.removeprefix("prune-"), "prune", "ok",
                              s.counts.get("rows_removed", 0) + s.counts.get("files_removed", 0), 0, s.message)
                for s in stages]
    with ctx.engine.begin() as conn:
        state.record_events(conn, ctx.run_id, outcomes, ctx.now)


def _vacuum(ctx: Context) -> StageResult:
    """Every lake table's files older than `time_travel_days` that no version in reach needs."""
    lake, hours = Lake(ctx.settings.lake_dir), ctx.settings.time_travel_days * 24
    files = sum(lake.vacuum(dataset, hours) for dataset in DATASETS.values() if lake.exists(dataset))
    return StageResult("vacuum", ExitCode.OK, {"files_removed": files},
                       message=f"lake versions older than {ctx.settings.time_travel_days} day(s)")
