"""`reset`: give symbols another chance after failures, with a full reload.

A symbol whose fetch failed `max_consecutive_failures` times in a row is skipped by
planning (stages/plan.py) until it is reset. `reset` sets its consecutive failures back to
0, clears its last error and marks it `needs_reprocess`, which the next plan turns into a
full reload (mode bulk) and the fetch clears in the transaction that saves the reloaded
bars' state. It is recorded like any run (pipeline_runs, one run_events row per symbol
with stage `reset`), under the lock, so it never races a fetch of the same symbols.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from ..config import Settings, normalize_symbol
from ..errors import ExitCode, NoDataError, UsageError
from ..models import CommandResult, StageResult, SymbolOutcome
from ..storage import state
from .context import Clock, finish, no_progress, recorded

DATASET = "prices_daily"


def reset(settings: Settings, symbols: Sequence[str] = (), *, failed: bool = False, all_skipped: bool = False,
          clock: Clock | None = None) -> CommandResult:
    """Reset `symbols`, or every failing symbol (`failed`), or every skipped one (`all_skipped`).

    Raises:
        UsageError: not exactly one of symbols, --failed, --all-skipped.
        BadInputError: a malformed symbol.
        NoDataError: none of the named symbols has a state (never fetched).
    """
    from .. import calendars

    if (bool(symbols) + failed + all_skipped) != 1:
        raise UsageError("reset needs exactly one of: SYMBOL..., --failed, --all-skipped")
    named = [normalize_symbol(s, "SYMBOL") for s in symbols]
    args = {"symbols": named, "failed": failed, "all_skipped": all_skipped}
    with recorded(settings, "reset", args, no_progress, clock or calendars.utcnow) as ctx:
        with ctx.engine.begin() as conn:
            least = settings.max_consecutive_failures if all_skipped else 1
            chosen = named or state.failing_symbols(conn, DATASET, least)
            done = state.reset_symbols(conn, DATASET, ctx.mine(chosen))
            if named and not done:
                raise NoDataError(f"no state for {', '.join(named[:5])}: never fetched, nothing to reset "
                                  "(`stockpipe status` lists the symbols known)")
            outcomes = [SymbolOutcome(s, "reset", "ok", message="failures cleared; a full reload next run")
                        for s in done]
            state.record_events(conn, ctx.run_id, outcomes, ctx.now)
        unknown = sorted(set(named) - set(done))
        message = f"{len(done)} symbol(s) reset: a full reload (bulk) next run" + (
            f"; no state for {', '.join(unknown[:5])} (never fetched)" if unknown else "")
        stage = StageResult("reset", ExitCode.OK, {"symbols": len(done), "unknown": len(unknown)}, tuple(outcomes),
                            message=message)
        return dataclasses.replace(finish(ctx, "reset", (stage,), ExitCode.OK), message=message)
