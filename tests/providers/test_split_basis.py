"""Issue 15, item 1: Yahoo's split-adjusted bars put back as traded with EVERY split its
answer reports (after the window too, and years later), dividends as declared, the answer's
last day as the split basis; and `basis.restate`, which re-bases exactly the stored bars an
answer shows were fetched short of a split. Real splits: NVDA 4:1 2021-07-20 and 10:1
2024-06-10, AAPL 4:1 2020-08-31, TSLA 3:1 2022-08-25 (the prices are made up)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from stockpipe.providers import basis, yahoo
from stockpipe.providers.http.client import VendorClient
from stockpipe.providers.http_provider import HttpProvider
from stockpipe.providers.base import Payload
from stockpipe.providers.wire import Response

from helpers import dates, fixture_bytes, yahoo_chart

D = dt.date
NVDA_WINDOW = (D(2021, 7, 13), D(2021, 7, 19))
NVDA_TRADED = [816.4, 792.32, 760.12, 723.44, 751.2]  # closes as traded, before the 4:1 split
NVDA_VOLUME = [11862400, 13604800, 16422000, 15938800, 17219200]


def provider() -> HttpProvider:
    return HttpProvider(yahoo.VENDOR, VendorClient("yahoo", "http://127.0.0.1:9"))


def parsed(body: bytes, start: dt.date, end: dt.date, symbol: str = "NVDA"):
    """The provider's pure parse of one answer: bars as traded, actions, split basis."""
    return provider().parse_daily(Payload("yahoo", symbol, body, "application/json"), start, end)


def test_a_split_after_the_window_is_undone():
    """The answer of 2021-07-21 for 2021-07-13..19 asked two days past it: the 4:1 split of
    2021-07-20 is after the last kept bar, and every bar is still put back x4."""
    got = parsed(fixture_bytes("yahoo", "split_after_window.json"), *NVDA_WINDOW)
    assert dates(got.bars) == ["2021-07-13", "2021-07-14", "2021-07-15", "2021-07-16", "2021-07-19"]
    assert got.bars["close"].tolist() == NVDA_TRADED  # not 204.1 .. 187.8 (4x too low)
    assert got.bars["volume"].tolist() == NVDA_VOLUME  # not 4x too high
    assert got.actions.to_dict("records") == [{"date": pd.Timestamp("2021-07-20"), "kind": "split", "value": 4.0}]
    assert got.split_basis == D(2021, 7, 21)


def test_history_before_a_later_split_is_undone_with_every_split_up_to_the_answer():
    """NVDA 2021 answered in 2025: 40x (4:1, then 10:1 in 2024); its dividends split-adjusted too."""
    got = parsed(fixture_bytes("yahoo", "split_before_later_split.json"), *NVDA_WINDOW)
    assert got.bars["close"].tolist() == NVDA_TRADED  # sent as 20.41 .. 18.78
    assert got.bars["volume"].tolist() == NVDA_VOLUME
    assert [(str(a.date.date()), a.kind, a.value) for a in got.actions.itertuples()] == [
        ("2021-07-20", "split", 4.0), ("2021-08-31", "dividend", 0.04),  # 0.004 sent: 0.04 as declared
        ("2024-06-10", "split", 10.0), ("2024-06-11", "dividend", 0.01)]
    assert got.split_basis == D(2025, 1, 2)


def test_the_daily_request_reaches_today_so_the_answer_reports_every_split_since():
    request = yahoo.VENDOR.daily_request("NVDA", *NVDA_WINDOW, today=D(2025, 1, 2))
    until = dt.datetime.fromtimestamp(int(request.params["period2"]), dt.timezone.utc).date()
    assert until >= D(2025, 1, 3) and request.params["events"] == "div,splits"
    recent = yahoo.VENDOR.daily_request("NVDA", D(2024, 12, 30), D(2024, 12, 31), today=D(2024, 12, 31))
    assert dt.datetime.fromtimestamp(int(recent.params["period2"]), dt.timezone.utc).date() == D(2025, 1, 2)


def test_aapl_window_spanning_its_4_for_1_split_and_its_dividend_as_declared():
    """AAPL 4:1 on 2020-08-31; the 2020-08-07 dividend of 0.82 comes as 0.205 (after the split)."""
    bars = [("2020-08-07", 113.2, 113.68, 110.29, 111.11, 198045600), ("2020-08-28", 126.01, 126.44, 124.58, 124.81,
                                                                        187630000),
            ("2020-08-31", 127.58, 131.0, 126.0, 129.04, 225702700), ("2020-09-01", 132.76, 134.8, 130.53, 134.18,
                                                                        151948100)]
    body = yahoo_chart("AAPL", bars, splits=[("2020-08-31", 4, 1)], dividends=[("2020-08-07", 0.205)])
    got = parsed(body, D(2020, 8, 7), D(2020, 9, 1), "AAPL")
    assert got.bars["close"].tolist() == [444.44, 499.24, 129.04, 134.18]
    assert got.bars["volume"].tolist() == [49511400, 46907500, 225702700, 151948100]
    dividend = got.actions[got.actions["kind"] == "dividend"]
    assert dividend["value"].tolist() == [0.82]


