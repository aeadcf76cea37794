"""The `stockpipe` command: parse options, build settings, call one pipeline function, render.

This is the one place that maps errors to exit codes (`_call`). pandas and pyarrow are
imported only by the commands that need them, so `--help` and `health-check` stay fast.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from . import interrupt, logs, render
from .errors import ExitCode, StockpipeError, UsageError
from .providers.base import INTERVALS

app = typer.Typer(
    name="stockpipe",
    help="ETL for stock-market data: fetch daily bars, validate, compute indicators, "
    "keep a Parquet lake and load a SQL warehouse. Exit codes: see the README.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Warehouse migrations (alembic, shipped with the package).", no_args_is_help=True)
app.add_typer(db_app, name="db")

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


Quotes = Annotated[bool, typer.Option("--quotes", help="Fetch one quote per symbol into `quotes` instead of daily bars "
                                      "(yahoo, finnhub, alphavantage, eodhd).")]
IntervalOption = Annotated[Optional[Interval], typer.Option(
    "--interval", help="Fetch intraday bars of this size into `prices_intraday` instead of daily bars, for the "
    "sessions --start..--end within what the vendor keeps (default: all it keeps).")]

log = logging.getLogger("stockpipe")


def _settings(**flags: Any):
    from .config import load_settings

    if flags.get("symbols"):
        flags["symbols"] = tuple(flags["symbols"])
    settings = load_settings(flags)
    logs.configure(settings.log_format, flags.get("debug", False))
    return settings


def _exported(settings, metrics_file: Path | None, call: Callable[[], Any]) -> Any:
    """`call()`, its result's metrics written to --metrics-file (the path is checked first,
    so a typo costs no work)."""
    if metrics_file is None:
        return call()
    from . import metrics

    metrics.check_path(metrics_file)
    result = call()
    metrics.export(settings, result, metrics_file)
    return result


def _call(command: str, as_json: bool, debug: bool, action: Callable[[], Any]) -> None:
    """Run one pipeline call; the only place that turns errors into exit codes."""
    try:
        result = action()
    except StockpipeError as exc:
        render.emit_error(command, str(exc), exc.exit_code, as_json)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        render.emit_error(command, "interrupted: the open transaction was rolled back; run again to resume",
                          ExitCode.INTERRUPTED, as_json)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except (typer.Exit, typer.TyperException):
        raise
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: say so, trace only with --debug
        if debug:
            traceback.print_exc()
        render.emit_error(command, f"unexpected {type(exc).__name__} (a bug; rerun with --debug for the traceback)",
                          ExitCode.BUG, as_json)
        raise typer.Exit(int(ExitCode.BUG)) from None
    render.emit(result, as_json)
    if result.message and result.exit_code not in (ExitCode.OK, ExitCode.NOTHING_TO_DO):
        render.error_line(command, result.message, result.exit_code)
    raise typer.Exit(int(result.exit_code))


def _need_selection(all_: bool, symbols, symbols_file, lists, provider: str | None) -> None:
    chosen = bool(symbols or symbols_file or lists)
    if all_ and chosen:
        raise UsageError("--all and --symbol/--symbols-file/--list exclude each other")
    if not all_ and not chosen and provider != "csv":
        raise UsageError("name symbols with --symbol (or --symbols-file, --list) or take the whole universe with --all")


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


@app.command()
def validate(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None, provider: Provider = None,
             symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None, path: CsvPath = None,
             as_json: Json = False, debug: Debug = False) -> None:
    """Check configuration, credentials, data directory, database and symbols."""
    from . import pipeline

    _call("validate", as_json, debug, lambda: pipeline.validate(_settings(
        config=config, data_dir=data_dir, database_url=database_url, provider=provider, symbols=symbol,
        symbols_file=symbols_file, lists=list_, csv_path=path, debug=debug)))


@app.command()
def fetch(all_: All = False, symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None,
          provider: Provider = None, path: CsvPath = None, start: Start = None, end: End = None,
          quotes: Quotes = False, interval: IntervalOption = None, config: Config = None,
          data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
          shard: ShardOption = None, run_id: RunId = None, metrics_file: MetricsFile = None, as_json: Json = False,
          debug: Debug = False) -> None:
    """Fetch the bars each symbol lacks into the lake (raw payloads archived, bad rows to rejects);
    with --quotes, quotes; with --interval, intraday bars."""
    _fetching("fetch", **locals())


@app.command()
def transform(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
              log_format: LogFormat = None, shard: ShardOption = None, run_id: RunId = None,
              metrics_file: MetricsFile = None, as_json: Json = False, debug: Debug = False) -> None:
    """Compute indicators for the symbols whose prices changed."""
    from . import pipeline

    def action():
        settings = _settings(config=config, data_dir=data_dir, database_url=database_url, log_format=log_format,
                             shard=shard, run_id=run_id, debug=debug)
        with render.progress(not as_json) as progress:
            return _exported(settings, metrics_file, lambda: pipeline.transform(settings, progress))

    _call("transform", as_json, debug, action)


@app.command()
def load(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
         log_format: LogFormat = None, shard: ShardOption = None, run_id: RunId = None,
         metrics_file: MetricsFile = None, as_json: Json = False, debug: Debug = False) -> None:
    """Upsert what changed in the lake into the warehouse (a re-run writes nothing)."""
    from . import pipeline

    def action():
        settings = _settings(config=config, data_dir=data_dir, database_url=database_url, log_format=log_format,
                             shard=shard, run_id=run_id, debug=debug)
        with render.progress(not as_json) as progress:
            return _exported(settings, metrics_file, lambda: pipeline.load(settings, progress))

    _call("load", as_json, debug, action)


@app.command("quality-check")
def quality_check(symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None, config: Config = None,
                  data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
                  shard: ShardOption = None, run_id: RunId = None, metrics_file: MetricsFile = None,
                  as_json: Json = False, debug: Debug = False) -> None:
    """Run the quality rules on the warehouse; exit 6 when an error-severity rule fails."""
    from . import pipeline

    def action():
        settings = _settings(config=config, data_dir=data_dir, database_url=database_url, symbols=symbol,
                             symbols_file=symbols_file, lists=list_, log_format=log_format, shard=shard,
                             run_id=run_id, debug=debug)
        return _exported(settings, metrics_file, lambda: pipeline.quality_check(settings))

    _call("quality-check", as_json, debug, action)


@app.command("health-check")
def health_check(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
                 log_format: LogFormat = None, metrics_file: MetricsFile = None, as_json: Json = False,
                 debug: Debug = False) -> None:
    """Database, migrations, runs on time, failing symbols, quota, disk, lake.
    Exit 0 ok, 1 warning, 2 critical, 3 unknown."""
    from . import pipeline

    try:
        settings = _settings(config=config, data_dir=data_dir, database_url=database_url, log_format=log_format,
                             debug=debug)
        result = _exported(settings, metrics_file, lambda: pipeline.health_check(settings))
    except StockpipeError as exc:  # monitors expect 3 (unknown) when the check itself cannot run
        render.emit_error("health-check", str(exc), 3, as_json)
        raise typer.Exit(3) from None
    render.emit(result, as_json)
    raise typer.Exit(int(result.exit_code))


@app.command()
def run(all_: All = False, symbol: Symbols = None, symbols_file: SymbolsFile = None, list_: Lists = None,
        provider: Provider = None, path: CsvPath = None, start: Start = None, end: End = None, config: Config = None,
        data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
        shard: ShardOption = None, run_id: RunId = None, metrics_file: MetricsFile = None, as_json: Json = False,
        debug: Debug = False) -> None:
    """validate -> fetch -> transform -> load -> quality-check; resumes from what is saved."""
    _fetching("run", **locals())


def _fetching(command: str, *, all_, symbol, symbols_file, list_, provider, path, start, end, config, data_dir,
              database_url, log_format, shard, run_id, as_json, debug, metrics_file: Path | None = None,
              quotes: bool = False, interval: Interval | None = None) -> None:
    """`fetch` and `run`: same options, same checks, a different pipeline function
    (`fetch --quotes` and `fetch --interval` each have their own)."""
    from . import pipeline

    def action():
        if quotes and interval is not None:
            raise UsageError("--quotes and --interval exclude each other: fetch one kind at a time")
        if quotes and (start or end):
            raise UsageError("--start/--end do not apply to --quotes (a quote is the latest price)")
        settings = _settings(config=config, data_dir=data_dir, database_url=database_url, provider=provider,
                             symbols=symbol, symbols_file=symbols_file, lists=list_, csv_path=path,
                             log_format=log_format, shard=shard, run_id=run_id, debug=debug)
        _need_selection(all_, symbol, symbols_file, list_, settings.provider)
        with render.progress(not as_json) as progress:
            if quotes:
                return _exported(settings, metrics_file, lambda: pipeline.fetch_quotes(settings, progress))
            if interval is not None:
                return _exported(settings, metrics_file, lambda: pipeline.fetch_intraday(
                    settings, interval.value, _date(start), _date(end), progress))
            call = pipeline.fetch if command == "fetch" else pipeline.run
            return _exported(settings, metrics_file, lambda: call(settings, _date(start), _date(end), progress))

    _call(command, as_json, debug, action)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head", config: Config = None,
               data_dir: DataDir = None, database_url: DatabaseUrl = None, as_json: Json = False, debug: Debug = False) -> None:
    """Migrate the warehouse to the newest revision (or REVISION)."""
    from . import pipeline

    _call("db upgrade", as_json, debug, lambda: pipeline.db_upgrade(_settings(
        config=config, data_dir=data_dir, database_url=database_url, debug=debug), revision))


@db_app.command("current")
def db_current(config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
               as_json: Json = False, debug: Debug = False) -> None:
    """Show the warehouse's revision and the newest one shipped."""
    from . import pipeline

    _call("db current", as_json, debug, lambda: pipeline.db_current(_settings(
        config=config, data_dir=data_dir, database_url=database_url, debug=debug)))


