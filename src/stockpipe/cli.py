"""The `stockpipe` command: parse options, build settings, call one pipeline function, render.

`_call` is the one place that turns errors into a line on stderr and an exit code, by a
per-command policy (`_error_exit`). pandas and pyarrow are imported only by the commands that
need them, so `--help` and `health-check` stay fast. Only render.py prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

from . import cli_ops, cli_universe, cli_verify, interrupt, render
from .errors import ExitCode, HealthCode, StockpipeError, UsageError
from .options import (All, Adjusted, Config, Exchanges, CsvPath, DatabaseUrl, DataDir, Debug, DryRun, End, From, Full,
                      IntervalOption, Json, Lists, LogFormat, MetricsFile, Options, Probe, Provider, Quotes, ReportFile,
                      RunId, ShardOption, Start, SymbolArg, Symbols, SymbolsFile, To, escape_help, fetch_call,
                      need_selection, plan_call, window)

if TYPE_CHECKING:
    from .config import Settings
    from .models import CommandResult

Progress = Callable[[str, int, int], None]
PipelineCall = Callable[["Settings", Progress], "CommandResult"]  # a pipeline function: (settings, progress) -> result


def _typer(**options: Any) -> typer.Typer:
    """A Typer app that never prints a pretty traceback, let alone its locals (settings hold API keys)."""
    return typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, pretty_exceptions_show_locals=False,
                       **options)


app = _typer(
    name="stockpipe",
    help="ETL for stock-market data: fetch daily bars, validate, compute indicators, "
    "keep a Parquet lake and load a SQL warehouse; show, plot, report and export what it holds. "
    "Exit codes: see the README.",
)
db_app = _typer(help="Warehouse migrations (alembic, shipped with the package).")
app.add_typer(db_app, name="db")
schedule_app = _typer(help="Scheduling files for this installation: systemd units or a crontab (plain text).")
app.add_typer(schedule_app, name="schedule")

_INTERRUPTED = "interrupted: the open transaction was rolled back; run again to resume"
_BUG = "unexpected {} (a bug; rerun with --debug for the traceback)"


def _error_exit(command: str, exc: StockpipeError) -> int:
    """The exit code of `command` stopped by `exc`: the error's own (errors.ExitCode), except for
    health-check, whose monitors read 3 (unknown) as "the check itself could not run"."""
    return HealthCode.UNKNOWN if command == "health-check" else exc.exit_code


def _call(opts: Options, action: Callable[[], int]) -> None:
    """Run a command's `action` (which hands its result to the renderer and returns the exit code).

    The one place that turns errors into one line on stderr (plus the error document with
    --json) and an exit code: a StockpipeError per `_error_exit`, Ctrl-C/SIGTERM 130, anything
    else is a bug, exit 1 (its traceback only with --debug). typer.Exit passes through.
    """
    try:
        code = action()
    except StockpipeError as exc:
        code = _error_exit(opts.command, exc)
        render.emit_error(opts.command, str(exc), code, opts.as_json)
    except BrokenPipeError:  # the reader stopped early (`export | head`): what it wanted was written
        render.silence_stdout()
        code = ExitCode.OK
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
        render.emit_error(opts.command, _INTERRUPTED, code, opts.as_json)
    except (typer.Exit, typer.Abort, typer.TyperException):  # typer.Exit is a RuntimeError: Typer's own
        raise
    except Exception as exc:  # noqa: BLE001 - a database or disk failure has its documented code; else a bug
        from .pipeline.context import known_error  # (a server gone, a full disk, a path that cannot be written)

        known = known_error(exc)
        if opts.debug and known is None:
            render.bug_traceback()
        code = ExitCode.BUG if known is None else _error_exit(opts.command, known)
        render.emit_error(opts.command, str(known) if known else _BUG.format(type(exc).__name__), code, opts.as_json)
    raise typer.Exit(int(code))


def _pipeline(opts: Options, call: PipelineCall, *, progress: bool = False,
              check: Callable[[Settings], None] | None = None) -> int:
    """Build the settings, `check` them, call the pipeline, write --metrics-file (its path
    checked first, so a typo costs no work), render; returns the exit code."""
    settings = _settings(opts)
    if check is not None:
        check(settings)
    if opts.metrics_file is not None:
        from . import metrics

        metrics.check_path(opts.metrics_file)
    with render.progress(progress and not opts.as_json) as report:
        result = call(settings, report)
    if opts.metrics_file is not None:
        metrics.export(settings, result, opts.metrics_file)
    return render.emit_result(opts.command, result, opts.as_json)


def _settings(opts: Options) -> Settings:
    """The command's settings; on a terminal the result lists each failure, so logs do not."""
    return opts.settings(outcomes_listed=render.stdout_is_terminal() and not opts.as_json)


