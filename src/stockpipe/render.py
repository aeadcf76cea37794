"""The only module that prints results: rich tables for people, plain lines for pipes,
one stable JSON document (`--json`) for scripts.

stdout carries the result and nothing else; logs and errors go to stderr.

JSON shape (`"schema": "stockpipe.result/1"`; fields are only ever added):
    command, run_id, exit_code, exit_name, message, started_at, finished_at,
    counts   {name: int, summed over stages},
    stages   [{stage, exit_code, counts, message}],
    symbols  [{symbol, stage, status, rows, api_calls, provider, message}],
    checks   [{stage, name, ok, severity, symbol, detail, observed, threshold}]
             (every check of validate/health-check; only the failures of quality-check),
    plus command-specific fields (db upgrade: before/after; db current: current/head;
    health-check: observed {last_success, missed_sessions, failing_symbols, tracked_symbols,
    last_run, quota [{provider, calls, limit, remaining, resets_at}], disk_free_bytes,
    disk_total_bytes}, each present when its check could run).

Besides results: the one-line errors on stderr (`stockpipe COMMAND: error: ...`), the parser's
usage errors, a bug's traceback (`--debug`), and `stockpipe schedule`'s files (printed, or
written into `--output`).
"""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import ExitCode, HealthCode, UnavailableError
from .models import CommandResult

SCHEMA = "stockpipe.result/1"


def exit_name(command: str, code: int) -> str:
    enum = HealthCode if command == "health-check" else ExitCode
    try:
        return enum(code).name.lower()
    except ValueError:
        return "unknown"


def to_document(result: CommandResult) -> dict[str, Any]:
    """The `--json` document of a result."""
    counts: dict[str, int] = {}
    for stage in result.stages:
        for key, value in stage.counts.items():
            counts[key] = counts.get(key, 0) + int(value)
    return {
        "schema": SCHEMA,
        "command": result.command,
        "run_id": result.run_id or None,
        "exit_code": int(result.exit_code),
        "exit_name": exit_name(result.command, result.exit_code),
        "message": result.message,
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat(),
        "counts": counts,
        "stages": [{"stage": s.stage, "exit_code": int(s.exit_code), "counts": dict(s.counts), "message": s.message}
                   for s in result.stages],
        "symbols": [asdict(o) for s in result.stages for o in s.outcomes],
        "checks": [{"stage": s.stage, **asdict(c)} for s in result.stages for c in _shown_checks(s)],
        **result.extra,
    }


def emit(result: CommandResult, as_json: bool) -> None:
    """Print a result to stdout."""
    if as_json:
        sys.stdout.write(json.dumps(to_document(result), sort_keys=False, default=str) + "\n")
    elif sys.stdout.isatty():
        _rich(result)
    else:
        _plain(result)


def emit_result(command: str, result: CommandResult, as_json: bool) -> int:
    """Print a result on stdout; when it failed with a message, that message also closes stderr
    as the command's error line. Returns the command's exit code."""
    emit(result, as_json)
    if result.message and result.exit_code not in (ExitCode.OK, ExitCode.NOTHING_TO_DO):
        error_line(command, result.message, result.exit_code)
    return int(result.exit_code)


def error_line(command: str, message: str, code: int) -> None:
    """`stockpipe COMMAND: error: MESSAGE` on stderr; under `--log-format json` a JSON log
    line like every other line there (logs.py), so a log shipper parses every line."""
    from . import logs

    if logs.json_enabled():
        logs.log.error("stockpipe %s: error: %s", command, message, extra={"command": command, "exit_code": int(code)})
    else:
        sys.stderr.write(f"stockpipe {command}: error: {message}\n")


def emit_error(command: str, message: str, code: int, as_json: bool) -> None:
    """One line on stderr; with --json also the error document on stdout."""
    error_line(command, message, code)
    if as_json:
        doc = {"schema": SCHEMA, "command": command, "exit_code": int(code),
               "exit_name": exit_name(command, code), "error": message}
        sys.stdout.write(json.dumps(doc) + "\n")


def usage_error(where: str, message: str) -> None:
    """The parser's one line for a command line it refuses (unknown option, bad value)."""
    sys.stderr.write(f"{where}: error: {message} (see '{where} --help')\n")


def interrupted() -> None:
    """The line for Ctrl-C while the command line was still being parsed."""
    sys.stderr.write("stockpipe: interrupted\n")


