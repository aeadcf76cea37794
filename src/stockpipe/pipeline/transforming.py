"""`transform`: adjustment spans and indicators, and quotes_daily, for the symbols whose
inputs changed in the lake, a chunk of symbols at a time.

What changed comes from the lake's change feed since transform's watermark (changes.py). A
symbol with a new or restated bar, or a changed dividend, gets its indicators rewritten from
that date on (every indicator is causal; TA-Lib still runs over the whole in-memory history
for its warm-up); a symbol with a changed split, or whose split-only adjustment of some bar
changed, is rewritten whole (indicators are computed on split-only prices: a dividend changes
the symbol's spans but no indicator row, stages/adjust.py); a split changes every one of the
symbol's rows, so those are written anew (`Lake.rewrite`) rather than merged, and the MERGE of
the other symbols' new rows touches only the months they fall in. The watermark advances only with
the last chunk's commit, so a run killed half way redoes the rest, and what it had written
merges again as "no change".
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import calendars, crashpoints, logs
from ..errors import ExitCode
from ..models import DATASETS, StageResult, SymbolOutcome
from ..stages.indicators import compute_indicators
from ..storage import state
from ..storage.lake import Commit, Lake
from . import changes
from .context import Context, chunks

PRICES, ACTIONS, INDICATORS = DATASETS["prices_daily"], DATASETS["corporate_actions"], DATASETS["indicators_daily"]
ADJUSTMENTS, QUOTES, QUOTES_DAILY = DATASETS["adjustments"], DATASETS["quotes"], DATASETS["quotes_daily"]
# Symbols transformed per chunk: each chunk's whole price history is in memory (pandas, TA-Lib,
# the indicators' 36 columns, delta-rs' write buffers): 1,000 symbols x 2 years stay well
# under the 2 GB peak the 10M-row goal allows (PERFORMANCE.md), 2,000 did not.
TRANSFORM_CHUNK = 1000
# What the adjustments and indicators read of prices (not provider, fetched_at, split_basis).
_PRICE_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "adj_close", "volume"]
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
    since = changes.pending(ctx, lake, INDICATORS, inputs, whole=(), full=full, whole_when={ACTIONS.name: _splits})
    pending = sorted(since)
    counts = dict.fromkeys(_COUNTS, 0)
    parts = list(chunks(pending, TRANSFORM_CHUNK))
    for done, chunk in enumerate(parts, start=1):
        prices, actions = lake.read_frame(PRICES, chunk, _PRICE_COLUMNS), lake.read_frame(ACTIONS, chunk)
        spans = adjustment_spans(prices, actions)
        spans["computed_at"] = pd.Timestamp(ctx.now)
        stored = lake.read_frame(ADJUSTMENTS, chunk)
        moved = _spans_changed(stored, spans)  # most nights: the few symbols with a new dividend
        respanned = lake.replace(ADJUSTMENTS, moved, spans[spans["symbol"].isin(moved)],
                                 Commit(ctx.run_id, "transform")).changed
        crashpoints.hit("after_adjustments")
        whole = _split_restated(prices, stored, spans, respanned)
        firsts = {s: None if s in whole else since[s] for s in chunk}  # the rows that may differ
        indicators = compute_indicators(apply_adjustments(prices, spans, dividends=False), since=firsts)
        indicators["computed_at"] = pd.Timestamp(ctx.now)
        indicators = indicators.reindex(columns=INDICATORS.column_names)
        restated = indicators["symbol"].isin(list(whole)).to_numpy()
        changed = lake.rewrite(INDICATORS, whole, indicators[restated], Commit(ctx.run_id, "transform")).changed
        commit = changes.commit(ctx, "transform", inputs, last=done == len(parts))
        changed |= lake.merge(INDICATORS, indicators[~restated], commit).changed
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
        ctx.progress("transform", min(done * TRANSFORM_CHUNK, len(pending)), len(pending))
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


def _splits(feed: pa.Table) -> pa.Array:
    """The changed corporate actions that restate a symbol's whole split-adjusted history."""
    return pc.fill_null(pc.equal(feed["kind"], "split"), True)


def _spans_changed(stored: pd.DataFrame, spans: pd.DataFrame) -> list[str]:
    """The symbols whose spans differ between `stored` and `spans` (a span added, gone or
    changed, on the key and value columns): only theirs are replaced in the lake, whose
    MERGE would otherwise scan every span of the chunk to find no change."""
    columns = [*ADJUSTMENTS.key, *ADJUSTMENTS.value_columns]
    old = stored[columns].astype({c: spans[c].dtype for c in columns})
    both = old.merge(spans[columns], how="outer", on=columns, indicator=True)
    return sorted(set(both.loc[both["_merge"] != "both", "symbol"]))


def _split_restated(prices: pd.DataFrame, stored: pd.DataFrame, spans: pd.DataFrame,
                    respanned: Mapping[str, int]) -> set[str]:
    """The symbols among `respanned` whose split-only factor changed on some bar between the
    `stored` spans and the new `spans` (a split came into effect): every indicator row of
    theirs may differ. A dividend alone changes the spans' price factors, not these."""
    from ..stages.adjust import apply_adjustments

    if not respanned:
        return set()
    bars = prices.loc[prices["symbol"].isin(list(respanned)), ["symbol", "date"]]
    old = apply_adjustments(bars, stored, dividends=False)["volume_factor"].to_numpy()
    new = apply_adjustments(bars, spans, dividends=False)["volume_factor"].to_numpy()
    return set(bars["symbol"].to_numpy()[old != new])


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
