"""Prometheus metrics of one command for node_exporter's textfile collector (`--metrics-file`).

The file is in the text exposition format, written atomically: a temp file in the same
directory (not named *.prom, so the collector never reads half of it), fsync, mode 0644
(node_exporter runs as another user, and systemd's UMask=0077 would hide it), rename.

Decisions:
    * Names: the `stockpipe_` prefix, base units (`_seconds`, `_bytes`), `_total` only for
      counters. A metrics file is rewritten by each invocation, so what describes that
      invocation (duration, rows, symbols, API calls) is a gauge of that run: a `_total`
      that restarts every run would make rate() and increase() lie. The one counter,
      `stockpipe_runs_total`, counts pipeline_runs rows, which only ever grow.
    * Labels: every series of a command's file has `command` and, for `--shard i/n`,
      `shard`, so the files of different commands and shards never hold the same series
      (the collector merges every *.prom of its directory and refuses duplicates); give
      each its own file. health-check's metrics are all `stockpipe_health_*` for the same
      reason. `stage`, `provider`, `outcome`, `severity` and `check` where they apply.
    * Only a command that returns a result writes the file (exit 0, 3, 6, 99, ...). One
      that stops on an error (config 4, database 5, locked 75) leaves the previous file,
      whose `stockpipe_last_success_timestamp_seconds` then ages: alert on that.
    * A file that cannot be written is logged as an error and does not change the exit
      code: the data the command committed decides it.

Families of run, fetch, transform, load, quality-check (`FAMILIES`), and of health-check
(`HEALTH_FAMILIES`): see their help texts below.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .config import Settings
from .errors import StockpipeError, UsageError
from .models import CommandResult

log = logging.getLogger("stockpipe")

FAMILIES = {  # name -> (type, help) of a run command's file
    "stockpipe_run_duration_seconds": ("gauge", "Wall-clock duration of the command's last invocation."),
    "stockpipe_run_exit_code": ("gauge", "Exit code of the last invocation (0 ok, 3 partial, 99 nothing to do)."),
    "stockpipe_run_finished_timestamp_seconds": ("gauge", "When the last invocation finished (Unix time)."),
    "stockpipe_last_success_timestamp_seconds": ("gauge", "When an invocation last finished ok (exit 0 or 99)."),
    "stockpipe_runs_total": ("counter", "Invocations recorded in pipeline_runs, by final status."),
    "stockpipe_rows_fetched": ("gauge", "Rows accepted from the provider by the last invocation, per stage."),
    "stockpipe_rows_rejected": ("gauge", "Rows sent to rejects by the last invocation, per stage."),
    "stockpipe_rows_loaded": ("gauge", "Rows inserted or updated in the warehouse by the last invocation, per stage."),
    "stockpipe_rows_written": ("gauge", "Rows the last invocation wrote to the lake or warehouse, per stage."),
    "stockpipe_symbols": ("gauge", "Symbols of the last invocation, per stage and outcome (ok, failed, ...)."),
    "stockpipe_api_calls": ("gauge", "API calls the last invocation made, per provider."),
    "stockpipe_quota_remaining": ("gauge", "Calls left in the provider's current quota day (quota_ledger)."),
    "stockpipe_quota_limit": ("gauge", "The provider's daily call limit in its current quota day."),
    "stockpipe_quality_failures": ("gauge", "Quality checks that failed in the last invocation, per severity."),
}
HEALTH_FAMILIES = {
    "stockpipe_health_status": ("gauge", "health-check's verdict: 0 ok, 1 warning, 2 critical, 3 unknown."),
    "stockpipe_health_check_status": ("gauge", "Each health check: 0 ok, 1 warning, 2 critical, 3 unknown."),
    "stockpipe_health_timestamp_seconds": ("gauge", "When health-check ran (Unix time)."),
    "stockpipe_health_last_success_timestamp_seconds": ("gauge", "When a fetch or run last finished ok (Unix time)."),
    "stockpipe_health_missed_sessions": ("gauge", "Sessions due but not covered by a successful run (worst exchange)."),
    "stockpipe_health_disk_free_bytes": ("gauge", "Free bytes in the data directory's file system."),
    "stockpipe_health_failing_symbols": ("gauge", "Symbols attempted in 7 days whose last fetch failed."),
    "stockpipe_health_tracked_symbols": ("gauge", "Symbols attempted in the last 7 days (symbol_state)."),
    "stockpipe_health_quota_remaining": ("gauge", "Calls left in the provider's current quota day (quota_ledger)."),
    "stockpipe_health_quota_limit": ("gauge", "The provider's daily call limit in its current quota day."),
}
_ROW_COUNTS = ("rows_fetched", "rows_rejected", "rows_loaded", "rows_written")


@dataclass
class Samples:
    """Samples of one file, by family name; rendered in the order of its catalogue."""

    catalogue: Mapping[str, tuple[str, str]]
    base: dict[str, str] = field(default_factory=dict)  # labels on every sample
    rows: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def add(self, name: str, value: float | None, **labels: str) -> None:
        if name not in self.catalogue:
            raise KeyError(f"{name} is not in the metrics catalogue")
        if value is not None:
            self.rows.setdefault(name, []).append(({**self.base, **labels}, float(value)))

    def render(self) -> str:
        lines: list[str] = []
        for name, (kind, help_text) in self.catalogue.items():
            if name not in self.rows:
                continue
            lines += [f"# HELP {name} {_escape(help_text, label=False)}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in self.rows[name]]
        return "\n".join(lines) + "\n" if lines else ""


@dataclass(frozen=True)
class RunFacts:
    """What the warehouse adds to a command's own result."""

    last_success: float | None = None  # Unix time
    runs: Mapping[str, int] = field(default_factory=dict)  # status -> invocations
    quotas: tuple[Any, ...] = ()  # storage.monitoring.Quota


