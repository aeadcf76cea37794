"""The operations commands of the `stockpipe` CLI: `universe refresh` and `prune`.

Declared here, registered on cli.py's app by `register`, so cli.py stays one screen of
the commands everyone runs. Like cli.py's commands, each parses options, builds settings
and calls one pipeline function; cli.py's `run` (its one error handler and renderer) runs it.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Optional

import typer

from .options import Config, DatabaseUrl, DataDir, Debug, Exchanges, Json, LogFormat, Options

Datasets = Annotated[Optional[list[str]], typer.Option("--dataset", "-d", help="quotes, prices_intraday, rejects, raw, "
                     "runs, or prices_daily (only with --older-than and --yes); repeatable (default: all but prices_daily).")]
OlderThan = Annotated[Optional[str], typer.Option("--older-than", metavar="AGE", help="Remove what is older than AGE: "
                      "90d, 12w, 2y (default per dataset: quotes, prices_intraday, raw 90d; rejects, runs 365d).")]
Yes = Annotated[bool, typer.Option("--yes", help="Confirm pruning prices_daily (price history is gone for good).")]


def register(app: Any, make_typer: Callable[..., Any], run: Callable[[Options, Callable], None]) -> None:
    """Add the commands to `app`; `run(opts, call)` builds the settings, calls `call(settings,
    progress)` and renders its result under cli.py's error handler."""
    universe = make_typer(help="The universe from the exchanges' symbol lists (the assets table).")
    app.add_typer(universe, name="universe")

    @universe.command("refresh")
    def universe_refresh(exchange: Exchanges = None, config: Config = None, data_dir: DataDir = None,
                         database_url: DatabaseUrl = None, log_format: LogFormat = None, as_json: Json = False,
                         debug: Debug = False) -> None:
        """Read each exchange's symbol list ([universe] exchanges, or --exchange) into the assets table: new
        symbols are added (the next fetch backfills them), vanished ones marked delisted (no longer fetched)."""
        from .pipeline.universe import refresh

        opts = Options("universe refresh", as_json, debug, config=config, data_dir=data_dir,
                       database_url=database_url, log_format=log_format, list_exchanges=exchange)
        run(opts, lambda settings, report: refresh(settings, report))

    @app.command("prune")
    def prune(dataset: Datasets = None, older_than: OlderThan = None, yes: Yes = False, config: Config = None,
              data_dir: DataDir = None, database_url: DatabaseUrl = None, log_format: LogFormat = None,
              as_json: Json = False, debug: Debug = False) -> None:
        """Remove old quotes, intraday bars, rejects, raw payloads and run records (lake and warehouse), then
        vacuum lake versions older than time_travel_days; recorded as a run. Prices only when named, with --yes."""
        from .pipeline.prune import prune as prune_old

        opts = Options("prune", as_json, debug, config=config, data_dir=data_dir, database_url=database_url,
                       log_format=log_format)
        run(opts, lambda settings, report: prune_old(settings, dataset or (), older_than, yes, report))