def _look(opts: Options, call: Callable[[Settings], Any]) -> int:
    """A looking command (show, plot, report, export): settings, one read, render."""
    return render.emit_look(call(_settings(opts)), opts.as_json)


@app.command()
def validate(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None, provider: Provider = None,
             symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None, path: CsvPath = None,
             probe: Probe = False, as_json: Json = False, debug: Debug = False) -> None:
    """Check configuration, credentials, data directory, database and symbols; with --probe,
    each provider's API too."""
    from . import pipeline

    opts = Options("validate", as_json, debug, config=config, data_dir=data_dir, database_url=database_url,
                   provider=provider, symbols=symbol, symbols_file=symbols_file, lists=list_, csv_path=path)
    _call(opts, lambda: _pipeline(opts, lambda settings, _: pipeline.validate(settings, probe=probe)))


@app.command()
def fetch(all_: All = False, symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None,
          exchange: Exchanges = None, provider: Provider = None, path: CsvPath = None, start: Start = None, end: End = None,
          quotes: Quotes = False, interval: IntervalOption = None, config: Config = None,
          data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
          shard: ShardOption = None, run_id: RunId = None, metrics_file: MetricsFile = None, as_json: Json = False,
          debug: Debug = False, dry_run: DryRun = False) -> None:
    """Fetch the bars each symbol lacks into the lake (raw payloads archived, bad rows to rejects);
    with --quotes, quotes; with --interval, intraday bars; with --dry-run, only the plan and its cost."""
    opts = Options("fetch", as_json, debug, metrics_file, config=config, data_dir=data_dir, database_url=database_url,
                   log_format=log_format, shard=shard, run_id=run_id, provider=provider, symbols=symbol,
                   symbols_file=symbols_file, lists=list_, csv_path=path, list_exchanges=exchange)

    _call(opts, lambda: _pipeline(opts, fetch_call(quotes, interval, *window(start, end), dry_run), progress=not dry_run,
                                  check=lambda settings: need_selection(all_, opts, settings.provider, dry_run)))


def _lake_command(name: str, help_text: str) -> None:
    """`transform` and `load`: the same options, each a stage over what changed since the last."""

    @app.command(name, help=help_text)
    def command(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
                log_format: LogFormat = None, shard: ShardOption = None, run_id: RunId = None,
                metrics_file: MetricsFile = None, as_json: Json = False, debug: Debug = False, full: Full = False) -> None:
        from . import pipeline

        opts = Options(name, as_json, debug, metrics_file, config=config, data_dir=data_dir, database_url=database_url,
                       log_format=log_format, shard=shard, run_id=run_id)
        stage = getattr(pipeline, name)  # the stage of that name
        _call(opts, lambda: _pipeline(opts, lambda settings, report: stage(settings, report, full=full), progress=True))


_lake_command("transform", "Compute indicators for the symbols whose prices or corporate actions changed since the "
              "last transform (the lake's change feed).")
_lake_command("load", "Apply what changed in the lake since the last load to the warehouse (a re-run writes nothing).")


@app.command("quality-check")
def quality_check(symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None, config: Config = None,
                  data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
                  shard: ShardOption = None, run_id: RunId = None, metrics_file: MetricsFile = None,
                  as_json: Json = False, debug: Debug = False) -> None:
    """Run the quality rules on the warehouse; exit 6 when an error-severity rule fails."""
    from . import pipeline

    opts = Options("quality-check", as_json, debug, metrics_file, config=config, data_dir=data_dir,
                   database_url=database_url, log_format=log_format, shard=shard, run_id=run_id, symbols=symbol,
                   symbols_file=symbols_file, lists=list_)
    _call(opts, lambda: _pipeline(opts, lambda settings, _: pipeline.quality_check(settings)))


@app.command("health-check")
def health_check(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
                 log_format: LogFormat = None, metrics_file: MetricsFile = None, as_json: Json = False,
                 debug: Debug = False) -> None:
    """Database, migrations, runs on time, failing symbols, quota, disk, lake.
    Exit 0 ok, 1 warning, 2 critical, 3 unknown."""
    from . import pipeline

    opts = Options("health-check", as_json, debug, metrics_file, config=config, data_dir=data_dir,
                   database_url=database_url, log_format=log_format)
    _call(opts, lambda: _pipeline(opts, lambda settings, _: pipeline.health_check(settings)))


cli_verify.register(app, _call, _pipeline)  # `verify`, here in the command list (cli.py is at its size limit)
cli_universe.register(app, _call, _pipeline, _look)  # `status` and `reset`, the same way


