"""Row validation: parsed bars in, accepted bars and rejected rows (with a reason) out. Pure.

Nothing a provider sent is silently dropped: every row that is not stored as a price is
returned as a reject with the first rule it broke and the raw values as JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..models import PRICES_DAILY, REJECTS

PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Validated:
    accepted: pd.DataFrame  # columns of prices_daily
    rejected: pd.DataFrame  # columns of rejects


def validate_bars(
    symbol: str,
    bars: pd.DataFrame,
    *,
    provider: str,
    run_id: str,
    now: dt.datetime,
    latest_session: dt.date,
    parser_rejects: Sequence[dict[str, Any]] = (),
) -> Validated:
    """Split parsed bars into accepted rows and rejects.

    Rules, in order: all_null, missing_value, non_positive_price, negative_volume,
    high_low_inconsistent (high < max(open, close) or low > min(open, close)),
    future_date (after the latest closed session), duplicate_date (all but the first).
    """
    reasons = _reasons(bars, latest_session)
    ok = reasons == ""
    stamp = pd.Timestamp(now)
    # Built from arrays, not by editing a copy: this runs once per symbol per fetch.
    accepted = pd.DataFrame({
        "symbol": symbol,
        "date": bars["date"].to_numpy()[ok],
        **{name: bars[name].to_numpy(dtype="float64")[ok] for name in (*PRICE_FIELDS, "adj_close")},
        "volume": bars["volume"].to_numpy(dtype="float64")[ok].astype("int64"),
        "provider": provider,
        "fetched_at": stamp,
    }, columns=_PRICE_COLUMNS)
    rejected_rows = [
        {"date": _date_text(row["date"]), "reason": reason, "raw": _raw(row)}
        for reason, row in zip(reasons[~ok], bars.loc[~ok].to_dict("records"))
    ] + list(parser_rejects)
    if not rejected_rows:
        return Validated(accepted, pd.DataFrame(columns=_REJECT_COLUMNS))
    rejected = pd.DataFrame(
        [{"run_id": run_id, "symbol": symbol, "date": r["date"], "reason": r["reason"],
          "raw": json.dumps(r["raw"], default=str, sort_keys=True), "provider": provider,
          "rejected_at": stamp} for r in rejected_rows],
        columns=_REJECT_COLUMNS,
    )
    return Validated(accepted, rejected.drop_duplicates(["run_id", "symbol", "date", "reason"]))


_PRICE_COLUMNS = [name for name, _ in PRICES_DAILY]
_REJECT_COLUMNS = [name for name, _ in REJECTS]


def _reasons(bars: pd.DataFrame, latest_session: dt.date) -> np.ndarray:
    prices = bars[list(PRICE_FIELDS)].to_numpy(dtype="float64")
    volume = bars["volume"].to_numpy(dtype="float64")
    dates = pd.to_datetime(bars["date"])
    open_, high, low, close = prices.T if len(bars) else (np.array([]),) * 4
    with np.errstate(invalid="ignore"):
        rules = [
            ("all_null", np.isnan(prices).all(axis=1) & np.isnan(volume)),
            ("missing_value", np.isnan(prices).any(axis=1) | np.isnan(volume)),
            ("non_positive_price", (prices <= 0).any(axis=1)),
            ("negative_volume", volume < 0),
            ("high_low_inconsistent", (high < np.maximum(open_, close)) | (low > np.minimum(open_, close))),
            ("future_date", (dates > pd.Timestamp(latest_session)).to_numpy()),
            ("duplicate_date", dates.duplicated(keep="first").to_numpy()),
        ]
    reasons = np.full(len(bars), "", dtype=object)
    for name, broken in reversed(rules):  # the first rule broken wins
        reasons[broken] = name
    return reasons


def _date_text(value: Any) -> str:
    return value.date().isoformat() if isinstance(value, pd.Timestamp) else str(value)


def _raw(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v is None or (np.ndim(v) == 0 and pd.isna(v)) else v) for k, v in row.items()}
