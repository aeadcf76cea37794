"""`quality-check`: the quality rules over the warehouse, one quality_results row per
(rule, symbol), and the gaps found turned into refetches for the next plan."""

from __future__ import annotations

from .. import calendars, logs
from ..errors import ExitCode
from ..models import StageResult
from ..stages.quality import evaluate
from ..storage import state, warehouse
from .context import Context
from .reading import named_symbols


@logs.stage("quality-check")
def quality_stage(ctx: Context) -> StageResult:
    """Judge every symbol the warehouse holds (and the configured universe's, so a symbol
    with no bar at all is judged too); symbols named on the command line (--symbol,
    --symbols-file, --list) narrow it to exactly those.

    Records one quality_results row per (rule, symbol) and sets each symbol's
    symbol_state.refetch_from to its earliest missing session (NULL without gaps), which
    the next fetch plan turns into a refetch.
    """
    from ..stages.quality import thresholds
    from ..storage import quality_data

    settings = ctx.settings
    limits = thresholds(settings.quality, settings.stale_after_sessions)
    calendar = quality_data.Calendar(
        exchange_of=lambda symbol: calendars.exchange_for(symbol, settings.exchanges),
        sessions_between=calendars.sessions_between,
        latest_session=lambda exchange: calendars.latest_closed_session(ctx.now, exchange))
    with warehouse.snapshot(ctx.engine) as conn:  # one state: another shard's load may commit meanwhile
        facts = quality_data.collect(conn, calendar, limits)
    named = named_symbols(settings)
    universe = set(settings.symbols) if settings.universe_source != "default" else set()
    symbols = ctx.mine(sorted(set(named) if named else set(facts) | universe))
    checks = evaluate(facts, symbols, limits)
    with ctx.engine.begin() as conn:
        state.record_quality(conn, ctx.run_id, checks, ctx.now)
        quality_data.save_refetch(conn, {s: facts[s]["first_missing"] if s in facts else None for s in symbols})
    errors = [c for c in checks if not c.ok and c.severity == "error"]
    warnings = [c for c in checks if not c.ok and c.severity != "error"]
    counts = {"checks": len(checks), "errors": len(errors), "warnings": len(warnings), "symbols_checked": len(symbols)}
    if errors:
        first = errors[0]
        message = f"{len(errors)} error-severity check(s) failed; first: {first.name} for {first.symbol}: {first.detail}"
        return StageResult("quality-check", ExitCode.QUALITY, counts, checks=tuple(checks), message=message)
    return StageResult("quality-check", ExitCode.OK, counts, checks=tuple(checks))
