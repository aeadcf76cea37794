"""`stockpipe status` and `stockpipe reset`, added to cli.py's app by `register` (cli.py is at
its 400-line limit, as for `verify`); parsed and rendered as every command, through cli.py's
`_call`, `_pipeline` and `_look`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .options import (AllSkipped, Config, DatabaseUrl, DataDir, Debug, Failed, Json, LogFormat, Options, ResetSymbols,
                      StatusSymbol)


def register(app: Any, call: Callable[..., None], pipeline: Callable[..., int], look: Callable[..., int]) -> None:
    """Add `status` and `reset` to `app`; the callables are cli.py's `_call`, `_pipeline` and `_look`."""

    @app.command()
    def status(symbol: StatusSymbol = None, config: Config = None, data_dir: DataDir = None,
               database_url: DatabaseUrl = None, as_json: Json = False, debug: Debug = False) -> None:
        """The universe from the run metadata alone (no price scan): per exchange and provider the symbols current,
        stale, failing, skipped and never loaded, last success, rows held; quota left today; with --symbol, that
        symbol's whole story. Exit 0."""
        from .pipeline.status import status as universe_status

        opts = Options("status", as_json, debug, config=config, data_dir=data_dir, database_url=database_url)
        call(opts, lambda: look(opts, lambda settings: universe_status(settings, symbol)))

    @app.command()
    def reset(symbols: ResetSymbols = None, failed: Failed = False, all_skipped: AllSkipped = False,
              config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
              log_format: LogFormat = None, as_json: Json = False, debug: Debug = False) -> None:
        """Clear symbols' failures and mark them for a full reload (mode bulk) next run: SYMBOL..., --failed or
        --all-skipped."""
        from .pipeline.reset import reset as reset_symbols

        opts = Options("reset", as_json, debug, config=config, data_dir=data_dir, database_url=database_url,
                       log_format=log_format)
        call(opts, lambda: pipeline(opts, lambda settings, _: reset_symbols(
            settings, tuple(symbols or ()), failed=failed, all_skipped=all_skipped)))