schedule_app = typer.Typer(help="Scheduling files for this installation: systemd units or a crontab (plain text).",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")
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

    _schedule_files("schedule systemd", lambda: schedule.systemd_units(prefix, user, tuple(credential or ())), output)


@schedule_app.command("cron")
def schedule_cron(
        prefix: SchedulePrefix = "/opt/stockpipe/venv",
        data_dir: Annotated[str, typer.Option("--data-dir", help="STOCKPIPE_DATA_DIR of the cron job (also holds its flock file).")] = "/var/lib/stockpipe",
        output: ScheduleOutput = None) -> None:
    """Print the crontab of the daily run (22:30 New York on weekdays) for a host whose cron runs in UTC."""
    from . import schedule

    _schedule_files("schedule cron", lambda: {"stockpipe.crontab": schedule.crontab(prefix, data_dir)}, output)


def _schedule_files(command: str, render_files: Callable[[], dict[str, str]], output: Path | None) -> None:
    """Plain text on stdout (files separated by `# ==> NAME <==`), or the files written into --output."""
    from . import schedule

    try:
        files = render_files()
        if output is not None:
            for path in schedule.write(files, output):
                sys.stdout.write(f"{path}\n")
            return
    except StockpipeError as exc:
        render.emit_error(command, str(exc), exc.exit_code, False)
        raise typer.Exit(int(exc.exit_code)) from None
    except OSError as exc:
        render.emit_error(command, f"cannot write into {output}: {exc.strerror}", ExitCode.UNAVAILABLE, False)
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None
    if len(files) == 1:
        sys.stdout.write(next(iter(files.values())))
        return
    sys.stdout.write("\n".join(f"# ==> {name} <==\n{text}" for name, text in files.items()))


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: usage errors become one line and exit 2."""
    interrupt.install()
    try:
        code = app(args=argv, standalone_mode=False, prog_name="stockpipe")
    except typer.TyperException as exc:  # the parser's usage errors (unknown option, bad value)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "stockpipe"
        sys.stderr.write(f"{where}: error: {exc.format_message()} (see '{where} --help')\n")
        return int(getattr(exc, "exit_code", ExitCode.USAGE))
    except typer.Abort:
        sys.stderr.write("stockpipe: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
