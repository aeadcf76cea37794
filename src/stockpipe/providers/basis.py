"""What a vendor's daily prices are adjusted for, and how stockpipe gets them back as traded. Pure.

Every vendor declares (Vendor.adjusted) one of:

* None: OHLCV as traded (EODHD, Tiingo, Polygon with adjusted=false, Alpha Vantage's
  TIME_SERIES_DAILY); an adjusted close, when sent, goes to adj_close as it is.
* SPLITS ("split-adjusted, the splits reported"): Yahoo. Each bar is split-adjusted for
  every split after it up to the day of the answer, and the answer lists the splits in its
  own range. stockpipe asks for the range up to now (Vendor.daily_request), undoes every
  split the answer reports after each bar (prices x ratio, volume / ratio; dividends too:
  Yahoo's are split-adjusted like its prices), and records the answer's last day as the
  bars' `split_basis`.
* UNREPORTED ("adjusted, by actions the answer does not report"): Stooq's daily CSV
  (splits and dividends) and Finnhub's daily candles (splits). Only the answer's newest bar
  is known as traded: a backward adjustment leaves the last bar as it traded, and the
  request reaches now, so that bar is the vendor's newest. It is kept (adj_close = its
  close: the vendor's adjusted close); every other bar is rejected `adjusted_only` with the
  vendor's values in `rejects.raw`, never stored as traded.

Intraday bars go through the same hook with `on="session_date"`: Yahoo's are split-adjusted
too; Finnhub's intraday bars are as traded (its maintainer: "we do NOT adjust intraday").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .wire import Outcome, Parsed

if TYPE_CHECKING:
    import pandas as pd

SPLITS = "split-adjusted, the splits reported"
UNREPORTED = "adjusted, by actions the answer does not report"
ADJUSTED_ONLY = "adjusted_only"  # the reject reason of a bar whose as-traded prices are unknown


def as_traded(parsed: Parsed, adjusted: str | None, on: str = "date") -> Parsed:
    """`parsed` with its bars (`on="date"`: Parsed.bars; `"session_date"`: Parsed.intraday)
    as traded, by the rule of `adjusted` (module docstring). Refusals pass through."""
    frame = parsed.bars if on == "date" else parsed.intraday
    if adjusted is None or frame is None or parsed.outcome not in (Outcome.OK, Outcome.EMPTY):
        return parsed
    if adjusted == SPLITS:
        bars = unadjust_splits(frame, parsed.actions, on)
        fixed = {"bars" if on == "date" else "intraday": bars}
        return replace(parsed, actions=_unadjusted_dividends(parsed.actions), **fixed)
    if adjusted == UNREPORTED and on == "date":
        return keep_anchor(parsed)
    return parsed


def unadjust_splits(bars: "pd.DataFrame", actions: "pd.DataFrame | None", on: str = "date") -> "pd.DataFrame":
    """Bars as traded from split-adjusted bars: prices of the sessions (column `on`) before
    a split's date x its ratio, volume / ratio, for every split in `actions` (however long
    after the bars it is)."""
    import numpy as np

    factor = _factors(bars[on].to_numpy(), actions)
    if bars.empty or factor is None:
        return bars
    out = bars.copy()
    for column in ("open", "high", "low", "close"):
        out[column] = np.round(out[column].to_numpy(dtype=float) * factor, 4)
    out["volume"] = np.round(out["volume"].to_numpy(dtype=float) / factor)
    return out


def keep_anchor(parsed: Parsed) -> Parsed:
    """Only the answer's newest bar (dated `parsed.basis`), with adj_close = its close; the
    other bars become `adjusted_only` rejects (module docstring, UNREPORTED)."""
    bars = parsed.bars
    if bars is None or bars.empty:
        return parsed
    import pandas as pd

    anchor = (bars["date"] == pd.Timestamp(parsed.basis)) if parsed.basis else pd.Series(False, index=bars.index)
    kept = bars[anchor].assign(adj_close=bars.loc[anchor, "close"])
    dropped = [{"date": pd.Timestamp(row["date"]).date().isoformat(), "reason": ADJUSTED_ONLY,
                "raw": {k: _plain(v) for k, v in row.items()}} for row in bars[~anchor].to_dict("records")]
    outcome = Outcome.OK if len(kept) or dropped or parsed.rejected else Outcome.EMPTY
    return replace(parsed, outcome=outcome, bars=kept.reset_index(drop=True),
                   rejected=(*parsed.rejected, *dropped))


def _factors(days: Any, actions: "pd.DataFrame | None") -> Any:
    """Each day's product of the ratios of the splits after it; None without splits."""
    import numpy as np

    if actions is None or not len(actions):
        return None
    splits = actions[actions["kind"] == "split"]
    if splits.empty:
        return None
    factor = np.ones(len(days))
    for when, ratio in zip(splits["date"].to_numpy(), splits["value"].to_numpy(dtype=float)):
        factor[days < when] *= ratio
    return factor


