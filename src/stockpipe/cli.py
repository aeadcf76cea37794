"""The `stockpipe` command: parse options, build settings, call one pipeline function, render.

`_call` is the one place that turns errors into a line on stderr and an exit code, by a
per-command policy (`_error_exit`). pandas and pyarrow are imported only by the commands that
need them, so `--help` and `health-check` stay fast. Only render.py prints.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional, Sequence

import typer

from . import interrupt, logs, render
from .errors import ExitCode, HealthCode, StockpipeError, UsageError
from .providers.base import INTERVALS

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
    "keep a Parquet lake and load a SQL warehouse. Exit codes: see the README.",
    add_completion=False,
)
db_app = _typer(help="Warehouse migrations (alembic, shipped with the package).")
app.add_typer(db_app, name="db")
schedule_app = _typer(help="Scheduling files for this installation: systemd units or a crontab (plain text).")
app.add_typer(schedule_app, name="schedule")

Config = Annotated[Optional[Path], typer.Option("--config", help="stockpipe.toml to read (default: STOCKPIPE_CONFIG, else ./stockpipe.toml).")]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory for the lake, raw payloads and the SQLite file.")]
DatabaseUrl = Annotated[Optional[str], typer.Option("--database-url", help="Warehouse URL (default sqlite:///<data dir>/stockpipe.db).")]
Provider = Annotated[Optional[str], typer.Option("--provider", help="Data source: yahoo (default), alphavantage, eodhd, finnhub, polygon, tiingo, stooq, demo (synthetic, offline), csv (local files).")]
Symbols = Annotated[Optional[list[str]], typer.Option("--symbol", "-s", help="A ticker; repeat for several.")]
SymbolsFile = Annotated[Optional[Path], typer.Option("--symbols-file", help="File of tickers, one per line, # comments.")]
Lists = Annotated[Optional[list[str]], typer.Option("--list", help="A named list from the config's [universe.lists]; repeatable.")]
All = Annotated[bool, typer.Option("--all", help="The whole configured universe.")]
Start = Annotated[Optional[dt.datetime], typer.Option("--start", formats=["%Y-%m-%d"], help="First date to fetch (refetches from there).")]
End = Annotated[Optional[dt.datetime], typer.Option("--end", formats=["%Y-%m-%d"], help="Last date to fetch (default: latest closed session).")]
CsvPath = Annotated[Optional[Path], typer.Option("--path", help="CSV file or folder (provider csv).")]
LogFormat = Annotated[Optional[str], typer.Option("--log-format", help="Log lines on stderr: text or json.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")]
ShardOption = Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="Work on shard I of N: a stable hash slice "
                        "of the universe (the N slices cover it exactly once); shards run side by side, each under its own lock.")]
RunId = Annotated[Optional[str], typer.Option("--run-id", help="Name this run (Airflow's {{ run_id }}, systemd's "
                  "$INVOCATION_ID); stored in pipeline_runs and on every run_events row (default: a new id).")]
MetricsFile = Annotated[Optional[Path], typer.Option("--metrics-file", metavar="PATH", help="Also write this command's "
                        "Prometheus metrics to PATH (*.prom, for node_exporter's textfile collector), atomically.")]


# Intraday bar sizes: m1 = "1m", ... (providers.base, which imports nothing heavy).
Interval = enum.Enum("Interval", [(f"m{name[:-1]}", name) for name in INTERVALS], type=str)


Probe = Annotated[bool, typer.Option("--probe", help="Also make one cheap call per configured provider: latency, "
                                     "key accepted, quota left (exit 5 when one is down, 4 when it refuses the key).")]
Quotes = Annotated[bool, typer.Option("--quotes", help="Fetch one quote per symbol into `quotes` instead of daily bars "
                                      "(yahoo, finnhub, alphavantage, eodhd).")]
IntervalOption = Annotated[Optional[Interval], typer.Option(
    "--interval", help="Fetch intraday bars of this size into `prices_intraday` instead of daily bars, for the "
    "sessions --start..--end within what the vendor keeps (default: all it keeps).")]


@dataclass(frozen=True)
class Options:
    """What a command was asked besides its own arguments: how it reports, and the flags
    that build its Settings (None: not given, so the environment or config file decides)."""

    command: str
    as_json: bool = False
    debug: bool = False
    metrics_file: Path | None = None
    config: Path | None = None
    data_dir: Path | None = None
    database_url: str | None = None
    log_format: str | None = None
    shard: str | None = None
    run_id: str | None = None
    provider: str | None = None
    symbols: Sequence[str] | None = None
    symbols_file: Path | None = None
    lists: Sequence[str] | None = None
    csv_path: Path | None = None

    def settings(self) -> Settings:
        """The Settings of these flags over the environment and config file; logging set to match.

        Raises:
            StockpipeError: see config.load_settings.
        """
        from .config import load_settings

        settings = load_settings({name: getattr(self, name) for name in _SETTINGS_FLAGS})
        logs.configure(settings.log_format, self.debug)
        return settings


_SETTINGS_FLAGS = ("config", "data_dir", "database_url", "log_format", "shard", "run_id", "provider", "symbols",
                   "symbols_file", "lists", "csv_path")
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
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
        render.emit_error(opts.command, _INTERRUPTED, code, opts.as_json)
    except (typer.Exit, typer.Abort, typer.TyperException):  # typer.Exit is a RuntimeError: Typer's own
        raise
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: say so, trace only with --debug
        if opts.debug:
            render.bug_traceback()
        code = ExitCode.BUG
        render.emit_error(opts.command, _BUG.format(type(exc).__name__), code, opts.as_json)
    raise typer.Exit(int(code))


def _pipeline(opts: Options, call: PipelineCall, *, progress: bool = False,
              check: Callable[[Settings], None] | None = None) -> int:
    """Build the settings, `check` them, call the pipeline, write --metrics-file (its path
    checked first, so a typo costs no work), render; returns the exit code."""
    settings = opts.settings()
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


def _need_selection(all_: bool, opts: Options, provider: str) -> None:
    """`fetch` and `run` take --all or named symbols, never both, never neither (except from
    csv files, which name their symbols)."""
    chosen = bool(opts.symbols or opts.symbols_file or opts.lists)
    if all_ and chosen:
        raise UsageError("--all and --symbol/--symbols-file/--list exclude each other")
    if not all_ and not chosen and provider != "csv":
        raise UsageError("name symbols with --symbol (or --symbols-file, --list) or take the whole universe with --all")


def _fetch_call(quotes: bool, interval: Interval | None, start: dt.date | None, end: dt.date | None) -> PipelineCall:
    """What `fetch` fetches: daily bars, or quotes (--quotes), or intraday bars (--interval).

    Raises:
        UsageError: --quotes with --interval, or with --start/--end.
    """
    from . import pipeline

    if quotes and interval is not None:
        raise UsageError("--quotes and --interval exclude each other: fetch one kind at a time")
    if quotes and (start or end):
        raise UsageError("--start/--end do not apply to --quotes (a quote is the latest price)")
    if quotes:
        return pipeline.fetch_quotes
    if interval is not None:
        return lambda settings, progress: pipeline.fetch_intraday(settings, interval.value, start, end, progress)
    return lambda settings, progress: pipeline.fetch(settings, start, end, progress)


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


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
          provider: Provider = None, path: CsvPath = None, start: Start = None, end: End = None,
          quotes: Quotes = False, interval: IntervalOption = None, config: Config = None,
          data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
          shard: ShardOption = None, run_id: RunId = None, metrics_file: MetricsFile = None, as_json: Json = False,
          debug: Debug = False) -> None:
    """Fetch the bars each symbol lacks into the lake (raw payloads archived, bad rows to rejects);
    with --quotes, quotes; with --interval, intraday bars."""
    opts = Options("fetch", as_json, debug, metrics_file, config=config, data_dir=data_dir, database_url=database_url,
                   log_format=log_format, shard=shard, run_id=run_id, provider=provider, symbols=symbol,
                   symbols_file=symbols_file, lists=list_, csv_path=path)
    _call(opts, lambda: _pipeline(opts, _fetch_call(quotes, interval, _date(start), _date(end)), progress=True,
                                  check=lambda settings: _need_selection(all_, opts, settings.provider)))


def _lake_command(name: str, help_text: str) -> None:
    """`transform` and `load`: the same options, each a stage over what changed since the last."""

    @app.command(name, help=help_text)
    def command(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
                log_format: LogFormat = None, shard: ShardOption = None, run_id: RunId = None,
                metrics_file: MetricsFile = None, as_json: Json = False, debug: Debug = False) -> None:
        from . import pipeline

        opts = Options(name, as_json, debug, metrics_file, config=config, data_dir=data_dir, database_url=database_url,
                       log_format=log_format, shard=shard, run_id=run_id)
        _call(opts, lambda: _pipeline(opts, getattr(pipeline, name), progress=True))  # the stage of that name


_lake_command("transform", "Compute indicators for the symbols whose prices changed.")
_lake_command("load", "Upsert what changed in the lake into the warehouse (a re-run writes nothing).")


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


@app.command()
def run(all_: All = False, symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None,
        provider: Provider = None, path: CsvPath = None, start: Start = None, end: End = None, config: Config = None,
        data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
        shard: ShardOption = None, run_id: RunId = None, metrics_file: MetricsFile = None, as_json: Json = False,
        debug: Debug = False) -> None:
    """validate -> fetch -> transform -> load -> quality-check; resumes from what is saved."""
    from . import pipeline

    opts = Options("run", as_json, debug, metrics_file, config=config, data_dir=data_dir, database_url=database_url,
                   log_format=log_format, shard=shard, run_id=run_id, provider=provider, symbols=symbol,
                   symbols_file=symbols_file, lists=list_, csv_path=path)
    _call(opts, lambda: _pipeline(opts, lambda settings, progress: pipeline.run(settings, _date(start), _date(end), progress),
                                  progress=True, check=lambda settings: _need_selection(all_, opts, settings.provider)))


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


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: the parser's usage errors become one line and exit 2."""
    interrupt.install()
    try:
        code = app(args=argv, standalone_mode=False, prog_name="stockpipe")
    except typer.TyperException as exc:  # the parser's usage errors (unknown option, bad value)
        ctx = getattr(exc, "ctx", None)  # only the parser's UsageError knows the (sub)command
        where = ctx.command_path if ctx is not None else "stockpipe"
        render.usage_error(where, exc.format_message())
        return int(exc.exit_code)
    except typer.Abort:
        render.interrupted()
        return int(ExitCode.INTERRUPTED)
    return int(code or 0)


if __name__ == "__main__":
    import sys

    sys.exit(main())