def test_tsla_3_for_1_only_bars_before_it_change():
    bars = [("2022-08-24", 296.0, 303.9, 294.2, 297.1, 57259800), ("2022-08-25", 302.36, 302.96, 291.6, 296.07,
                                                                    53230000)]
    before = parsed(yahoo_chart("TSLA", bars, splits=[("2022-08-25", 3, 1)]), D(2022, 8, 24), D(2022, 8, 24), "TSLA")
    assert before.bars["close"].tolist() == [891.3] and before.bars["volume"].tolist() == [19086600]
    after = parsed(yahoo_chart("TSLA", bars, splits=[("2022-08-25", 3, 1)]), D(2022, 8, 25), D(2022, 8, 25), "TSLA")
    assert after.bars["close"].tolist() == [296.07] and after.bars["volume"].tolist() == [53230000]


def test_vendors_that_send_prices_as_traded_have_no_basis():
    from stockpipe.providers import eodhd, tiingo

    assert eodhd.VENDOR.adjusted is None and tiingo.VENDOR.adjusted is None
    assert yahoo.VENDOR.adjusted == basis.SPLITS


# --- restate: re-basing exactly the stored bars a split shows were stored short of it -------------


def stored(rows: list[tuple]) -> pd.DataFrame:
    """prices_daily rows: (date, close, volume, split_basis or None, fetched day)."""
    return pd.DataFrame({
        "symbol": "TSLA", "date": pd.to_datetime([r[0] for r in rows]),
        **{c: [float(r[1]) for r in rows] for c in ("open", "high", "low", "close")},
        "adj_close": float("nan"), "volume": [r[2] for r in rows], "provider": "yahoo",
        "fetched_at": pd.to_datetime([r[4] for r in rows]).tz_localize("UTC"),
        "split_basis": pd.to_datetime([r[3] for r in rows])})


SPLIT = pd.DataFrame({"date": pd.to_datetime(["2022-08-25"]), "kind": ["split"], "value": [3.0]})


def test_restate_rebases_exactly_the_bars_fetched_after_the_split_on_an_older_basis():
    bars = stored([
        ("2022-08-12", 900.0, 100, "2022-08-12", "2022-08-12"),  # fetched before the split: as traded
        ("2022-08-18", 300.0, 300, "2022-08-19", "2022-09-01"),  # fetched after it on an older basis: 3x off
        ("2022-08-19", 290.0, 330, "2022-08-19", "2022-09-01"),
        ("2022-08-22", 860.0, 100, "2022-09-01", "2022-09-01"),  # its basis covered the split: undone then
        ("2022-08-23", 870.0, 100, None, "2022-09-01"),  # no basis: sent as traded (or stored before 0008)
    ])
    out = basis.restate(bars, SPLIT, before=D(2022, 8, 24))
    assert out["date"].dt.strftime("%Y-%m-%d").tolist() == ["2022-08-18", "2022-08-19"]
    assert out["close"].tolist() == [900.0, 870.0] and out["volume"].tolist() == [100, 110]
    assert out["split_basis"].dt.strftime("%Y-%m-%d").tolist() == ["2022-08-25"] * 2
    again = pd.concat([bars[~bars["date"].isin(out["date"])], out], ignore_index=True)
    assert basis.restate(again, SPLIT, before=D(2022, 8, 24)).empty  # never undone twice


def test_restate_leaves_the_window_being_fetched_and_answers_without_splits_alone():
    bars = stored([("2022-08-18", 300.0, 300, "2022-08-19", "2022-09-01")])
    assert basis.restate(bars, SPLIT, before=D(2022, 8, 15)).empty  # the fetch replaces those bars itself
    no_split = pd.DataFrame({"date": pd.to_datetime(["2022-08-26"]), "kind": ["dividend"], "value": [0.1]})
    assert basis.restate(bars, no_split, before=D(2022, 8, 24)).empty


@pytest.mark.parametrize("factor", [4, 40])
def test_the_decimals_an_adjustment_took_off_are_kept(factor):
    """19.808 (792.32 / 40) rounded to priceHint's 2 decimals would come back as 792.40."""
    bars = [("2021-07-14", 820.2 / factor, 822.6 / factor, 786.33 / factor, 792.32 / factor, 1000),
            ("2024-06-10", 120.37, 123.1, 117.01, 121.79, 1000)]
    splits = [("2024-06-10", factor, 1)]
    got = parsed(yahoo_chart("NVDA", bars, splits=splits), D(2021, 7, 14), D(2021, 7, 14))
    assert got.bars["close"].tolist() == [792.32] and got.bars["low"].tolist() == [786.33]


def test_parse_daily_keeps_the_answer_as_sent():
    """Undoing is the provider's (basis.as_traded); the vendor module's parse is as sent."""
    raw = yahoo.parse_daily(Response(200, {}, fixture_bytes("yahoo", "split_after_window.json")), *NVDA_WINDOW)
    assert raw.bars["close"].tolist() == [204.1, 198.08, 190.03, 180.86, 187.8] and raw.basis == D(2021, 7, 21)


def test_yahoos_newest_intraday_window_reaches_now_to_learn_every_split_since():
    now = dt.datetime(2024, 6, 20, 21, 0, tzinfo=dt.timezone.utc)
    start, end = now - dt.timedelta(days=40), now - dt.timedelta(days=10)
    made = yahoo.VENDOR.intraday_requests("5m", start, end, now)
    assert len(made) == 1 and int(made[0]("NVDA").params["period2"]) == int(now.timestamp())
    one_minute = yahoo.VENDOR.intraday_requests("1m", now - dt.timedelta(days=20), now - dt.timedelta(days=12), now)
    last = one_minute[-1]("NVDA").params  # 1m windows span 7 days: too far from now to reach it
    assert int(last["period2"]) == int((now - dt.timedelta(days=12)).timestamp())
