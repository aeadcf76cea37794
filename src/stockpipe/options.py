"""The command line's shared options (Typer `Annotated` types) and `Options`, what a command
was asked besides its own arguments. cli.py declares the commands with them.

Help texts are written plainly; escape_help (below) escapes rich markup in every one of them
before the parser shows any, so `[universe.lists]` reads as written.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

import typer

from . import logs
from .errors import StockpipeError, UsageError
from .providers.base import INTERVALS

if TYPE_CHECKING:
    from .config import Settings

Config = Annotated[Optional[Path], typer.Option("--config", help="stockpipe.toml to read (default: STOCKPIPE_CONFIG, else ./stockpipe.toml).")]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory for the lake, raw payloads and the SQLite file.")]
DatabaseUrl = Annotated[Optional[str], typer.Option("--database-url", help="Warehouse URL (default sqlite:///<data dir>/stockpipe.db).")]
Provider = Annotated[Optional[str], typer.Option("--provider", help="Data source: yahoo (default), alphavantage, eodhd, finnhub, polygon, tiingo, stooq, demo (synthetic, offline), csv (local files).")]
Symbols = Annotated[Optional[list[str]], typer.Option("--symbol", "-s", help="A ticker; repeat for several.")]
SymbolsFile = Annotated[Optional[Path], typer.Option("--symbols-file", help="File of tickers, one per line, # comments.")]
Lists = Annotated[Optional[list[str]], typer.Option("--list", help="A named list from the config's [universe.lists]; repeatable.")]
All = Annotated[bool, typer.Option("--all", help="The whole configured universe.")]
Exchanges = Annotated[Optional[list[str]], typer.Option("--exchange", help="An exchange whose listed symbols (the assets "
                      "table, read from its symbol list) are the universe, e.g. US or LSE; repeatable.")]
Start = Annotated[Optional[dt.datetime], typer.Option("--start", formats=["%Y-%m-%d"], help="First date to fetch (refetches from there).")]
End = Annotated[Optional[dt.datetime], typer.Option("--end", formats=["%Y-%m-%d"], help="Last date to fetch (default: latest closed session).")]
From = Annotated[Optional[dt.datetime], typer.Option("--start", formats=["%Y-%m-%d"], help="First date (YYYY-MM-DD).")]
To = Annotated[Optional[dt.datetime], typer.Option("--end", formats=["%Y-%m-%d"], help="Last date (YYYY-MM-DD).")]
CsvPath = Annotated[Optional[Path], typer.Option("--path", help="CSV file or folder (provider csv).")]
LogFormat = Annotated[Optional[str], typer.Option("--log-format", help="Log lines on stderr: text or json.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")]
Probe = Annotated[bool, typer.Option("--probe", help="Also make one cheap call per configured provider: latency, "
                                     "key accepted, quota left (exit 5 when one is down, 4 when it refuses the key).")]
Repair = Annotated[bool, typer.Option("--repair", help="verify: move damaged lake files to <data dir>/quarantine and "
                   "have their rows fetched again; reset what disagrees; delete temp files (README: Reliability).")]
Full = Annotated[bool, typer.Option("--full", help="Ignore the watermark: redo it from the lake's whole current "
                                    "version (transform: recompute every symbol; load: replace the warehouse's rows).")]
ShardOption = Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="Work on shard I of N: a stable hash slice "
                        "of the universe (the N slices cover it exactly once); shards run side by side, each under its own lock.")]
RunId = Annotated[Optional[str], typer.Option("--run-id", help="Name this run (Airflow's {{ run_id }}, systemd's "
                  "$INVOCATION_ID); stored in pipeline_runs and on every run_events row (default: a new id).")]
MetricsFile = Annotated[Optional[Path], typer.Option("--metrics-file", metavar="PATH", help="Also write this command's "
                        "Prometheus metrics to PATH (*.prom, for node_exporter's textfile collector), atomically.")]
Adjusted = Annotated[bool, typer.Option("--adjusted", help="Prices adjusted for splits and dividends (the view "
                     "prices_daily_adjusted) instead of as traded.")]

ReportFile = Annotated[Optional[Path], typer.Option("--report", metavar="FILE.html", help="At the end, also write "
                       "the run's report (as `stockpipe report` does) to FILE.html.")]
SymbolArg = Annotated[str, typer.Argument(metavar="SYMBOL", help="The ticker, e.g. AAPL.")]

# Intraday bar sizes: m1 = "1m", ... (providers.base, which imports nothing heavy).
Interval = enum.Enum("Interval", [(f"m{name[:-1]}", name) for name in INTERVALS], type=str)

Quotes = Annotated[bool, typer.Option("--quotes", help="Fetch one quote per symbol into `quotes` instead of daily bars "
                                      "(yahoo, finnhub, alphavantage, eodhd).")]
IntervalOption = Annotated[Optional[Interval], typer.Option(
    "--interval", help="Fetch intraday bars of this size into `prices_intraday` instead of daily bars, for the "
    "sessions --start..--end within what the vendor keeps (default: all it keeps).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print per provider the calls the plan would make, their "
                   "quota cost and the projected finish under the rate limits; write nothing.")]
StatusSymbol = Annotated[Optional[str], typer.Option("--symbol", "-s", help="Also this symbol's whole story: state, "
                         "last error, recent run events, open quality failures, price revisions.")]
ResetSymbols = Annotated[Optional[list[str]], typer.Argument(metavar="[SYMBOL]...", help="The tickers to reset.")]
Failed = Annotated[bool, typer.Option("--failed", help="Every symbol whose last fetch failed.")]
AllSkipped = Annotated[bool, typer.Option("--all-skipped", help="Every symbol skipped after max_consecutive_failures "
                                          "failed fetches in a row.")]


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
    list_exchanges: Sequence[str] | None = None

    def settings(self, outcomes_listed: bool = False) -> Settings:
        """The Settings of these flags over the environment and config file; logging set to
        match (and set from the flag or STOCKPIPE_LOG_FORMAT when the settings themselves
        are refused, so that refusal is logged in the format asked for).

        Args:
            outcomes_listed: the result will list every symbol's failure on a terminal, so
                text logs leave out the per-symbol lines (a failure is shown once).

        Raises:
            StockpipeError: see config.load_settings.
        """
        from .config import early_log_format, load_settings

        try:
            settings = load_settings({name: getattr(self, name) for name in _SETTINGS_FLAGS})
        except StockpipeError:
            logs.configure(early_log_format(self.log_format), self.debug)
            raise
        logs.configure(settings.log_format, self.debug, outcomes=not outcomes_listed)
        return settings


_SETTINGS_FLAGS = ("config", "data_dir", "database_url", "log_format", "shard", "run_id", "provider", "symbols",
                   "symbols_file", "lists", "csv_path", "list_exchanges")


def day(value: dt.datetime | None) -> dt.date | None:
    """A --start/--end value as a date."""
    return value.date() if value else None


def window(start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.date | None, dt.date | None]:
    """--start and --end as dates.

    Raises:
        UsageError: --start is after --end (an empty window would silently do nothing).
    """
    first, last = day(start), day(end)
    if first and last and first > last:
        raise UsageError(f"--start {first} is after --end {last}: swap them")
    return first, last


def need_selection(all_: bool, opts: Options, provider: str, dry_run: bool = False, report: Path | None = None) -> None:
    """`fetch` and `run` take --all or named symbols, never both, never neither (except from
    csv files, which name their symbols); with --dry-run, no option that writes a file
    (--metrics-file, --report)."""
    if dry_run and (opts.metrics_file is not None or report is not None):
        raise UsageError("--dry-run writes nothing: leave out --metrics-file and --report")
    chosen = bool(opts.symbols or opts.symbols_file or opts.lists or opts.list_exchanges)
    if all_ and chosen:
        raise UsageError("--all and --symbol/--symbols-file/--list/--exchange exclude each other")
    if not all_ and not chosen and provider != "csv":
        raise UsageError("name symbols with --symbol (or --symbols-file, --list) or take the whole universe with --all")


def fetch_call(quotes: bool, interval: Interval | None, start: dt.date | None, end: dt.date | None,
               dry_run: bool = False) -> Any:
    """What `fetch` fetches: daily bars, or quotes (--quotes), or intraday bars (--interval);
    with --dry-run, only the daily plan and its cost. A pipeline call (settings, progress) -> result.

    Raises:
        UsageError: --quotes with --interval, or with --start/--end; --dry-run with either.
    """
    from . import pipeline

    if dry_run and (quotes or interval is not None):
        raise UsageError("--dry-run plans daily bars only: leave out --quotes/--interval")
    if dry_run:
        return plan_call("fetch", start, end)
    if quotes and interval is not None:
        raise UsageError("--quotes and --interval exclude each other: fetch one kind at a time")
    if quotes and (start or end):
        raise UsageError("--start/--end do not apply to --quotes (a quote is the latest price)")
    if quotes:
        return pipeline.fetch_quotes
    if interval is not None:
        return lambda settings, progress: pipeline.fetch_intraday(settings, interval.value, start, end, progress)
    return lambda settings, progress: pipeline.fetch(settings, start, end, progress)


def plan_call(command: str, start: dt.date | None, end: dt.date | None) -> Any:
    """`fetch --dry-run` / `run --dry-run`: the plan and its cost (pipeline/forecast.py)."""
    from .pipeline.forecast import plan_only

    return lambda settings, _: plan_only(settings, command, start, end)


def escape_help(command: Any) -> Any:
    """Escape rich markup in every help text of `command` and its subcommands, so that
    `[universe.lists]` or `[plot]` read as written instead of being taken for styles. A
    command's docstring is joined into paragraphs (its line breaks are the source's, not
    the terminal's)."""
    import inspect
    import re

    from rich.markup import escape

    for name in ("help", "short_help", "epilog"):
        if isinstance(getattr(command, name, None), str):
            text = re.sub(r"(?<!\n)\n(?!\n)", " ", inspect.cleandoc(getattr(command, name)))
            setattr(command, name, escape(text))
    for param in getattr(command, "params", ()):
        if isinstance(getattr(param, "help", None), str):
            param.help = escape(param.help)
    for sub in getattr(command, "commands", {}).values():
        escape_help(sub)
    return command
