"""Backward price adjustment for splits and cash dividends (CRSP / zipline / Yahoo convention).

Prices are stored as traded; splits and dividends live in `corporate_actions`. The adjusted
series is derived from them, never stored as prices: this module turns a symbol's actions
into *spans* (the `adjustments` dataset) and applies them. The warehouse view
`prices_daily_adjusted` applies the same spans in SQL, so Python and SQL agree.

Factors, walking a symbol's ex-dates from the newest to the oldest:

* a split of ratio r (new shares per old share: 10.0 for 10:1, 0.5 for 1:2) multiplies the
  prices of every earlier bar by 1/r and their volume by r;
* a cash dividend D with ex-date e multiplies the prices of every earlier bar by
  1 - D / C, C being the close (as traded) of the last bar before e; volume is unchanged;
* several actions on one ex-date combine: split ratios multiply, cash amounts add up
  (a regular and a special dividend are one cash payment of their sum), and the dividend
  factor uses C as traded, i.e. a dividend sharing its ex-date with a split is taken as
  declared per pre-split share;
* an action counts once the symbol has a bar before its ex-date (else there is nothing to
  adjust) and a bar on or after it (an announced, future ex-date adjusts nothing until
  its session is stored, so the newest bar is always its traded price).

The factors of the bars in [previous ex-date, ex-date) are the products of the factors of
every later ex-date. One row per span: `valid_from` (inclusive; 1900-01-01 for the oldest
span, so the view covers any history) and `valid_to` (the ex-date, exclusive). Bars on or
after the newest ex-date have no row (factor 1), as `models.ADJUSTMENTS` says.

Two adjusted series, one stored row
-----------------------------------
`price_factor` is the *full* adjustment (splits and dividends): a total-return price
series, what CRSP, zipline and the vendors' "adjusted close" give, and what the view
`prices_daily_adjusted` shows. `volume_factor` is the product of the split ratios alone
(dividends do not change share counts), so the *split-only* price factor is exactly
`1 / volume_factor`: the stored spans carry both series and no second table is needed.
`apply_adjustments(..., dividends=False)` gives the split-only series.

Indicators are computed on the split-only series, as the issue asks: a split is a change
of unit (a 10:1 split must not read as a -90% day), while a dividend is a real drop of the
traded price that chart levels (52-week high, Bollinger bands, ...) should keep showing.
It also keeps indicators stable: a quarterly dividend changes every stored span of the
symbol but no indicator row; only a split rewrites the symbol's indicator history.

Everything here is vectorised over symbols: rows are ranked by an int64 (symbol code,
day) key and matched with `searchsorted`; the only Python loop runs over the rank of an
ex-date from a symbol's newest one (a few dozen steps), each step over all symbols.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPAN_COLUMNS = ("symbol", "valid_to", "valid_from", "price_factor", "volume_factor")
UNUSABLE_COLUMNS = ("symbol", "date", "kind", "value", "reason")
DIVERGENCE_COLUMNS = ("symbol", "compared", "max_rel_diff", "max_at")
OPEN_START = np.datetime64("1900-01-01", "D")  # valid_from of a symbol's oldest span
_DAY_BIAS = np.int64(2**31)  # days since 1970 made non-negative inside the key
_PRICE_COLUMNS = ("open", "high", "low", "close")


# ------------------------------------------------------------------------------ API


def adjustment_spans(prices: pd.DataFrame, actions: pd.DataFrame) -> pd.DataFrame:
    """The backward adjustment spans of every symbol of `prices`.

    Args:
        prices: columns symbol, date, close (as traded) at least; any row order; each
            symbol's whole history (a dividend factor needs the close before its ex-date).
        actions: corporate actions: symbol, date (the ex-date), kind (split | dividend),
            value (split: new shares per old share; dividend: cash per share). Unusable
            actions (see `unusable_actions`) are left out; other kinds are ignored.

    Returns:
        Columns SPAN_COLUMNS (the `adjustments` dataset without computed_at), sorted by
        (symbol, valid_to); dates as datetime64[ms]. A symbol with no action that applies
        has no row.
    """
    ev = _events(prices, actions)
    n = len(ev.code)
    price, volume = ev.price_factor.copy(), ev.volume_factor.copy()
    if n:
        last_of_symbol = np.r_[ev.code[1:] != ev.code[:-1], True]
        ends = np.flatnonzero(last_of_symbol)
        rank = ends[np.searchsorted(ends, np.arange(n))] - np.arange(n)  # 0 = the newest ex-date
        # Newest first: each span's factor is its ex-date's times the next span's total.
        for r in range(1, int(rank.max()) + 1):
            at = np.flatnonzero(rank == r)
            price[at] = ev.price_factor[at] * price[at + 1]
            volume[at] = ev.volume_factor[at] * volume[at + 1]
        first_of_symbol = np.r_[True, ev.code[1:] != ev.code[:-1]]
        valid_from = np.where(first_of_symbol, OPEN_START.astype(np.int64), np.r_[0, ev.day[:-1]])
    else:
        valid_from = np.empty(0, dtype=np.int64)
    return pd.DataFrame({
        "symbol": pd.array(ev.symbols[ev.code], dtype="str") if n else pd.array([], dtype="str"),
        "valid_to": _dates(ev.day),
        "valid_from": _dates(valid_from),
        "price_factor": price,
        "volume_factor": volume,
    }, columns=list(SPAN_COLUMNS))


def unusable_actions(prices: pd.DataFrame, actions: pd.DataFrame) -> pd.DataFrame:
    """The actions `adjustment_spans` leaves out, each with the reason (columns UNUSABLE_COLUMNS).

    A split ratio that is not a positive number, a dividend that is negative or not a
    number, a dividend not below the close before its ex-date (its factor would be <= 0),
    or an unknown kind. Actions with no bar before (or on/after) their ex-date are not
    listed: they are fine, they just have nothing to adjust (yet).
    """
    return _events(prices, actions).unusable


def apply_adjustments(prices: pd.DataFrame, spans: pd.DataFrame, dividends: bool = True) -> pd.DataFrame:
    """`prices` with open/high/low/close and volume adjusted by the span each bar falls in.

    Args:
        prices: columns symbol, date, and any of open, high, low, close, volume; any order.
        spans: SPAN_COLUMNS (as `adjustment_spans` returns or the lake stores them).
        dividends: True for the full (split and dividend) adjustment, the one the view
            `prices_daily_adjusted` shows; False for split-only (price factor
            1 / volume_factor), the one indicators are computed on.

    Returns:
        A copy of `prices` (same index and row order) with the price columns multiplied
        by the price factor, volume as float64 multiplied by volume_factor, and the
        factors used in two added columns price_factor and volume_factor. A bar matched
        by no span (valid_from <= date < valid_to) has factors 1, as in the view.
    """
    price_factor, volume_factor, _, _, _ = _factors(prices, spans)
    if not dividends:
        price_factor = 1.0 / volume_factor
    out = prices.copy()
    for column in _PRICE_COLUMNS:
        if column in out.columns:
            out[column] = out[column].to_numpy(np.float64) * price_factor
    if "volume" in out.columns:
        out["volume"] = out["volume"].to_numpy(np.float64) * volume_factor
    out["price_factor"] = price_factor
    out["volume_factor"] = volume_factor
    return out


def vendor_divergence(prices: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """How far each symbol's vendor adj_close is from our fully adjusted close.

    Only rows with a finite, positive vendor adj_close are compared; the relative
    difference is |vendor - ours| / ours. A vendor's adjusted series is anchored at the
    newest bar it had when it was fetched, so rows fetched before a later action differ
    from ours by that action's factor until the history is fetched again; and vendors
    that adjust for splits only differ by the dividend factors.

    Returns:
        One row per symbol with at least one comparable row, sorted by symbol: symbol,
        compared (rows), max_rel_diff (float), max_at (the date of that row).
    """
    if "adj_close" not in prices.columns or not prices["adj_close"].notna().any():
        return _empty(DIVERGENCE_COLUMNS, {"compared": np.int64, "max_rel_diff": np.float64})
    price_factor, _, code, days, symbols = _factors(prices, spans)
    ours = prices["close"].to_numpy(np.float64) * price_factor
    vendor = prices["adj_close"].to_numpy(np.float64, na_value=np.nan)
    ok = np.isfinite(vendor) & (vendor > 0) & np.isfinite(ours) & (ours > 0)
    if not ok.any():
        return _empty(DIVERGENCE_COLUMNS, {"compared": np.int64, "max_rel_diff": np.float64})
    code, days = code[ok], days[ok]
    rel = np.abs(vendor[ok] - ours[ok]) / ours[ok]
    worst = np.full(len(symbols), -1.0)
    np.maximum.at(worst, code, rel)  # O(n), no sort
    at_worst = np.flatnonzero(rel == worst[code])
    found, first = np.unique(code[at_worst], return_index=True)  # each symbol's earliest row at its max
    rows = at_worst[first]
    return pd.DataFrame({
        "symbol": pd.array(symbols[found], dtype="str"),
        "compared": np.bincount(code, minlength=len(symbols))[found].astype(np.int64),
        "max_rel_diff": rel[rows],
        "max_at": _dates(days[rows]),
    }, columns=list(DIVERGENCE_COLUMNS))


# -------------------------------------------------------------------------- internals


def _factors(prices: pd.DataFrame, spans: pd.DataFrame):
    """Per price row: (full price factor, volume factor, symbol code, day, symbols by code)."""
    (p_code, s_code), symbols = _codes(prices["symbol"], spans["symbol"])
    p_day = _days(prices["date"])
    price_factor, volume_factor = np.ones(len(p_day)), np.ones(len(p_day))
    if len(spans):
        s_key = _key(s_code, _days(spans["valid_to"]))
        order = np.argsort(s_key, kind="stable")
        s_key, s_code = s_key[order], s_code[order]
        s_from = _days(spans["valid_from"])[order]
        at = np.searchsorted(s_key, _key(p_code, p_day), side="right")  # the first span ending after the bar
        span = np.minimum(at, len(s_key) - 1)
        hit = (at < len(s_key)) & (s_code[span] == p_code) & (s_from[span] <= p_day)
        price_factor = np.where(hit, spans["price_factor"].to_numpy(np.float64)[order][span], 1.0)
        volume_factor = np.where(hit, spans["volume_factor"].to_numpy(np.float64)[order][span], 1.0)
    return price_factor, volume_factor, p_code, p_day, symbols


class _Events:
    """One row per (symbol, ex-date) that adjusts something, sorted; plus unusable actions."""

    def __init__(self, symbols, code, day, price_factor, volume_factor, unusable):
        self.symbols, self.code, self.day = symbols, code, day
        self.price_factor, self.volume_factor = price_factor, volume_factor
        self.unusable = unusable


def _events(prices: pd.DataFrame, actions: pd.DataFrame) -> _Events:
    for frame, needed in ((prices, {"symbol", "date", "close"}), (actions, {"symbol", "date", "kind", "value"})):
        missing = needed - set(frame.columns)
        if missing:
            raise ValueError(f"adjustment needs columns {sorted(missing)}: add them")
    (p_code, a_code), symbols = _codes(prices["symbol"], actions["symbol"])
    p_key = _key(p_code, _days(prices["date"]))
    close = prices["close"].to_numpy(np.float64)
    if len(p_key) > 1 and not (p_key[1:] >= p_key[:-1]).all():  # the lake reads sorted: no sort then
        order = np.argsort(p_key, kind="stable")
        p_key, p_code, close = p_key[order], p_code[order], close[order]
    a_day = _days(actions["date"])
    a_key = _key(a_code, a_day)
    kind = np.asarray(actions["kind"].to_numpy(object), dtype=object)
    value = actions["value"].to_numpy(np.float64, na_value=np.nan)

    n = len(p_key)
    on_or_after = np.searchsorted(p_key, a_key, side="left")  # the first bar on/after the ex-date
    before = on_or_after - 1
    if n:
        has_before = (before >= 0) & (p_code[np.maximum(before, 0)] == a_code)
        has_after = (on_or_after < n) & (p_code[np.minimum(on_or_after, n - 1)] == a_code)
    else:
        has_before = has_after = np.zeros(len(a_key), dtype=bool)
    is_split, is_dividend = kind == "split", kind == "dividend"
    reason = np.full(len(a_key), "", dtype=object)
    reason[~(is_split | is_dividend)] = "unknown kind: only split and dividend adjust prices"
    reason[is_split & ~(np.isfinite(value) & (value > 0))] = "split ratio must be a positive number"
    reason[is_dividend & ~(np.isfinite(value) & (value >= 0))] = "dividend must be a non-negative amount"
    use = np.flatnonzero((reason == "") & has_before & has_after)

    keys, inverse = np.unique(a_key[use], return_inverse=True)
    split = is_split[use]
    ratio = np.ones(len(keys))
    np.multiply.at(ratio, inverse[split], value[use][split])
    cash = np.zeros(len(keys))
    np.add.at(cash, inverse[~split], value[use][~split])
    prev_close = np.ones(len(keys))
    prev_close[inverse] = close[before[use]]
    dividend = 1.0 - cash / prev_close
    bad = ~(np.isfinite(dividend) & (dividend > 0))  # cash >= the close before: no factor
    if bad.any():
        reason[use[~split & bad[inverse]]] = "dividend is not below the close before its ex-date"
        dividend[bad] = 1.0
    unusable_rows = np.flatnonzero(reason != "")
    unusable = pd.DataFrame({
        "symbol": pd.array(np.asarray(actions["symbol"].to_numpy(object))[unusable_rows], dtype="str"),
        "date": _dates(a_day[unusable_rows]),
        "kind": pd.array(kind[unusable_rows], dtype="str"),
        "value": value[unusable_rows],
        "reason": pd.array(reason[unusable_rows], dtype="str"),
    }, columns=list(UNUSABLE_COLUMNS))
    # An ex-date whose every action turned out unusable adjusts nothing: no span for it.
    keep = ~bad | (np.bincount(inverse[split], minlength=len(keys)) > 0)
    keys, dividend, ratio = keys[keep], dividend[keep], ratio[keep]
    return _Events(symbols, keys >> np.int64(32), (keys & np.int64(0xFFFFFFFF)) - _DAY_BIAS,
                   dividend / ratio, ratio, unusable)


def _codes(*columns: pd.Series) -> tuple[list[np.ndarray], np.ndarray]:
    """Integer codes of the symbols of several columns, in one code space sorted by symbol.

    Each column is factorized on its own (a hash pass, no Python strings made per row),
    then only the few uniques are merged and sorted.
    """
    parts = [pd.factorize(pd.Series(c).reset_index(drop=True)) for c in columns]
    uniques = np.array(sorted({u for _, found in parts for u in found.tolist()}), dtype=object)
    index = pd.Index(uniques)
    return [index.get_indexer(found)[codes].astype(np.int64) if len(found) else codes.astype(np.int64)
            for codes, found in parts], uniques


_PER_DAY = {"D": 1, "h": 24, "m": 1440, "s": 86_400, "ms": 86_400_000, "us": 86_400_000_000,
            "ns": 86_400_000_000_000}


def _days(dates: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of a date column (naive datetime64 of any unit, or date objects)."""
    values = pd.Series(dates).to_numpy()
    if not np.issubdtype(values.dtype, np.datetime64):
        values = pd.to_datetime(pd.Series(dates)).to_numpy()
    unit, count = np.datetime_data(values.dtype)
    # Integer floor division: a fraction of the cost of astype("datetime64[D]").
    return np.floor_divide(values.view(np.int64), _PER_DAY[unit] // count if unit != "D" else 1)


def _dates(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[ms]")


def _key(code: np.ndarray, days: np.ndarray) -> np.ndarray:
    """(symbol code, day) as one int64 that sorts like the pair."""
    return (code.astype(np.int64) << np.int64(32)) | (days.astype(np.int64) + _DAY_BIAS)


def _empty(columns: tuple[str, ...], dtypes: dict[str, type]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.array([], dtype="str") if c == "symbol" else
                         np.empty(0, dtype=dtypes.get(c, "datetime64[ms]")) for c in columns})
