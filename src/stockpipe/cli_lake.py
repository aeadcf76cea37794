"""`stockpipe lake optimize`, added to cli.py's app by `register` (cli.py is at its 400-line
limit); parsed and rendered as every command, through cli.py's `_call` and `_pipeline`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from .options import Config, DatabaseUrl, DataDir, Debug, Json, Options

VacuumHours = Annotated[int | None, typer.Option(
    "--vacuum-hours", min=0, help="Then delete the files no version of the last N hours needs (drops the change "
    "feed before that: a consumer further behind reloads the snapshot).")]


def register(app: Any, lake_app: Any, call: Callable[..., None], pipeline: Callable[..., int]) -> None:
    """Add the `lake` group, with `optimize`, to `app`; `call` and `pipeline` are cli.py's
    `_call` and `_pipeline`."""
    app.add_typer(lake_app, name="lake")

    @lake_app.command("optimize")
    def optimize(vacuum_hours: VacuumHours = None, config: Config = None, data_dir: DataDir = None,
                 database_url: DatabaseUrl = None, as_json: Json = False, debug: Debug = False) -> None:
        """Compact the small files nightly runs leave in the lake's tables (rows unchanged)."""
        from . import pipeline as library

        opts = Options("lake optimize", as_json, debug, config=config, data_dir=data_dir, database_url=database_url)
        call(opts, lambda: pipeline(opts, lambda settings, _: library.lake_optimize(settings, vacuum_hours)))
