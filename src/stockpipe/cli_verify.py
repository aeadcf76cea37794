"""`stockpipe verify`, added to cli.py's app by `register` (cli.py is at its 400-line limit);
parsed and rendered as every command, through cli.py's `_call` and `_pipeline`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .options import Config, DatabaseUrl, DataDir, Debug, Json, Options, Repair


def register(app: Any, call: Callable[..., None], pipeline: Callable[..., int]) -> None:
    """Add the `verify` command to `app`; `call` and `pipeline` are cli.py's `_call` and `_pipeline`."""

    @app.command()
    def verify(repair: Repair = False, config: Config = None, data_dir: DataDir = None,
               database_url: DatabaseUrl = None, as_json: Json = False, debug: Debug = False) -> None:
        """Check the invariants: lake files readable to their last page, no duplicate keys, the warehouse equal
        to the lake, symbol_state not ahead, database integrity, migrations, temp files. Names every problem;
        exit 0 when all hold, 7 when not."""
        from .pipeline.verify import verify as check  # `pipeline.verify` is the module

        opts = Options("verify", as_json, debug, config=config, data_dir=data_dir, database_url=database_url)
        call(opts, lambda: pipeline(opts, lambda settings, _: check(settings, repair)))
