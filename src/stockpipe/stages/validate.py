"""Row validation: parsed bars in, accepted bars and rejected rows (with a reason) out. Pure.

Nothing a provider sent is silently dropped: every row that is not stored as a price is
returned as a reject with the first rule it broke and the raw values as JSON.

Decisions (a fetch validates a thousand symbols a second: bench/bench_fetch.py):
    * The rules run on numpy arrays, one rule at a time over all rows; when no row breaks
      any (nearly always), no per-row work is done and no reject row is built.
    * `Validated` keeps the accepted rows as arrays and builds its frames on first use. A
      fetch gathers a whole batch of symbols into one frame (`accepted_frame`,
      `rejected_frame`) instead of building a pandas frame (~0.3 ms) per symbol.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..models import PRICES_DAILY, REJECTS

PRICE_FIELDS = ("open", "high", "low", "close")
VALUE_FIELDS = (*PRICE_FIELDS, "adj_close", "volume")


@dataclass(frozen=True)
class Validated:
    """One symbol's validated bars.

    columns: the accepted rows' `date` (as the bars held it) and VALUE_FIELDS (float64;
        volume int64), in the bars' order.
    rejects: models.REJECTS rows as dicts, one per (date, reason), the first kept.
    """

    symbol: str
    provider: str
    fetched_at: pd.Timestamp
    columns: Mapping[str, np.ndarray]
    rejects: tuple[dict[str, Any], ...] = ()

    @property
    def rows(self) -> int:
        """How many rows were accepted."""
        return len(self.columns["date"])

    @cached_property
    def accepted(self) -> pd.DataFrame:
        """The accepted rows as a prices_daily frame."""
        return accepted_frame([self])

    @cached_property
    def rejected(self) -> pd.DataFrame:
        """The rejects as a rejects frame."""
        return rejected_frame([self])


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
    values = {name: bars[name].to_numpy(dtype="float64") for name in VALUE_FIELDS}
    reasons = _reasons(values, bars["date"], latest_session)
    ok = slice(None) if reasons is None else reasons == ""
    columns = {"date": bars["date"].to_numpy()[ok], **{name: values[name][ok] for name in VALUE_FIELDS}}
    columns["volume"] = columns["volume"].astype("int64")
    stamp = pd.Timestamp(now)
    rejected = [] if reasons is None else [
        {"date": _date_text(row["date"]), "reason": reason, "raw": _raw(row)}
        for reason, row in zip(reasons[~ok], bars.loc[~ok].to_dict("records"))]
    seen: set[tuple[Any, Any]] = set()
    rejects = []
    for r in [*rejected, *parser_rejects]:
        if (r["date"], r["reason"]) not in seen:  # one reject per (run, symbol, date, reason)
            seen.add((r["date"], r["reason"]))
            rejects.append({"run_id": run_id, "symbol": symbol, "date": r["date"], "reason": r["reason"],
                            "raw": json.dumps(r["raw"], default=str, sort_keys=True), "provider": provider,
                            "rejected_at": stamp})
    return Validated(symbol, provider, stamp, columns, tuple(rejects))


def accepted_frame(results: Sequence[Validated]) -> pd.DataFrame:
    """The accepted rows of `results`, in order, as one frame of prices_daily's columns."""
    counts = [r.rows for r in results]
    columns = {name: _joined([r.columns[name] for r in results], "float64") for name in VALUE_FIELDS}
    columns["volume"] = columns["volume"].astype("int64")
    return pd.DataFrame({
        "symbol": _repeated([r.symbol for r in results], counts),
        "date": _joined([r.columns["date"] for r in results], "datetime64[us]"),
        **columns,
        "provider": _repeated([r.provider for r in results], counts),
        "fetched_at": pd.DatetimeIndex([r.fetched_at for r in results]).repeat(counts),
    }, columns=_PRICE_COLUMNS)


def rejected_frame(results: Sequence[Validated]) -> pd.DataFrame:
    """The rejects of `results`, in order, as one frame of the rejects dataset's columns."""
    rows = [row for r in results for row in r.rejects]
    return pd.DataFrame(rows, columns=_REJECT_COLUMNS) if rows else pd.DataFrame(columns=_REJECT_COLUMNS)


_PRICE_COLUMNS = [name for name, _ in PRICES_DAILY]
_REJECT_COLUMNS = [name for name, _ in REJECTS]


def _joined(arrays: list[np.ndarray], empty: str) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.array([], dtype=empty)


def _repeated(texts: list[str], counts: list[int]) -> Any:
    return pd.array(np.repeat(np.array(texts, dtype=object), counts), dtype="str")


def _reasons(values: Mapping[str, np.ndarray], date: pd.Series, latest_session: dt.date) -> np.ndarray | None:
    """Each row's first rule broken ("" for none), or None when no row breaks any."""
    open_, high, low, close = (values[name] for name in PRICE_FIELDS)
    volume = values["volume"]
    dates = date.to_numpy() if date.dtype.kind == "M" and isinstance(date.dtype, np.dtype) else \
        pd.to_datetime(date).to_numpy()
    missing = [np.isnan(values[name]) for name in (*PRICE_FIELDS, "volume")]
    with np.errstate(invalid="ignore"):
        rules = [
            ("all_null", np.logical_and.reduce(missing)),
            ("missing_value", np.logical_or.reduce(missing)),
            ("non_positive_price", (open_ <= 0) | (high <= 0) | (low <= 0) | (close <= 0)),
            ("negative_volume", volume < 0),
            ("high_low_inconsistent", (high < np.maximum(open_, close)) | (low > np.minimum(open_, close))),
            ("future_date", dates > np.datetime64(latest_session)),
            ("duplicate_date", _duplicated(dates)),
        ]
    if not any(broken.any() for _, broken in rules):
        return None
    reasons = np.full(len(volume), "", dtype=object)
    for name, broken in reversed(rules):  # the first rule broken wins
        reasons[broken] = name
    return reasons


def _duplicated(dates: np.ndarray) -> np.ndarray:
    """All but the first of each date (NaT counts as one date, as pandas does)."""
    if len(dates) < 2 or (dates[1:] > dates[:-1]).all():  # sorted and distinct: the usual answer
        return np.zeros(len(dates), dtype=bool)
    return pd.Series(dates).duplicated(keep="first").to_numpy()


def _date_text(value: Any) -> str:
    return value.date().isoformat() if isinstance(value, pd.Timestamp) else str(value)


def _raw(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v is None or (np.ndim(v) == 0 and pd.isna(v)) else v) for k, v in row.items()}