def _unadjusted_dividends(actions: "pd.DataFrame | None") -> "pd.DataFrame | None":
    """Yahoo's dividends are split-adjusted like its prices (AAPL's $3.29 of 2014-05-08 shows
    as $0.47 after the 7:1 split): each x the ratios of the splits after it, as declared."""
    import numpy as np

    if actions is None or not len(actions):
        return actions
    factor = _factors(actions["date"].to_numpy(), actions)
    if factor is None:
        return actions
    dividend = (actions["kind"] == "dividend").to_numpy()
    values = actions["value"].to_numpy(dtype=float).copy()
    values[dividend] = np.round(values[dividend] * factor[dividend], 6)
    return actions.assign(value=values)


def _plain(value: Any) -> Any:
    """A cell as JSON-able text or number (a date as YYYY-MM-DD, NaN as None)."""
    if isinstance(value, (dt.date, dt.datetime)) or hasattr(value, "isoformat"):
        return value.date().isoformat() if hasattr(value, "date") else value.isoformat()
    return None if value != value else value  # noqa: PLR0124 - NaN is the one value unequal to itself


def restate(stored: "pd.DataFrame", actions: "pd.DataFrame | None", before: dt.date) -> "pd.DataFrame":
    """The stored bars of one symbol and vendor (prices_daily rows) that a split reported now
    shows were stored short of it, restated: the vendor had adjusted them for a split dated
    after their `split_basis` and on or before the day they were fetched (`fetched_at`),
    which their basis could not undo. Prices x the ratios of those splits, volume / them,
    and `split_basis` the newest of their dates (so no split is ever undone twice). Bars
    without a basis (sent as traded, or stored before it was recorded), and bars dated
    `before` or later (the window being fetched now), are not touched.
    """
    import numpy as np
    import pandas as pd

    splits = actions[actions["kind"] == "split"] if actions is not None and len(actions) else None
    if splits is None or splits.empty or stored.empty:
        return stored.iloc[0:0]
    rows = stored[stored["split_basis"].notna() & (pd.to_datetime(stored["date"]) < pd.Timestamp(before))]
    days, basis = pd.to_datetime(rows["date"]).to_numpy(), pd.to_datetime(rows["split_basis"]).to_numpy()
    fetched = pd.to_datetime(rows["fetched_at"], utc=True).dt.tz_localize(None).dt.normalize().to_numpy()
    factor, newest = np.ones(len(rows)), basis.copy()
    for when, ratio in zip(pd.to_datetime(splits["date"]).to_numpy(), splits["value"].to_numpy(dtype=float)):
        missed = (days < when) & (basis < when) & (when <= fetched)
        factor[missed] *= ratio
        newest[missed] = np.maximum(newest[missed], when)
    hit = factor != 1.0
    out = rows[hit].copy()
    for column in ("open", "high", "low", "close"):
        out[column] = np.round(out[column].to_numpy(dtype=float) * factor[hit], 4)
    out["volume"] = np.round(out["volume"].to_numpy(dtype=float) / factor[hit]).astype("int64")
    out["split_basis"] = newest[hit]
    return out.reset_index(drop=True)
