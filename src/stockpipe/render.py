"""The only module that prints results: rich tables for people, plain lines for pipes,
one stable JSON document (`--json`) for scripts.

stdout carries the result and nothing else; logs and errors go to stderr.

JSON shape (`"schema": "stockpipe.result/1"`; fields are only ever added):
    command, run_id, exit_code, exit_name, message, started_at, finished_at,
    counts   {name: int, summed over stages},
    stages   [{stage, exit_code, counts, message}],
    symbols  [{symbol, stage, status, rows, api_calls, provider, message}],
    checks   [{stage, name, ok, severity, symbol, detail, observed, threshold}]
             (every check of validate/health-check/verify, one per problem found; only the
             failures of quality-check),
    plus command-specific fields (db upgrade: before/after; db current: current/head;
    verify: repaired [what --repair did];
    health-check: observed {last_success, missed_sessions, prices_held, stale_symbols,
    most_sessions_behind, failing_symbols, tracked_symbols, last_run,
    quota [{provider, calls, limit, remaining, resets_at}], disk_free_bytes,
    disk_total_bytes}, each present when its check could run; run --report: report).

The looking commands (show, plot, report, export) print a document of their own kind:
    schema, command, exit_code, exit_name, then the result's fields (outputs.py).
A usage error under --json is an error document too (`"error"`, exit_code 2), so stdout
always holds exactly one JSON document.

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
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from .errors import ExitCode, HealthCode, UnavailableError
from .models import CommandResult

if TYPE_CHECKING:
    from .outputs import ExportResult, ShowResult, WrittenResult
    from .pipeline.status import StatusResult

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
    as the command's error line, unless a terminal table on stdout already showed it (a
    failure is shown once). Returns the command's exit code."""
    emit(result, as_json)
    failed = not _succeeded(result)
    shown = not as_json and stdout_is_terminal() and _failures_listed(result)
    if result.message and failed and not shown:
        error_line(command, result.message, result.exit_code)
    return int(result.exit_code)


def stdout_is_terminal() -> bool:
    """Whether a person reads stdout (rich tables), rather than a pipe or a file (plain lines)."""
    return sys.stdout.isatty()


def _failures_listed(result: CommandResult) -> bool:
    """Whether the terminal layout lists every reason the result failed for."""
    return any(o.status != "ok" for s in result.stages for o in s.outcomes) or any(
        not c.ok for s in result.stages for c in s.checks)


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


def usage_error(where: str, message: str, as_json: bool = False, code: int = ExitCode.USAGE) -> None:
    """The parser's one line for a command line it refuses (unknown option, bad value); with
    --json also the error document on stdout."""
    if message:  # an empty one: no command given, and the help was just printed
        sys.stderr.write(f"{where}: error: {message} (see '{where} --help')\n")
    if as_json:
        command = where.removeprefix("stockpipe").strip() or "stockpipe"
        sys.stdout.write(json.dumps({"schema": SCHEMA, "command": command, "exit_code": int(code),
                                     "exit_name": exit_name(command, code), "error": message}) + "\n")


def version(text: str) -> None:
    """`stockpipe --version`."""
    sys.stdout.write(f"stockpipe {text}\n")


