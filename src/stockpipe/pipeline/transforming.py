"""`transform`: adjustment spans and indicators, and quotes_daily, for the symbols whose
inputs changed (symbol_state.needs_reprocess), a chunk of symbols at a time."""

from __future__ import annotations

import pandas as pd

from .. import calendars, logs
from ..errors import ExitCode
from ..models import DATASETS, StageResult, SymbolOutcome
from ..stages.indicators import compute_indicators
from ..storage import state
from ..storage.lake import Lake
from .context import SYMBOLS_PER_CHUNK, Context, chunks

PRICES, ACTIONS, INDICATORS = DATASETS["prices_daily"], DATASETS["corporate_actions"], DATASETS["indicators_daily"]
QUOTES, QUOTES_DAILY = DATASETS["quotes"], DATASETS["quotes_daily"]


@logs.stage("transform")
def transform_stage(ctx: Context) -> StageResult:
    """Recompute adjustment spans and indicators, from the whole history, for symbols whose
    prices or corporate actions changed (stages/adjust.py holds the conventions).

    Per chunk of symbols:
    - spans derived from prices + corporate_actions *replace* the symbols' spans in the lake
      (`Lake.replace`): a new split changes every earlier span, so none may stay stale;
      symbols whose spans changed get their `adjustments` lake_version bumped, and load
      replaces them in the warehouse, where the view prices_daily_adjusted applies them
      (full adjustment: splits and dividends);
    - indicators are computed on split-adjusted prices (a 10:1 split is not a -90% day);
    - the vendor's own adj_close, where sent, is kept as it is and compared with our full
      adjustment: counts adj_close_symbols_compared and adj_close_max_rel_diff_ppm (the
      worst symbol), and each symbol's outcome says how far it is; unusable actions are
      counted (actions_ignored) and named in the outcome.
    needs_reprocess is cleared only once the lake holds both, so a crash redoes the chunk.
    """
    from ..stages.adjust import adjustment_spans, apply_adjustments, unusable_actions, vendor_divergence

    adjustments = DATASETS["adjustments"]
    with ctx.engine.connect() as conn:
        pending = ctx.mine(sorted(set(state.symbols_where(conn, INDICATORS.name, "reprocess"))
                                  | set(state.symbols_where(conn, adjustments.name, "reprocess"))))
    lake, outcomes = Lake(ctx.settings.lake_dir), []
    counts = dict.fromkeys(("indicators_written", "adjustments_written", "actions_ignored",
                            "adj_close_symbols_compared", "adj_close_max_rel_diff_ppm"), 0)

    def notes(spans: pd.DataFrame, divergence: pd.DataFrame, ignored: pd.DataFrame) -> dict[str, str]:
        out: dict[str, list[str]] = {}
        for symbol, n in spans["symbol"].value_counts().items():
            out.setdefault(symbol, []).append(f"{n} adjustment span(s)")
        for row in divergence.itertuples(index=False):  # one row per symbol, not per bar
            out.setdefault(row.symbol, []).append(
                f"vendor adj_close within {row.max_rel_diff * 1e6:.0f} ppm of ours over {row.compared} bar(s)"
                f" (worst {row.max_at:%Y-%m-%d})")
        for symbol, group in ignored.groupby("symbol"):
            first = group.iloc[0]
            out.setdefault(symbol, []).append(
                f"{len(group)} corporate action(s) ignored, first {first['date']:%Y-%m-%d} {first['kind']} "
                f"{first['value']:g}: {first['reason']}")
        return {symbol: "; ".join(parts) for symbol, parts in out.items()}

    for done, chunk in enumerate(chunks(pending), start=1):
        prices, actions = lake.read_frame(PRICES, chunk), lake.read_frame(ACTIONS, chunk)
        spans = adjustment_spans(prices, actions)
        spans["computed_at"] = pd.Timestamp(ctx.now)
        respanned = lake.replace(adjustments, chunk, spans).changed
        indicators = compute_indicators(apply_adjustments(prices, spans, dividends=False))
        indicators["computed_at"] = pd.Timestamp(ctx.now)
        indicators = indicators.reindex(columns=INDICATORS.column_names)
        changed = lake.merge(INDICATORS, indicators).changed
        divergence, ignored = vendor_divergence(prices, spans), unusable_actions(prices, actions)
        counts["indicators_written"] += sum(changed.values())
        counts["adjustments_written"] += sum(respanned.values())
        counts["actions_ignored"] += len(ignored)
        counts["adj_close_symbols_compared"] += len(divergence)
        if len(divergence):
            counts["adj_close_max_rel_diff_ppm"] = max(counts["adj_close_max_rel_diff_ppm"],
                                                       int(round(float(divergence["max_rel_diff"].max()) * 1e6)))
        messages = notes(spans, divergence, ignored)
        with ctx.engine.begin() as conn:
            if changed:
                state.bump_versions(conn, INDICATORS.name, changed)
            if respanned:
                state.bump_versions(conn, adjustments.name, respanned)
            state.save_states(conn, [{"symbol": s, "dataset": name, "needs_reprocess": False}
                                     for name in (INDICATORS.name, adjustments.name) for s in chunk])
            chunk_outcomes = [SymbolOutcome(s, "transform", "ok", changed.get(s, 0) + respanned.get(s, 0),
                                            message=messages.get(s, "")) for s in chunk]
            state.record_events(conn, ctx.run_id, chunk_outcomes, ctx.now)
        logs.outcomes(chunk_outcomes)
        outcomes += chunk_outcomes
        ctx.progress("transform", done * SYMBOLS_PER_CHUNK, len(pending))
    counts = {"symbols": len(pending), "rows_written": counts["indicators_written"] + counts["adjustments_written"],
              **counts}
    return StageResult("transform", ExitCode.OK, counts, tuple(outcomes))


@logs.stage("quotes-daily")
def quotes_daily_stage(ctx: Context) -> StageResult:
    """Rebuild quotes_daily (stages/quotes.py) for symbols whose quotes changed."""
    from ..stages.quotes import quotes_to_daily

    with ctx.engine.connect() as conn:
        pending = ctx.mine(state.symbols_where(conn, QUOTES_DAILY.name, "reprocess"))
    exchange_of = calendars.exchange_resolver(ctx.settings.exchanges)
    lake, written, outcomes = Lake(ctx.settings.lake_dir), 0, []
    for chunk in chunks(pending):
        daily = quotes_to_daily(lake.read_frame(QUOTES, chunk), lambda s: calendars.timezone(exchange_of(s)))
        daily["computed_at"] = pd.Timestamp(ctx.now)
        changed = lake.merge(QUOTES_DAILY, daily).changed
        written += sum(changed.values())
        with ctx.engine.begin() as conn:
            if changed:
                state.bump_versions(conn, QUOTES_DAILY.name, changed)
            state.save_states(conn, [{"symbol": s, "dataset": QUOTES_DAILY.name, "needs_reprocess": False}
                                     for s in chunk])
            chunk_outcomes = [SymbolOutcome(s, "quotes-daily", "ok", changed.get(s, 0)) for s in chunk]
            state.record_events(conn, ctx.run_id, chunk_outcomes, ctx.now)
        logs.outcomes(chunk_outcomes)
        outcomes += chunk_outcomes
    return StageResult("quotes-daily", ExitCode.OK, {"symbols": len(pending), "rows_written": written},
                       tuple(outcomes))
