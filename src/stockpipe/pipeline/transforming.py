"""`transform`: adjustment spans and indicators, and quotes_daily, for the symbols whose
inputs changed in the lake, a chunk of symbols at a time.

What changed comes from the lake's change feed since transform's watermark (changes.py). A
symbol with a new or restated bar gets its indicators rewritten from that bar's date on
(every indicator is causal; TA-Lib still runs over the whole in-memory history for its
warm-up); a symbol with a changed corporate action or changed adjustment spans (a split) is
rewritten whole. The watermark advances only with the last chunk's commit, so a run killed
half way redoes the rest, and what it had written merges again as "no change".
"""

from __future__ import annotations

import datetime as dt
from typing import Mapping

import pandas as pd

from .. import calendars, crashpoints, logs
from ..errors import ExitCode
from ..models import DATASETS, StageResult, SymbolOutcome
from ..stages.indicators import compute_indicators
from ..storage import state
from ..storage.lake import Commit, Lake
from . import changes
from .context import SYMBOLS_PER_CHUNK, Context, chunks

PRICES, ACTIONS, INDICATORS = DATASETS["prices_daily"], DATASETS["corporate_actions"], DATASETS["indicators_daily"]
ADJUSTMENTS, QUOTES, QUOTES_DAILY = DATASETS["adjustments"], DATASETS["quotes"], DATASETS["quotes_daily"]
_COUNTS = ("indicators_written", "adjustments_written", "actions_ignored", "adj_close_symbols_compared",
           "adj_close_max_rel_diff_ppm")


@logs.stage("transform")
def transform_stage(ctx: Context, full: bool = False) -> StageResult:
    """Recompute adjustment spans and indicators for symbols whose prices or corporate
    actions changed (stages/adjust.py holds the conventions).

    Per chunk of symbols:
    - spans derived from prices + corporate_actions *replace* the symbols' spans in the lake
      (`Lake.replace`): a new split changes every earlier span, so none may stay stale, and
      load applies the change feed (deleted spans included) to the warehouse, where the
      view prices_daily_adjusted applies them (full adjustment: splits and dividends);
    - indicators are computed on split-adjusted prices (a 10:1 split is not a -90% day);
    - the vendor's own adj_close, where sent, is kept as it is and compared with our full
      adjustment: counts adj_close_symbols_compared and adj_close_max_rel_diff_ppm (the
      worst symbol), and each symbol's outcome says how far it is; unusable actions are
      counted (actions_ignored) and named in the outcome.
    """
    from ..stages.adjust import adjustment_spans, apply_adjustments, unusable_actions, vendor_divergence

    lake, outcomes = Lake(ctx.settings.lake_dir), []
    inputs = changes.inputs(ctx, lake, (PRICES, ACTIONS))
    since = changes.pending(ctx, lake, INDICATORS, inputs, whole=(ACTIONS.name,), full=full)
    pending = sorted(since)
    counts = dict.fromkeys(_COUNTS, 0)
    parts = list(chunks(pending))
    for done, chunk in enumerate(parts, start=1):
        prices, actions = lake.read_frame(PRICES, chunk), lake.read_frame(ACTIONS, chunk)
        spans = adjustment_spans(prices, actions)
        spans["computed_at"] = pd.Timestamp(ctx.now)
        respanned = lake.replace(ADJUSTMENTS, chunk, spans, Commit(ctx.run_id, "transform")).changed
        crashpoints.hit("after_adjustments")
        indicators = compute_indicators(apply_adjustments(prices, spans, dividends=False))
        indicators["computed_at"] = pd.Timestamp(ctx.now)
        indicators = _from_first_change(indicators.reindex(columns=INDICATORS.column_names), since, respanned)
        commit = changes.commit(ctx, "transform", inputs, last=done == len(parts))
        changed = lake.merge(INDICATORS, indicators, commit).changed
        divergence, ignored = vendor_divergence(prices, spans), unusable_actions(prices, actions)
        counts["indicators_written"] += sum(changed.values())
        counts["adjustments_written"] += sum(respanned.values())
        counts["actions_ignored"] += len(ignored)
        counts["adj_close_symbols_compared"] += len(divergence)
        if len(divergence):
            counts["adj_close_max_rel_diff_ppm"] = max(counts["adj_close_max_rel_diff_ppm"],
                                                       int(round(float(divergence["max_rel_diff"].max()) * 1e6)))
        messages = _notes(spans, divergence, ignored)
        outcomes += _record(ctx, [SymbolOutcome(s, "transform", "ok", changed.get(s, 0) + respanned.get(s, 0),
                                                message=messages.get(s, "")) for s in chunk])
        ctx.progress("transform", done * SYMBOLS_PER_CHUNK, len(pending))
    if not parts:  # the inputs may have moved on with none of this shard's symbols
        changes.advance(ctx, lake, INDICATORS, "transform", inputs)
    crashpoints.hit("after_transform")
    counts = {"symbols": len(pending), "rows_written": counts["indicators_written"] + counts["adjustments_written"],
              **counts}
    return StageResult("transform", ExitCode.OK, counts, tuple(outcomes))


@logs.stage("quotes-daily")
def quotes_daily_stage(ctx: Context, full: bool = False) -> StageResult:
    """Rebuild quotes_daily (stages/quotes.py) for the symbols whose quotes changed."""
    from ..stages.quotes import quotes_to_daily

    lake = Lake(ctx.settings.lake_dir)
    inputs = changes.inputs(ctx, lake, (QUOTES,))
    pending = sorted(changes.pending(ctx, lake, QUOTES_DAILY, inputs, whole=(QUOTES.name,), full=full))
    exchange_of = calendars.exchange_resolver(ctx.settings.exchanges)
    written, outcomes = 0, []
    parts = list(chunks(pending))
    for done, chunk in enumerate(parts, start=1):
        daily = quotes_to_daily(lake.read_frame(QUOTES, chunk), lambda s: calendars.timezone(exchange_of(s)))
        daily["computed_at"] = pd.Timestamp(ctx.now)
        commit = changes.commit(ctx, "quotes-daily", inputs, last=done == len(parts))
        changed = lake.merge(QUOTES_DAILY, daily, commit).changed
        written += sum(changed.values())
        outcomes += _record(ctx, [SymbolOutcome(s, "quotes-daily", "ok", changed.get(s, 0)) for s in chunk])
    if not parts:
        changes.advance(ctx, lake, QUOTES_DAILY, "quotes-daily", inputs)
    return StageResult("quotes-daily", ExitCode.OK, {"symbols": len(pending), "rows_written": written},
                       tuple(outcomes))


def _record(ctx: Context, outcomes: list[SymbolOutcome]) -> list[SymbolOutcome]:
    with ctx.engine.begin() as conn:
        state.record_events(conn, ctx.run_id, outcomes, ctx.now)
    logs.outcomes(outcomes)
    return outcomes


def _from_first_change(rows: pd.DataFrame, since: Mapping[str, dt.date | None],
                       respanned: Mapping[str, int]) -> pd.DataFrame:
    """The rows that may differ: from each symbol's first changed date on, and all of a
    symbol recomputed whole (no date given, or its adjustment spans changed)."""
    first = pd.to_datetime(rows["symbol"].map(lambda s: None if s in respanned else since.get(s)))
    return rows[(first.isna() | (rows["date"] >= first)).to_numpy()]


def _notes(spans: pd.DataFrame, divergence: pd.DataFrame, ignored: pd.DataFrame) -> dict[str, str]:
    """Each symbol's outcome message: its spans, the vendor's adj_close distance, ignored actions."""
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
