"""Adjusted prices end to end: lake spans, the warehouse view, indicators, late splits.

On real SQLite and real PostgreSQL, with the demo provider (2:1 splits, 1:2 reverse
splits and quarterly dividends). Plus Lake.replace, which keeps no stale span.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import clock
from stockpipe import pipeline
from stockpipe.errors import ExitCode
from stockpipe.models import DATASETS
from stockpipe.stages.adjust import SPAN_COLUMNS, adjustment_spans, apply_adjustments
from stockpipe.stages.indicators import compute_indicators
from stockpipe.storage.lake import Lake

PRICES, ACTIONS, INDICATORS, ADJUSTMENTS = (DATASETS[n] for n in
                                            ("prices_daily", "corporate_actions", "indicators_daily", "adjustments"))
SYMBOL = "IBM"
DEMO_SPLIT = pd.Timestamp("2025-12-05")  # the demo's 2:1 split of IBM inside 400 days before the clock
LATE_SPLIT = pd.Timestamp("2026-03-02")  # a 10:1 split the vendor reports later (a Monday session)


def frame(url: str, sql: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            out = pd.read_sql_query(sa.text(sql), conn)
    finally:
        engine.dispose()
    for column in ("date", "valid_to", "valid_from"):
        if column in out.columns:
            out[column] = pd.to_datetime(out[column].astype(str))
    return out


def lake_state(settings):
    lake = Lake(settings.lake_dir)
    return (lake, lake.read_frame(PRICES, [SYMBOL]), lake.read_frame(ACTIONS, [SYMBOL]),
            lake.read_frame(ADJUSTMENTS, [SYMBOL]))


def view(url: str) -> pd.DataFrame:
    return frame(url, "SELECT date, open, high, low, close, volume, price_factor FROM prices_daily_adjusted "
                      f"WHERE symbol = '{SYMBOL}' ORDER BY date")


def warehouse_spans(url: str) -> pd.DataFrame:
    return frame(url, "SELECT valid_to, valid_from, price_factor, volume_factor FROM adjustments "
                      f"WHERE symbol = '{SYMBOL}' ORDER BY valid_to")


def assert_view_equals_python(url: str, prices: pd.DataFrame, spans: pd.DataFrame) -> None:
    expected = apply_adjustments(prices, spans).sort_values("date").reset_index(drop=True)
    got = view(url)
    assert got["date"].tolist() == expected["date"].tolist()
    for column in ("open", "high", "low", "close", "volume", "price_factor"):
        np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-12,
                                   err_msg=column)


def assert_warehouse_spans_equal_lake(url: str, spans: pd.DataFrame) -> None:
    got = warehouse_spans(url)
    assert got["valid_to"].tolist() == spans["valid_to"].tolist()
    assert got["valid_from"].tolist() == spans["valid_from"].tolist()
    np.testing.assert_allclose(got["price_factor"], spans["price_factor"], rtol=1e-15)
    np.testing.assert_allclose(got["volume_factor"], spans["volume_factor"], rtol=1e-15)


def warehouse_indicators(url: str) -> pd.DataFrame:
    return frame(url, f"SELECT date, sma_5, computed_at FROM indicators_daily WHERE symbol = '{SYMBOL}' ORDER BY date")


@pytest.fixture
def first_run(make_settings, database_url):
    settings = make_settings(database_url=database_url, symbols=(SYMBOL,), history_days=400)
    result = pipeline.run(settings, clock=clock)
    assert result.exit_code == ExitCode.OK, result.message
    return settings, result


def test_view_equals_python_and_indicators_use_split_adjusted_prices(first_run, database_url):
    settings, result = first_run
    _, prices, actions, spans = lake_state(settings)
    assert (actions["kind"] == "split").sum() == 1 and (actions["kind"] == "dividend").sum() >= 4
    assert actions.loc[actions["kind"] == "split", "date"].tolist() == [DEMO_SPLIT]

    # The lake holds exactly the spans derived from the lake's prices and actions.
    derived = adjustment_spans(prices, actions)
    assert len(spans) == len(derived) == actions["date"].nunique()
    pd.testing.assert_frame_equal(spans[list(SPAN_COLUMNS)], derived, check_dtype=False)
    counts = {s.stage: s.counts for s in result.stages}
    assert counts["transform"]["adjustments_written"] == len(spans) == counts["load"]["adjustments_written"]
    assert counts["transform"]["adj_close_symbols_compared"] == 0  # the demo sends no adj_close

    # The warehouse view is apply_adjustments (split and dividend) of the lake's rows.
    assert_warehouse_spans_equal_lake(database_url, spans)
    assert_view_equals_python(database_url, prices, spans)

    # Across the demo's 2:1 split the traded close halves; the adjusted one barely moves.
    adjusted = view(database_url).set_index("date")
    traded = prices.set_index("date")
    at = adjusted.index.get_loc(DEMO_SPLIT)
    assert traded["close"].iloc[at] / traded["close"].iloc[at - 1] - 1 < -0.4
    assert abs(adjusted["close"].iloc[at] / adjusted["close"].iloc[at - 1] - 1) < 0.1
    assert abs(adjusted["volume"].iloc[at] / adjusted["volume"].iloc[at - 1] - 1) < 3  # no 2x volume step
    assert adjusted["close"].pct_change().abs().max() < 0.15  # no -50 % day anywhere

    # Indicators were computed on split-adjusted prices: sma_5 is continuous across the split
    # and equals the indicator of the split-only adjusted series.
    stored = warehouse_indicators(database_url).set_index("date")
    split_only = apply_adjustments(prices, spans, dividends=False)
    expected = compute_indicators(split_only).set_index("date")["sma_5"]
    np.testing.assert_allclose(stored["sma_5"].to_numpy(float), expected.to_numpy(float), rtol=1e-9)
    raw = compute_indicators(prices).set_index("date")["sma_5"]
    before, after = stored["sma_5"].iloc[at - 1], stored["sma_5"].iloc[at]
    assert abs(after / before - 1) < 0.1
    assert not np.allclose(raw.iloc[:at].dropna(), expected.iloc[:at].dropna())  # the test can tell them apart

    # A second run writes nothing anywhere.
    again = pipeline.run(settings, clock=clock)
    assert again.exit_code == ExitCode.NOTHING_TO_DO
    assert sum(s.counts.get("rows_written", 0) for s in again.stages) == 0


def test_a_late_split_recomputes_the_whole_history(first_run, database_url):
    settings, _ = first_run
    lake, prices, actions, old_spans = lake_state(settings)
    old_view = view(database_url).set_index("date")
    old_ind = warehouse_indicators(database_url).set_index("date")
    assert LATE_SPLIT in old_view.index

    # The vendor reports a 10:1 split it had missed; fetch would merge it and flag the symbol.
    late = pd.DataFrame({"symbol": [SYMBOL], "date": [LATE_SPLIT], "kind": ["split"], "value": [10.0],
                         "provider": ["demo"], "fetched_at": [pd.Timestamp(clock())]})
    assert lake.merge(ACTIONS, late).changed == {SYMBOL: 1}  # transform reads it from the change feed
    later = lambda: clock() + dt.timedelta(hours=1)  # noqa: E731
    transformed = pipeline.transform(settings, clock=later)
    assert transformed.exit_code == ExitCode.OK
    loaded = pipeline.load(settings, clock=later)
    counts = loaded.stages[0].counts

    _, _, new_actions, new_spans = lake_state(settings)
    assert new_spans["valid_to"].tolist() == sorted({*old_spans["valid_to"], LATE_SPLIT})
    pd.testing.assert_frame_equal(new_spans[list(SPAN_COLUMNS)], adjustment_spans(prices, new_actions),
                                  check_dtype=False)
    # Every span ending on or before the late split is 10x smaller in price, 10x in volume;
    # later spans are untouched (and keep their computed_at).
    merged = old_spans.merge(new_spans, on="valid_to", suffixes=("_old", "_new"))
    early = merged["valid_to"] <= LATE_SPLIT
    np.testing.assert_allclose(merged.loc[early, "price_factor_new"], merged.loc[early, "price_factor_old"] / 10,
                               rtol=1e-13)
    np.testing.assert_allclose(merged.loc[early, "volume_factor_new"], merged.loc[early, "volume_factor_old"] * 10,
                               rtol=1e-13)
    assert (merged.loc[~early, "price_factor_new"] == merged.loc[~early, "price_factor_old"]).all()
    same = ~early & (merged["valid_from_new"] == merged["valid_from_old"]).to_numpy()
    assert same.sum() == (~early).sum() - 1  # the span the split cut in two now starts at the split
    assert (merged.loc[same, "computed_at_new"] == merged.loc[same, "computed_at_old"]).all()
    assert (merged.loc[~same, "computed_at_new"] > merged.loc[~same, "computed_at_old"]).all()

    # The warehouse holds exactly the new spans (no stale one) and the view follows them. Load
    # applies the change feed: the spans that changed or are new, none deleted (the split adds one).
    assert counts["rows_deleted"] == 0
    assert counts["adjustments_written"] == len(new_spans) - same.sum()
    assert_warehouse_spans_equal_lake(database_url, new_spans)
    assert_view_equals_python(database_url, prices, new_spans)
    new_view = view(database_url).set_index("date")
    before = new_view.index < LATE_SPLIT
    np.testing.assert_allclose(new_view.loc[before, "close"], old_view.loc[before, "close"] / 10, rtol=1e-12)
    np.testing.assert_allclose(new_view.loc[~before, "close"], old_view.loc[~before, "close"], rtol=1e-12)

    # Every indicator row before the split was recomputed; far from it, sma_5 is 10x smaller.
    new_ind = warehouse_indicators(database_url).set_index("date")
    expected = compute_indicators(apply_adjustments(prices, new_spans, dividends=False)).set_index("date")["sma_5"]
    np.testing.assert_allclose(new_ind["sma_5"].to_numpy(float), expected.to_numpy(float), rtol=1e-9)
    rows_before = new_ind.index < LATE_SPLIT
    valued = rows_before & old_ind["sma_5"].notna().to_numpy()
    assert valued.sum() > 50
    assert (new_ind.loc[valued, "sma_5"] != old_ind.loc[valued, "sma_5"]).all()
    assert (pd.to_datetime(new_ind.loc[valued, "computed_at"].astype(str), utc=True)
            > pd.to_datetime(old_ind.loc[valued, "computed_at"].astype(str), utc=True)).all()
    position = new_ind.index.get_loc(LATE_SPLIT)
    far = new_ind.index[: position - 40][old_ind["sma_5"].iloc[: position - 40].notna().to_numpy()]
    np.testing.assert_allclose(new_ind.loc[far, "sma_5"], old_ind.loc[far, "sma_5"] / 10, rtol=1e-9)
    assert counts["indicators_daily_written"] >= valued.sum()

    # Loading again writes nothing.
    assert pipeline.load(settings, clock=later).stages[0].counts["rows_written"] == 0


def test_a_withdrawn_action_leaves_no_stale_span(first_run, database_url):
    settings, _ = first_run
    lake, prices, actions, old_spans = lake_state(settings)
    # The vendor restates its history without the first dividend (say, it was booked in error).
    withdrawn = actions.loc[actions["kind"] == "dividend", "date"].min()
    kept = actions[actions["date"] != withdrawn]
    assert lake.replace(ACTIONS, [SYMBOL], kept).changed == {SYMBOL: 1}  # transform reads it from the change feed
    assert pipeline.transform(settings, clock=clock).exit_code == ExitCode.OK
    counts = pipeline.load(settings, clock=clock).stages[0].counts

    _, _, _, new_spans = lake_state(settings)
    assert withdrawn in old_spans["valid_to"].tolist() and withdrawn not in new_spans["valid_to"].tolist()
    assert len(new_spans) == len(old_spans) - 1
    assert counts["rows_deleted"] == 2  # the withdrawn dividend and its span, from the change feeds
    assert_warehouse_spans_equal_lake(database_url, new_spans)
    assert_view_equals_python(database_url, prices, new_spans)
    # Dividends do not touch the split-only indicators: none was rewritten.
    assert counts["indicators_daily_written"] == 0


def test_vendor_adj_close_is_kept_and_its_divergence_reported(first_run, database_url):
    settings, _ = first_run
    lake, prices, _, spans = lake_state(settings)
    # A vendor restates the bars with its own adjusted close, 150 ppm above ours on one bar.
    restated = prices.copy()
    ours = apply_adjustments(prices, spans)["close"].to_numpy()
    restated["adj_close"] = ours
    restated.loc[restated.index[10], "adj_close"] = ours[10] * (1 + 150e-6)
    assert lake.merge(PRICES, restated).changed == {SYMBOL: len(prices)}
    # ... and a dividend larger than the price it would come off: left out, and said so.
    bogus = pd.DataFrame({"symbol": [SYMBOL], "date": [prices["date"].iloc[20]], "kind": ["dividend"],
                          "value": [1e6], "provider": ["demo"], "fetched_at": [pd.Timestamp(clock())]})
    lake.merge(ACTIONS, bogus)  # transform reads it from the change feed
    result = pipeline.transform(settings, clock=clock)
    stage = result.stages[0]
    assert stage.counts["adj_close_symbols_compared"] == 1
    assert stage.counts["adj_close_max_rel_diff_ppm"] == 150
    assert stage.counts["actions_ignored"] == 1
    (outcome,) = stage.outcomes
    assert "within 150 ppm of ours" in outcome.message
    assert f"worst {prices['date'].iloc[10]:%Y-%m-%d}" in outcome.message
    assert (f"1 corporate action(s) ignored, first {prices['date'].iloc[20]:%Y-%m-%d} dividend 1e+06: "
            "dividend is not below the close before its ex-date") in outcome.message
    assert stage.counts["rows_written"] == 0  # the adjusted series did not change
    pipeline.load(settings, clock=clock)
    stored = frame(database_url, f"SELECT date, vendor_adj_close FROM prices_daily_adjusted WHERE symbol = '{SYMBOL}' "
                                 "ORDER BY date")
    np.testing.assert_allclose(stored["vendor_adj_close"], restated["adj_close"], rtol=1e-15)


# ------------------------------------------------------------------- Lake.replace


def spans_rows(symbol: str, ends: list[str], factor: float = 0.5, computed: str = "2026-01-01") -> pd.DataFrame:
    ends_ts = pd.to_datetime(ends)
    return pd.DataFrame({"symbol": symbol, "valid_to": ends_ts,
                         "valid_from": [pd.Timestamp("1900-01-01"), *ends_ts[:-1]],
                         "price_factor": [factor ** (len(ends) - i) for i in range(len(ends))],
                         "volume_factor": 1.0, "computed_at": pd.Timestamp(computed, tz="UTC")})


def test_replace_deletes_what_is_gone_and_keeps_other_symbols(tmp_path: Path):
    lake = Lake(tmp_path / "lake")
    first = lake.replace(ADJUSTMENTS, ["A", "B"], pd.concat([spans_rows("A", ["2024-01-10", "2024-03-05"]),
                                                             spans_rows("B", ["2024-03-20"])]))
    assert first.changed == {"A": 2, "B": 1}
    months = [f.parent.name for f in lake.files(ADJUSTMENTS)]
    assert months == ["month=2024-01", "month=2024-03"]  # by the month of valid_to

    # A new span and a changed factor for A: the January-only span goes, B stays as it was.
    second = lake.replace(ADJUSTMENTS, ["A"], spans_rows("A", ["2024-03-05", "2024-04-01"], factor=0.25,
                                                         computed="2026-02-01"))
    assert second.changed == {"A": 3}  # 2 written, 1 deleted
    assert [f.parent.name for f in lake.files(ADJUSTMENTS)] == ["month=2024-03", "month=2024-04"]
    got = lake.read_frame(ADJUSTMENTS)
    assert list(zip(got["symbol"], got["valid_to"].dt.strftime("%Y-%m-%d"))) == [
        ("A", "2024-03-05"), ("A", "2024-04-01"), ("B", "2024-03-20")]
    assert got.loc[got["symbol"] == "B", "computed_at"].iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")


def test_replace_with_the_same_rows_writes_nothing(tmp_path: Path):
    lake = Lake(tmp_path / "lake")
    rows = spans_rows("A", ["2024-01-10", "2024-03-05"])
    lake.replace(ADJUSTMENTS, ["A"], rows)
    files = lake.files(ADJUSTMENTS)
    before = {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in files}
    again = rows.assign(computed_at=pd.Timestamp("2026-05-05", tz="UTC"))  # only the volatile column differs
    assert lake.replace(ADJUSTMENTS, ["A"], again).changed == {}
    assert {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in lake.files(ADJUSTMENTS)} == before
    # A partial change rewrites the changed row only; the unchanged one keeps its computed_at.
    moved = again.copy()
    moved.loc[1, "price_factor"] = 0.9
    assert lake.replace(ADJUSTMENTS, ["A"], moved).changed == {"A": 1}
    got = lake.read_frame(ADJUSTMENTS)
    assert got["computed_at"].tolist() == [pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-05-05", tz="UTC")]
    assert not list((tmp_path / "lake").rglob("*.tmp"))


def test_replace_with_nothing_removes_the_symbol_and_empty_partitions(tmp_path: Path):
    lake = Lake(tmp_path / "lake")
    lake.replace(ADJUSTMENTS, ["A", "B"], pd.concat([spans_rows("A", ["2024-01-10"]), spans_rows("B", ["2024-02-10"])]))
    assert lake.replace(ADJUSTMENTS, ["A"], spans_rows("A", ["2024-01-10"]).iloc[:0]).changed == {"A": 1}
    assert [f.parent.relative_to(lake.root).as_posix() for f in lake.files(ADJUSTMENTS)] == ["adjustments/month=2024-02"]
    assert lake.read_frame(ADJUSTMENTS)["symbol"].tolist() == ["B"]
    assert lake.replace(ADJUSTMENTS, [], spans_rows("A", ["2024-01-10"]).iloc[:0]).changed == {}
    with pytest.raises(ValueError, match="outside"):
        lake.replace(ADJUSTMENTS, ["A"], spans_rows("B", ["2024-01-10"]))