def run_samples(result: CommandResult, shard: str | None, facts: RunFacts) -> Samples:
    """The samples of run/fetch/transform/load/quality-check (pure)."""
    out = Samples(FAMILIES, {"command": command_label(result), **({"shard": shard} if shard else {})})
    out.add("stockpipe_run_duration_seconds", (result.finished_at - result.started_at).total_seconds())
    out.add("stockpipe_run_exit_code", int(result.exit_code))
    out.add("stockpipe_run_finished_timestamp_seconds", result.finished_at.timestamp())
    out.add("stockpipe_last_success_timestamp_seconds", facts.last_success)
    for status, count in sorted(facts.runs.items()):
        out.add("stockpipe_runs_total", count, status=status)
    for stage in result.stages:
        for key in _ROW_COUNTS:
            if key in stage.counts:
                out.add(f"stockpipe_{key}", stage.counts[key], stage=stage.stage)
        for status, count in sorted(_tally(o.status for o in stage.outcomes).items()):
            out.add("stockpipe_symbols", count, stage=stage.stage, outcome=status)
        if stage.stage == "quality-check":
            out.add("stockpipe_quality_failures", stage.counts.get("errors", 0), severity="error")
            out.add("stockpipe_quality_failures", stage.counts.get("warnings", 0), severity="warn")
    calls: dict[str, int] = {}
    for outcome in (o for s in result.stages for o in s.outcomes if o.provider):
        calls[outcome.provider] = calls.get(outcome.provider, 0) + outcome.api_calls
    for provider, count in sorted(calls.items()):
        out.add("stockpipe_api_calls", count, provider=provider)
    for quota in facts.quotas:
        out.add("stockpipe_quota_remaining", quota.remaining, provider=quota.provider)
        out.add("stockpipe_quota_limit", quota.limit, provider=quota.provider)
    return out


def health_samples(result: CommandResult) -> Samples:
    """The samples of health-check, from its checks and `observed` values (pure)."""
    from .pipeline import health_level

    observed = result.extra.get("observed", {})
    out = Samples(HEALTH_FAMILIES)
    out.add("stockpipe_health_status", int(result.exit_code))
    for check in (c for s in result.stages for c in s.checks):
        out.add("stockpipe_health_check_status", int(health_level(check)), check=check.name)
    out.add("stockpipe_health_timestamp_seconds", result.finished_at.timestamp())
    last = observed.get("last_success")
    out.add("stockpipe_health_last_success_timestamp_seconds", _unix(last) if last else None)
    out.add("stockpipe_health_missed_sessions", observed.get("missed_sessions"))
    out.add("stockpipe_health_disk_free_bytes", observed.get("disk_free_bytes"))
    out.add("stockpipe_health_failing_symbols", observed.get("failing_symbols"))
    out.add("stockpipe_health_tracked_symbols", observed.get("tracked_symbols"))
    for quota in observed.get("quota", []):
        out.add("stockpipe_health_quota_remaining", quota["remaining"], provider=quota["provider"])
        out.add("stockpipe_health_quota_limit", quota["limit"], provider=quota["provider"])
    return out


def command_label(result: CommandResult) -> str:
    """The command as pipeline_runs records it (`fetch --quotes` is fetch-quotes)."""
    stages = {s.stage for s in result.stages}
    return next((s for s in ("fetch-quotes", "fetch-intraday") if s in stages), result.command)


def check_path(path: Path) -> None:
    """Refuse a metrics file the collector would never read, before any work is done.

    Raises:
        UsageError: the name does not end in .prom, or its directory does not exist.
    """
    if path.suffix != ".prom":
        raise UsageError(f"--metrics-file {path}: name it *.prom (node_exporter's textfile collector reads only those)")
    if not path.parent.is_dir():
        raise UsageError(f"--metrics-file {path}: the directory {path.parent} does not exist")


def export(settings: Settings, result: CommandResult, path: Path) -> None:
    """Write `result`'s metrics (with the warehouse's facts for a run command) to `path`."""
    if result.command == "health-check":
        samples = health_samples(result)
    else:
        shard = str(settings.shard) if settings.shard else None
        samples = run_samples(result, shard, _facts(settings, command_label(result), shard, result))
    try:
        write(path, samples.render())
    except OSError as exc:
        log.error("cannot write the metrics file %s: %s", path, exc.strerror or exc)


def write(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (readable by node_exporter)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _facts(settings: Settings, command: str, shard: str | None, result: CommandResult) -> RunFacts:
    """Last success, run counts and quotas from the warehouse; none when it cannot answer."""
    import sqlalchemy as sa

    from .storage import monitoring, warehouse

    providers = set(settings.providers or (settings.provider,)) | {o.provider for s in result.stages
                                                                   for o in s.outcomes if o.provider}
    try:
        engine = warehouse.create(settings.database_url)
        with engine.connect() as conn:
            last = monitoring.last_success(conn, (command,), shard)
            return RunFacts(last.timestamp() if last else None, monitoring.run_counts(conn, command, shard),
                            tuple(monitoring.quotas(conn, result.finished_at, sorted(providers))))
    except (sa.exc.SQLAlchemyError, StockpipeError) as exc:
        log.warning("metrics without the warehouse's last success, run counts and quotas: %s", type(exc).__name__)
        return RunFacts()


def _tally(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _unix(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso).timestamp()


def _escape(text: str, label: bool = True) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if label else text


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