@app.command()
def run(all_: All = False, symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None,
        exchange: Exchanges = None, provider: Provider = None, path: CsvPath = None, start: Start = None, end: End = None, config: Config = None,
        data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
        shard: ShardOption = None, run_id: RunId = None, metrics_file: MetricsFile = None, report: ReportFile = None,
        as_json: Json = False, debug: Debug = False, dry_run: DryRun = False) -> None:
    """validate -> fetch -> transform -> load -> quality-check; resumes from what is saved.
    With --dry-run, only the fetch's plan and its cost."""
    from . import pipeline

    opts = Options("run", as_json, debug, metrics_file, config=config, data_dir=data_dir, database_url=database_url,
                   log_format=log_format, shard=shard, run_id=run_id, provider=provider, symbols=symbol,
                   symbols_file=symbols_file, lists=list_, csv_path=path, list_exchanges=exchange)

    def check(settings: Settings) -> None:
        need_selection(all_, opts, settings.provider, dry_run, report)
        if report is not None:
            pipeline.check_report_path(report)

    call = plan_call("run", *window(start, end)) if dry_run else lambda settings, progress: pipeline.run(
        settings, *window(start, end), progress, report=report)
    _call(opts, lambda: _pipeline(opts, call, progress=not dry_run, check=check))


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head", config: Config = None,
               data_dir: DataDir = None, database_url: DatabaseUrl = None, as_json: Json = False, debug: Debug = False) -> None:
    """Migrate the warehouse to the newest revision (or REVISION)."""
    from . import pipeline

    opts = Options("db upgrade", as_json, debug, config=config, data_dir=data_dir, database_url=database_url)
    _call(opts, lambda: _pipeline(opts, lambda settings, _: pipeline.db_upgrade(settings, revision)))


@db_app.command("current")
def db_current(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
               as_json: Json = False, debug: Debug = False) -> None:
    """Show the warehouse's revision and the newest one shipped."""
    from . import pipeline

    opts = Options("db current", as_json, debug, config=config, data_dir=data_dir, database_url=database_url)
    _call(opts, lambda: _pipeline(opts, lambda settings, _: pipeline.db_current(settings)))


# ------------------------------------------------------------------ looking at the data

@app.command()
def show(symbol: SymbolArg, bars: Annotated[int, typer.Option("--bars", min=1, max=250, help="How many of the newest "
         "bars to list.")] = 10, config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
         as_json: Json = False, debug: Debug = False) -> None:
    """A symbol's newest bars with the main indicators, a sparkline of its closes, corporate actions,
    its state (provider, dates held, last success, failures) and the quality rules it fails."""
    from .pipeline.show import show as show_symbol

    opts = Options("show", as_json, debug, config=config, data_dir=data_dir, database_url=database_url)
    _call(opts, lambda: _look(opts, lambda settings: show_symbol(settings, symbol, bars)))


@app.command()
def plot(symbol: SymbolArg, out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE.png|FILE.svg",
         help="The picture to write: .png or .svg.")], start: From = None, end: To = None, adjusted: Adjusted = False,
         style: Annotated[str, typer.Option("--style", help="candle or line.")] = "candle", config: Config = None,
         data_dir: DataDir = None, database_url: DatabaseUrl = None, as_json: Json = False,
         debug: Debug = False) -> None:
    """Draw candles (or a line) with SMA 20/50 and Bollinger bands, volume, RSI and MACD, splits and
    dividends marked; default: the year up to the last bar. Needs the extra: pip install 'stockpipe[plot]'."""
    from .pipeline.plot import plot as draw

    opts = Options("plot", as_json, debug, config=config, data_dir=data_dir, database_url=database_url)
    _call(opts, lambda: _look(opts, lambda settings: draw(settings, symbol, out, *window(start, end), adjusted, style)))


@app.command()
def report(out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE.html", help="The page to write.")],
           run_id: Annotated[Optional[str], typer.Option("--run-id", help="The run to report on (default: the "
           "newest in pipeline_runs).")] = None, config: Config = None, data_dir: DataDir = None,
           database_url: DatabaseUrl = None, as_json: Json = False, debug: Debug = False) -> None:
    """Write one self-contained HTML page about a run: status, duration, counts per stage, calls and quota
    per provider, every failing symbol with its reason, every quality failure, charts of the symbols that failed."""
    from .pipeline.report import report as write_report

    opts = Options("report", as_json, debug, config=config, data_dir=data_dir, database_url=database_url)
    _call(opts, lambda: _look(opts, lambda settings: write_report(settings, out, run_id)))