def bug_traceback() -> None:
    """The traceback of the exception being handled, on stderr (`--debug` only; no locals)."""
    traceback.print_exc()


def files(texts: Mapping[str, str], output: Path | None) -> int:
    """Generated files (`stockpipe schedule`): plain text on stdout, several separated by
    `# ==> NAME <==`; or written into `output` (created if missing), one path a line on stdout.
    Returns exit code 0.

    Raises:
        UnavailableError: `output` cannot be written.
    """
    if output is not None:
        try:
            paths = write_files(texts, output)
        except OSError as exc:
            raise UnavailableError(f"cannot write into {output}: {exc.strerror}") from None
        sys.stdout.write("".join(f"{path}\n" for path in paths))
    elif len(texts) == 1:
        sys.stdout.write(next(iter(texts.values())))
    else:
        sys.stdout.write("\n".join(f"# ==> {name} <==\n{text}" for name, text in texts.items()))
    return ExitCode.OK


def write_files(texts: Mapping[str, str], directory: Path) -> list[Path]:
    """Write each NAME -> text into `directory` (created if missing), each file replaced
    atomically; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        path = directory / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written


def _plain(result: CommandResult) -> None:
    out = sys.stdout
    for stage in result.stages:
        counts = " ".join(f"{k}={v}" for k, v in stage.counts.items())
        out.write(f"{stage.stage}: {exit_name(result.command, stage.exit_code)} {counts}".rstrip() + "\n")
        for outcome in stage.outcomes:
            if outcome.status not in ("ok",):
                out.write(f"  {outcome.symbol}: {outcome.status} {outcome.message}".rstrip() + "\n")
        for check in _shown_checks(stage):
            mark = "ok" if check.ok else ("FAIL" if check.severity == "error" else "WARN")
            who = f" {check.symbol}" if check.symbol else ""
            out.write(f"  [{mark}] {check.name}{who}: {check.detail}\n")
    if result.message:
        out.write(f"{result.message}\n")
    run = f" run {result.run_id}" if result.run_id else ""
    out.write(f"{result.command}{run}: {exit_name(result.command, result.exit_code)} (exit {result.exit_code})\n")


def _shown_checks(stage) -> list:
    """validate/health-check show every check; quality-check only its failures."""
    return [c for c in stage.checks if stage.stage != "quality-check" or not c.ok]


def _rich(result: CommandResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    stages = Table(title=f"stockpipe {result.command}", title_justify="left")
    for column in ("stage", "result", "counts"):
        stages.add_column(column)
    for stage in result.stages:
        name = exit_name(result.command, stage.exit_code)
        style = "green" if stage.exit_code in (0, 99) else "red"
        stages.add_row(stage.stage, f"[{style}]{name}[/]", "  ".join(f"{k} {v}" for k, v in stage.counts.items()))
    console.print(stages)
    checks = [(s.stage, c) for s in result.stages for c in _shown_checks(s)]
    if checks:
        table = Table(title="checks", title_justify="left")
        for column in ("stage", "check", "symbol", "result", "detail"):
            table.add_column(column)
        for stage_name, check in checks:
            style = "green" if check.ok else ("red" if check.severity == "error" else "yellow")
            verdict = "ok" if check.ok else ("fail" if check.severity == "error" else "warn")
            table.add_row(stage_name, check.name, check.symbol, f"[{style}]{verdict}[/]", check.detail)
        console.print(table)
    failed = [o for s in result.stages for o in s.outcomes if o.status != "ok"]
    if failed:
        table = Table(title="symbols not ok", title_justify="left")
        for column in ("stage", "symbol", "status", "message"):
            table.add_column(column)
        for outcome in failed:
            table.add_row(outcome.stage, outcome.symbol, outcome.status, outcome.message)
        console.print(table)
    if result.message:
        console.print(result.message)
    run = f" run {result.run_id}" if result.run_id else ""
    console.print(f"[bold]{result.command}{run}[/]: {exit_name(result.command, result.exit_code)} (exit {result.exit_code})")


@contextmanager
def progress(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback: a rich bar on stderr when it is a terminal, else nothing."""
    if not enabled or not sys.stderr.isatty():
        yield lambda stage, done, total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    bars: dict[str, Any] = {}
    with Progress(console=Console(stderr=True), transient=True) as bar:
        def update(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = bar.add_task(stage, total=total)
            bar.update(bars[stage], completed=min(done, total), total=total)

        yield update
