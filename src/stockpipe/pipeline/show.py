"""`show SYMBOL`: what the warehouse holds for one symbol, for a person at a terminal.

The newest bars with the main indicators, the closes behind a sparkline, corporate
actions, the symbol's state (provider, first/last date held, last success, consecutive
failures) and the quality rules it fails now. Reads only; no pandas.
"""

from __future__ import annotations

from ..config import Settings, normalize_symbol
from ..errors import NoDataError
from ..outputs import ShowResult
from ..storage import reads
from .reading import open_reader

# The indicators shown beside each bar (indicators_daily, on split-adjusted prices).
MAIN_INDICATORS = ("sma_20", "sma_50", "rsi_14", "macd_hist")
SPARK_BARS = 40  # closes behind the sparkline (more than the bars listed)


def show(settings: Settings, symbol: str, bars: int = 10) -> ShowResult:
    """The newest `bars` bars of `symbol` and everything the warehouse knows about it.

    Raises:
        BadInputError: `symbol` is not a ticker.
        NoDataError: the warehouse holds nothing for it.
    """
    symbol = normalize_symbol(symbol, "SYMBOL")
    with open_reader(settings).connect() as conn:
        newest = reads.bars(conn, symbol, last=max(bars, SPARK_BARS), indicators=MAIN_INDICATORS)
        actions = reads.actions(conn, symbol)
        states = reads.symbol_states(conn, symbol)
        failures = reads.open_quality_failures(conn, symbol)
    if not newest and not states:
        raise NoDataError(f"the warehouse holds nothing for {symbol}: fetch it first (`stockpipe run --symbol {symbol}`)")
    daily = next((s for s in states if s["dataset"] == "prices_daily"), {})
    provider = daily.get("provider") or (newest[-1]["provider"] if newest else "")
    return ShowResult(symbol, provider, tuple(newest[-bars:]) if bars else (), MAIN_INDICATORS,
                      tuple(float(b["close"]) for b in newest), tuple(actions), tuple(states), tuple(failures))