@app.command()
def export(dataset: Annotated[str, typer.Option("--dataset", "-d", help="A table (prices_daily, corporate_actions, "
           "indicators_daily, quotes, quotes_daily, prices_intraday, adjustments, rejects) or a view "
           "(daily_analytics, latest_quotes, prices_daily_adjusted).")] = "prices_daily",
           symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None, start: From = None,
           end: To = None, adjusted: Adjusted = False,
           fmt: Annotated[Optional[str], typer.Option("--format", "-f", help="csv, parquet or json (default: from "
           "--out's suffix, else csv).")] = None,
           out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write to this file (default: stdout, "
           "so it pipes).")] = None, config: Config = None, data_dir: DataDir = None,
           database_url: DatabaseUrl = None, as_json: Json = False, debug: Debug = False) -> None:
    """Write a dataset or view of the warehouse as csv, parquet or json, to --out or stdout."""
    from .pipeline.export import export as export_rows

    opts = Options("export", as_json, debug, config=config, data_dir=data_dir, database_url=database_url,
                   symbols=symbol, symbols_file=symbols_file, lists=list_)

    def call(settings: Settings):
        if out is None and as_json:
            raise UsageError("--json describes a written file: give --out FILE (or use --format json for the rows)")
        if out is None and fmt == "parquet" and render.stdout_is_terminal():
            raise UsageError("parquet is binary: give --out FILE.parquet or pipe stdout into a file or program")
        return export_rows(settings, dataset, fmt, out, *window(start, end), adjusted)

    _call(opts, lambda: _look(opts, call))


SchedulePrefix = Annotated[str, typer.Option("--prefix", help="Virtualenv stockpipe is installed in (runs PREFIX/bin/stockpipe).")]
ScheduleOutput = Annotated[Optional[Path], typer.Option("--output", help="Write the files into this directory instead of printing them.")]


@schedule_app.command("systemd")
def schedule_systemd(
        prefix: SchedulePrefix = "/opt/stockpipe/venv",
        user: Annotated[str, typer.Option("--user", help="User= of the services (DynamicUser=yes allocates it when it does not exist).")] = "stockpipe",
        credential: Annotated[Optional[list[str]], typer.Option("--credential", help="A secret loaded with LoadCredential= from /etc/stockpipe/credentials/: a provider name (its API key) or pgpass; repeatable.")] = None,
        output: ScheduleOutput = None) -> None:
    """Print the systemd units (daily run, hourly quotes, shards) and the environment file example."""
    from . import schedule

    _call(Options("schedule systemd"), lambda: render.files(
        schedule.systemd_units(prefix, user, tuple(credential or ())), output))


@schedule_app.command("cron")
def schedule_cron(
        prefix: SchedulePrefix = "/opt/stockpipe/venv",
        data_dir: Annotated[str, typer.Option("--data-dir", help="STOCKPIPE_DATA_DIR of the cron job (also holds its flock file).")] = "/var/lib/stockpipe",
        output: ScheduleOutput = None) -> None:
    """Print the crontab of the daily run (22:30 New York on weekdays) for a host whose cron runs in UTC."""
    from . import schedule

    _call(Options("schedule cron"), lambda: render.files({"stockpipe.crontab": schedule.crontab(prefix, data_dir)}, output))


cli_ops.register(app, _typer, lambda opts, call: _call(opts, lambda: _pipeline(opts, call)))


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            render.version(version("stockpipe"))
        except PackageNotFoundError:
            render.version("(not installed)")
        raise typer.Exit(0)


@app.callback()
def _main_options(version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                  help="Print the version and exit.")] = False) -> None:
    pass


def command() -> Any:
    """The click command tree of `app`, every help text escaped."""
    return escape_help(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: the parser's usage errors become one line and exit 2
    (plus the error document on stdout with --json)."""
    import sys

    interrupt.install()
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    try:
        code = command().main(args=args, standalone_mode=False, prog_name="stockpipe")
    except typer.TyperException as exc:  # the parser's usage errors (unknown option, bad value)
        ctx = getattr(exc, "ctx", None)  # only the parser's UsageError knows the (sub)command
        where = ctx.command_path if ctx is not None else "stockpipe"
        render.usage_error(where, exc.format_message(), as_json, int(exc.exit_code))
        return int(exc.exit_code)
    except typer.Abort:
        render.interrupted()
        return int(ExitCode.INTERRUPTED)
    except SystemExit as exc:  # Typer's --show-completion/--install-completion exit by themselves
        return exc.code if isinstance(exc.code, int) else 0
    return int(code or 0)


if __name__ == "__main__":
    import sys

    sys.exit(main())