def silence_stdout() -> None:
    """Point stdout at /dev/null after its reader went away (a broken pipe), so the final
    flush at exit does not fail a second time."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def interrupted() -> None:
    """The line for Ctrl-C while the command line was still being parsed."""
    sys.stderr.write("stockpipe: interrupted\n")


def bug_traceback() -> None:
    """The traceback of the exception being handled, on stderr (`--debug` only; no locals),
    redacted like every message (keys, the database password, credentials in any URL)."""
    from .redaction import redact

    sys.stderr.write(redact(traceback.format_exc()))


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
    """For pipes and files: a line per stage (its counts as name=value), a line per symbol
    not ok and per check shown, then the verdict. The failure message itself goes to stderr."""
    out = sys.stdout
    for stage in result.stages:
        counts = " ".join(f"{k}={v}" for k, v in stage.counts.items())
        out.write(f"{stage.stage}: {exit_name(result.command, stage.exit_code)} {counts}".rstrip() + "\n")
        for outcome in stage.outcomes:
            if outcome.status not in ("ok",):
                status = "deferred" if outcome.status == "skipped" else outcome.status
                out.write(f"  {outcome.symbol}: {status} {outcome.message}".rstrip() + "\n")
        for check in _shown_checks(stage):
            mark = "ok" if check.ok else ("FAIL" if check.severity == "error" else "WARN")
            who = f" {check.symbol}" if check.symbol else ""
            out.write(f"  [{mark}] {check.name}{who}: {check.detail}\n")
    if result.message and _succeeded(result):
        out.write(f"{result.message}\n")
    out.write(_verdict_line(result) + "\n")
    if result.extra.get("report"):
        out.write(f"report written to {result.extra['report']}\n")


def _succeeded(result: CommandResult) -> bool:
    return result.exit_code in (ExitCode.OK, ExitCode.NOTHING_TO_DO) or result.command == "health-check"


def _verdict_line(result: CommandResult) -> str:
    """`run: partial (exit 3), run id 20261123T230000Z-a1b2c3`."""
    run = f", run id {result.run_id}" if result.run_id else ""
    return f"{result.command}: {exit_name(result.command, result.exit_code)} (exit {int(result.exit_code)}){run}"


def _shown_checks(stage) -> list:
    """validate/health-check show every check; quality-check only its failures."""
    return [c for c in stage.checks if stage.stage != "quality-check" or not c.ok]


def _terminal_checks(result: CommandResult) -> list:
    """On a terminal: every check of the command validate, health-check or verify, else the failed ones."""
    every = result.command in ("validate", "health-check", "verify")
    return [(s.stage, c) for s in result.stages for c in s.checks if every or not c.ok]


def _console(width: int | None = None):
    from rich.console import Console

    return Console(width=width, highlight=False, soft_wrap=False)


def _rich(result: CommandResult) -> None:
    console = _console()
    console.print(f"[bold]stockpipe {result.command}[/]")
    for part in rich_parts(result, console.width):
        console.print(part)
        console.print()
    console.print(_verdict_line(result), style="bold", markup=False)
    if result.extra.get("report"):
        console.print(f"report written to {result.extra['report']}", markup=False)


def rich_parts(result: CommandResult, width: int) -> list:
    """The terminal layout of a result below its title: stages, checks, symbols not ok."""
    from . import layouts

    parts: list = []
    if any(s.counts for s in result.stages):  # health-check's one stage has only checks
        parts.append(layouts.stage_table(result, width))
    checks = _terminal_checks(result)
    if checks:
        parts.append(layouts.checks_table(checks))
    failed = [o for s in result.stages for o in s.outcomes if o.status != "ok"]
    if failed:
        parts.append(layouts.outcomes_table(failed))
    if result.message and _succeeded(result):
        from rich.text import Text

        parts.append(Text(result.message))
    return parts


# ------------------------------------------------------------------ looking commands


def emit_look(result: ShowResult | WrittenResult | ExportResult | StatusResult, as_json: bool) -> int:
    """Print what show, plot, report or export produced; returns the exit code.

    export without --out: the encoded rows themselves (bytes, nothing else); show: its
    tables (or plain lines in a pipe); a written file: one line naming it."""
    from .outputs import ExportResult, ShowResult
    from .pipeline.status import StatusResult

    if isinstance(result, StatusResult):
        return emit_status(result, as_json)
    if isinstance(result, ExportResult):
        sys.stdout.flush()
        for chunk in result.chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    elif as_json:
        doc = {"schema": SCHEMA, "command": result.command, "exit_code": int(result.exit_code),
               "exit_name": exit_name(result.command, result.exit_code), **result.document()}
        sys.stdout.write(json.dumps(doc, default=str) + "\n")
    elif isinstance(result, ShowResult):
        _show(result)
    else:
        sys.stdout.write(f"wrote {result.path}: {result.what}\n")
    return int(result.exit_code)


def _plain_number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _show(result: ShowResult) -> None:
    from . import layouts

    if stdout_is_terminal():
        console = _console()
        for part in layouts.show_parts(result):
            console.print(part)
            console.print()
        return
    out = sys.stdout
    out.write(f"{result.symbol} provider={result.provider}\n")
    for state in result.states:
        if state["dataset"] == "prices_daily":
            loaded = "yes" if state.get("lake_version") == state.get("loaded_version") else "no"
            out.write(f"state first={state.get('first_date')} last={state.get('last_date')} "
                      f"last_success={state.get('last_success_at')} failures={state.get('consecutive_failures')} "
                      f"loaded={loaded}\n")
    for bar in result.bars:
        values = " ".join(f"{k}={_plain_number(bar.get(k))}" for k in ("close", "volume", *result.indicators))
        out.write(f"{bar['date']} {values}\n")
    for action in result.actions:
        out.write(f"action {action['date']} {action['kind']} {action['value']:g}\n")
    for failure in result.failures:
        out.write(f"quality {failure['check_name']} {failure['severity']}: {failure.get('detail') or ''}\n")


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


# ------------------------------------------------------------------ status


def emit_status(result: StatusResult, as_json: bool) -> int:
    """`status`: a JSON document (--json), a table per exchange and provider (terminal) or
    plain `name=value` lines (pipe); returns the exit code (0)."""
    from . import layouts

    if as_json:
        doc = {"schema": SCHEMA, "command": result.command, "exit_code": int(result.exit_code),
               "exit_name": exit_name(result.command, result.exit_code), **result.document()}
        sys.stdout.write(json.dumps(doc, default=str) + "\n")
    elif stdout_is_terminal():
        console = _console()
        console.print("[bold]stockpipe status[/]")
        table, lines = layouts.status_table(result, console.width), layouts.status_lines(result)
        if table is not None:  # else every line, the groups' too
            console.print(table)
            lines = lines[len(result.groups) + 1:]
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stdout.write("".join(line + "\n" for line in layouts.status_lines(result)))
    return int(result.exit_code)
