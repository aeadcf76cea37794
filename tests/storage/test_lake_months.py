"""Lake.merge's month partitions, computed on datetime64[M] and merged two at a time in Arrow."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from stockpipe.models import DATASETS
from stockpipe.storage.lake import Lake

PRICES, REJECTS = DATASETS["prices_daily"], DATASETS["rejects"]


def prices(symbol: str, days: list[str], close: float = 10.0) -> pd.DataFrame:
    n = len(days)
    return pd.DataFrame({"symbol": [symbol] * n, "date": pd.to_datetime(days), "open": close, "high": close + 1,
                         "low": close - 1, "close": close, "adj_close": float("nan"), "volume": 100,
                         "provider": "demo", "fetched_at": pd.Timestamp("2026-01-05", tz="UTC"),
                         "split_basis": None})


def months(lake: Lake, dataset=PRICES) -> list[str]:
    return [f.parent.name for f in lake.files(dataset)]


def test_rows_go_to_their_month_across_years_and_rows_without_a_date_to_none(tmp_path):
    lake = Lake(tmp_path)
    rows = prices("AAA", ["2025-12-31", "2026-01-02", "2025-12-01", "2026-01-05"])
    rows.loc[4] = rows.loc[0]
    rows.loc[4, "date"] = pd.NaT
    result = lake.merge(PRICES, rows)
    assert months(lake) == ["month=2025-12", "month=2026-01"] and result.changed == {"AAA": 4}
    december = pq.read_table(lake.files(PRICES)[0]).column("date").to_pylist()
    assert [d.isoformat() for d in december] == ["2025-12-01", "2025-12-31"]


def test_a_zoned_partition_column_goes_by_its_own_wall_time(tmp_path):
    lake = Lake(tmp_path)
    stamps = pd.to_datetime(["2026-01-31 23:30", "2026-02-01 00:30"]).tz_localize("UTC")
    rows = pd.DataFrame({"run_id": "r", "symbol": "AAA", "date": ["a", "b"], "reason": "bad_date", "raw": "{}",
                         "provider": "demo", "rejected_at": stamps})
    lake.merge(REJECTS, rows)
    assert months(lake, REJECTS) == ["month=2026-01", "month=2026-02"]


def test_merging_into_stored_months_keeps_others_and_counts_only_what_changed(tmp_path):
    lake = Lake(tmp_path)
    lake.merge(PRICES, pd.concat([prices("AAA", ["2026-01-02", "2026-02-02"]), prices("CCC", ["2026-01-02"])]))
    again = pd.concat([prices("AAA", ["2026-01-02"]), prices("AAA", ["2026-02-02"], close=11.0),
                       prices("BBB", ["2026-01-03", "2026-03-02"])])
    result = lake.merge(PRICES, again)
    assert result.changed == {"AAA": 1, "BBB": 2}
    table = lake.read(PRICES).to_pandas()
    assert list(zip(table["symbol"], table["date"].astype(str), table["close"])) == [
        ("AAA", "2026-01-02", 10.0), ("AAA", "2026-02-02", 11.0), ("BBB", "2026-01-03", 10.0),
        ("BBB", "2026-03-02", 10.0), ("CCC", "2026-01-02", 10.0)]
    assert lake.merge(PRICES, again).changed == {}
