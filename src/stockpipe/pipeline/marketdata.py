"""Quotes and intraday bars: `fetch --quotes` and `fetch --interval 1m|5m|15m|30m|60m`.

Each stage runs the one fetch loop (fetching.py) for another dataset: call the
provider for every symbol (concurrently, within its rate limits; a refused key or a spent
quota stops further calls at once), archive each raw payload under raw/<provider>/<day>/
before parsing it, merge the rows into the lake, then record symbol_state, lake versions
and one run_events row per symbol. The lake's merge is idempotent, so fetching the same
answer twice writes nothing and `load` has nothing new to load.

- quotes: one call per symbol into `quotes`, keyed (symbol, ts), ts in UTC. A quote
  without a price is never stored (finnhub's all-zero answer fails the symbol as unknown;
  eodhd's "NA" fields are a reject). `transform` rebuilds quotes_daily for the symbols
  whose quotes the lake's change feed shows changed.
- intraday: bars of one interval into `prices_intraday`, keyed (symbol, interval, ts), ts
  the bar's start in UTC and session_date the exchange's trading date. The window is the
  vendor's retention for the interval ending now (less a day, so a long run never asks
  for bars the vendor has just dropped); --start/--end (session dates) narrow it. A start
  older than the vendor keeps is clipped, and the outcome says so. Prices are stored as
  traded, like prices_daily: Yahoo's split-adjusted bars are put back with the splits its
  answers report (HttpProvider.parse_intraday, over all of a symbol's windows).

Counts and exit codes are fetch's: 0 all fetched, 3 some failed or were deferred, 4 the
provider refused the key, the one cause's code when every symbol failed alike.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from .. import logs
from ..errors import ExitCode, UsageError
from ..models import DATASETS, StageResult
from ..providers import registry as providers
from ..providers.base import INTERVALS, Payload
from ..storage import ledger
from .context import Context
from .fetching import Read, Spec, fetch_all, outcome_counts, verdict

log = logging.getLogger("stockpipe")

QUOTES, INTRADAY = DATASETS["quotes"], DATASETS["prices_intraday"]
QUOTES_DAILY, REJECTS = DATASETS["quotes_daily"], DATASETS["rejects"]
_MARGIN = dt.timedelta(days=1)  # kept inside the retention limit (the vendor's clock runs on)
_PRICES = ("open", "high", "low", "close")
_QUOTE_NUMBERS = ("price", "open", "high", "low", "prev_close", "change", "change_pct")


# -------------------------------------------------------------------------- stages


@logs.stage("fetch-quotes")
def quotes_stage(ctx: Context) -> StageResult:
    """Fetch one quote per symbol into the lake's `quotes`.

    Raises:
        ConfigError: the provider has no quotes endpoint (demo, csv, polygon, ...).
    """
    provider = _open(ctx, "quotes")
    try:
        return _fetch(ctx, provider, "fetch-quotes", QUOTES, lambda symbol: [provider.fetch_quote(symbol)],
                      lambda symbol, payloads: _quote_rows(ctx, provider, symbol, payloads[0]))
    finally:
        provider.close()


@logs.stage("fetch-intraday")
def intraday_stage(ctx: Context, interval: str, start: dt.date | None = None,
                   end: dt.date | None = None) -> StageResult:
    """Fetch `interval` bars for every symbol into the lake's `prices_intraday`.

    Args:
        start, end: session dates to keep (inclusive); default: all the vendor keeps.

    Raises:
        UsageError: an unknown interval, start after end, or a window entirely older
            than the vendor keeps.
        ConfigError: the provider has no intraday endpoint.
    """
    if interval not in INTERVALS:
        raise UsageError(f"--interval {interval!r}: use one of {', '.join(INTERVALS)}")
    if start and end and start > end:
        raise UsageError(f"--start {start} is after --end {end}")
    provider = _open(ctx, "intraday")
    try:
        limits = provider.intraday_limits(interval)
        window = plan_window(ctx.now, limits.retention, start, end)
        what = f"{provider.name} keeps {interval} bars for {limits.retention.days} days"
        if window.lo >= window.hi:
            raise UsageError(f"{what}: {start}..{end} is entirely older: nothing to fetch "
                             "(choose a later --start/--end)")
        note = f"{what}: clipped to sessions from {window.lo:%Y-%m-%d} (asked from {start})" if window.clipped else ""
        if note:
            log.warning("%s", note)
        result = _fetch(
            ctx, provider, "fetch-intraday", INTRADAY,
            lambda symbol: provider.fetch_intraday(symbol, interval, window.lo, window.hi, ctx.now),
            lambda symbol, payloads: _intraday_rows(ctx, provider, symbol, payloads, interval, start, end, note))
    finally:
        provider.close()
    if note and result.exit_code == ExitCode.OK:
        return StageResult(result.stage, result.exit_code, result.counts, result.outcomes, message=note)
    return result


@dataclass(frozen=True)
class Window:
    """The instants [lo, hi) to ask for; `clipped` when the asked start was too old."""

    lo: dt.datetime
    hi: dt.datetime
    clipped: bool = False


def plan_window(now: dt.datetime, retention: dt.timedelta, start: dt.date | None,
                end: dt.date | None) -> Window:
    """Pure: the UTC window covering the sessions start..end, within the vendor's retention.

    A session date's bars lie between the UTC midnight before it and two after it in every
    time zone (Tokyo's session D starts on D-1 UTC; New York's after-hours end on D+1), so
    the window is padded by those days; the stage keeps only the sessions asked for.
    """
    floor = now - retention + _MARGIN
    lo = _midnight(start - dt.timedelta(days=1)) if start else floor
    hi = min(_midnight(end + dt.timedelta(days=2)), now) if end else now
    return Window(max(lo, floor), hi, clipped=start is not None and _midnight(start) < floor)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


# ------------------------------------------------------------------------ the loop


def _open(ctx: Context, kind: str):
    """The configured provider, if it serves `kind`; asked before its key is checked."""
    return providers.create(ctx.settings.provider, ctx.settings, ctx.clock, ledger=ledger.opener(ctx.engine),
                            kind=kind)


@dataclass(frozen=True)
class _Job:
    symbol: str


def _fetch(ctx: Context, provider, stage: str, dataset, call: Callable[[str], list[Payload]],
           read: Callable[[str, list[Payload]], Read]) -> StageResult:
    """Run the one fetch loop (fetching.py) over the shard's symbols; counts and exit code as
    fetch's, plus rows_written: the rows the lake took as new or changed (0 when the same
    answer is fetched again)."""
    symbols = ctx.mine(ctx.settings.symbols)
    spec = Spec(stage, dataset.name, (dataset.name, REJECTS.name), lambda job: call(job.symbol),
                lambda job, payloads: read(job.symbol, payloads), archive_kind=stage.removeprefix("fetch-"))
    fetched = fetch_all(ctx, provider, [_Job(s) for s in symbols], spec)
    counts = outcome_counts(len(symbols), fetched.outcomes, written=fetched.written)
    return verdict(stage, len(symbols), counts, fetched.outcomes)


# ------------------------------------------------------------------ reading payloads


def _read(dataset, rows: pd.DataFrame, rejects: pd.DataFrame, note: str = "") -> Read:
    return Read({dataset.name: rows, REJECTS.name: rejects}, len(rows), len(rejects), note)


def _quote_rows(ctx: Context, provider, symbol: str, payload: Payload) -> Read:
    parsed = provider.parse_quote(payload)
    quotes = parsed.quotes if parsed.quotes is not None else pd.DataFrame(columns=["ts", *_QUOTE_NUMBERS, "volume"])
    bad = ~(pd.to_numeric(quotes["price"], errors="coerce") > 0) | quotes["ts"].isna()
    rejected = list(parsed.rejected) + [  # a price of 0 or none is never stored
        {"date": str(row["ts"]), "reason": "non_positive_price", "raw": row} for row in quotes[bad].to_dict("records")]
    quotes = quotes[~bad]
    rows = pd.DataFrame({
        "symbol": symbol,
        "ts": pd.to_datetime(quotes["ts"], utc=True),
        **{c: pd.to_numeric(quotes[c], errors="coerce").astype("float64")
           for c in _QUOTE_NUMBERS},
        "volume": _volume(quotes["volume"]),
        "provider": provider.name,
    }, columns=QUOTES.column_names)
    return _read(QUOTES, rows, _rejects(ctx, provider.name, symbol, rejected, "quote"))


def _intraday_rows(ctx: Context, provider, symbol: str, payloads: list[Payload], interval: str,
                   start: dt.date | None, end: dt.date | None, note: str) -> Read:
    parsed = provider.parse_intraday(payloads)  # as traded: Yahoo's split adjustment undone
    rejected = list(parsed.rejected)
    bars = parsed.intraday if parsed.intraday is not None else pd.DataFrame(
        columns=["ts", *_PRICES, "volume", "session_date"])
    sessions = pd.to_datetime(bars["session_date"]).dt.normalize()
    keep = pd.Series(True, index=bars.index)
    if start:
        keep &= sessions >= pd.Timestamp(start)
    if end:
        keep &= sessions <= pd.Timestamp(end)
    bars, sessions = bars[keep], sessions[keep]
    prices = bars[list(_PRICES)].apply(pd.to_numeric, errors="coerce")
    bad = ~(prices > 0).all(axis=1)  # the parsers reject these already: never store a 0
    rejected += [{"date": str(row["ts"]), "reason": "non_positive_price", "raw": row}
                 for row in bars[bad].to_dict("records")]
    bars, sessions, prices = bars[~bad], sessions[~bad], prices[~bad]
    rows = pd.DataFrame({
        "symbol": symbol, "interval": interval, "ts": pd.to_datetime(bars["ts"], utc=True),
        **{c: prices[c].astype("float64") for c in _PRICES},
        "volume": _volume(bars["volume"]), "session_date": sessions.dt.date,
        "provider": provider.name, "fetched_at": pd.Timestamp(ctx.now),
    }, columns=INTRADAY.column_names)
    return _read(INTRADAY, rows.drop_duplicates(["symbol", "interval", "ts"], keep="last"),
                 _rejects(ctx, provider.name, symbol, rejected, f"intraday {interval}"), note)


def _volume(values: pd.Series) -> pd.Series:
    """Whole shares; NaN (the vendor sent none, as finnhub's quote) stays null."""
    return pd.to_numeric(values, errors="coerce").round().astype("Int64")


def _rejects(ctx: Context, provider: str, symbol: str, rejected: list[dict[str, Any]], what: str) -> pd.DataFrame:
    """Rows of `rejects`; the reason names what was read (`quote: ...`), and a repeated
    (date, reason) gets a #n so no reject overwrites another."""
    seen: dict[tuple[str, str], int] = {}
    rows = []
    for item in rejected:
        date, reason = str(item.get("date", ""))[:28], f"{what}: {item.get('reason', '')}"[:64]
        count = seen[(date, reason)] = seen.get((date, reason), 0) + 1
        rows.append({"run_id": ctx.run_id, "symbol": symbol, "date": date if count == 1 else f"{date}#{count}",
                     "reason": reason, "raw": json.dumps(item.get("raw"), default=str, sort_keys=True),
                     "provider": provider, "rejected_at": pd.Timestamp(ctx.now)})
    return pd.DataFrame(rows, columns=REJECTS.column_names)
