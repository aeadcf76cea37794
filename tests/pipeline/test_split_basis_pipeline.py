"""Issue 15, item 1, end to end: Yahoo's split-adjusted answers through fetch and load, on
real SQLite and PostgreSQL (the migrated prices_daily.split_basis), and the restatement of
exactly the stored bars a later answer shows were fetched short of a split (TSLA's 3:1 of
2022-08-25). The clocks are the days the answers were (made up to be) given."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest

from fakevendor import Reply, fixture
from stockpipe import pipeline
from stockpipe.errors import ExitCode
from stockpipe.models import DATASETS
from stockpipe.storage.lake import Lake

from helpers import query, vendor_base_urls, yahoo_chart

PRICES = DATASETS["prices_daily"]
UTC = dt.timezone.utc
D = dt.date


def at(day: str) -> callable:
    """A pipeline clock: 22:00 UTC (after New York's close) on `day`."""
    instant = dt.datetime.fromisoformat(f"{day}T22:00").replace(tzinfo=UTC)
    return lambda: instant


@pytest.fixture
def settings_for(make_settings, fake_vendor):
    def build(provider: str = "yahoo", **flags):
        environ = {**vendor_base_urls(fake_vendor.url), "STOCKPIPE_EODHD_API_KEY": "KEY-split-basis-1",
                   f"STOCKPIPE_{provider.upper()}_CALLS_PER_SECOND": "100"}
        return make_settings(environ=environ, provider=provider, **flags)
    return build


def test_nvda_bars_stored_as_traded_with_their_split_basis(settings_for, fake_vendor, database_url):
    """The answer of 2021-07-21 for 2021-07-13..19: the split after the window is undone, each
    bar records the basis it was fetched on; an as-traded vendor's bars record none."""
    fake_vendor.route("/v8/finance/chart/NVDA", fixture("yahoo", "split_after_window.json"))
    fake_vendor.route("/api/eod/IBM.US", fixture("eodhd", "eod_success.json"))
    settings = settings_for(database_url=database_url, symbols=("NVDA",))
    fetched = pipeline.fetch(settings, D(2021, 7, 13), D(2021, 7, 19), clock=at("2021-07-21"))
    assert fetched.exit_code == ExitCode.OK, fetched.message
    period2 = int(fake_vendor.calls("/v8/finance/chart/NVDA")[0].param("period2"))
    assert dt.datetime.fromtimestamp(period2, UTC).date() >= D(2021, 7, 22)  # asked up to the day it ran
    eodhd = settings_for("eodhd", database_url=database_url, symbols=("IBM",))
    assert pipeline.fetch(eodhd, D(2024, 5, 6), D(2024, 5, 10), clock=at("2024-05-10")).exit_code == ExitCode.OK
    assert pipeline.load(settings, clock=at("2024-05-10")).exit_code == ExitCode.OK

    rows = query(database_url, "SELECT date, close, volume, split_basis FROM prices_daily WHERE symbol = 'NVDA' "
                               "ORDER BY date")
    assert [(str(d), c, v, str(b)) for d, c, v, b in rows] == [
        ("2021-07-13", 816.4, 11862400, "2021-07-21"), ("2021-07-14", 792.32, 13604800, "2021-07-21"),
        ("2021-07-15", 760.12, 16422000, "2021-07-21"), ("2021-07-16", 723.44, 15938800, "2021-07-21"),
        ("2021-07-19", 751.2, 17219200, "2021-07-21")]
    assert query(database_url, "SELECT DISTINCT split_basis FROM prices_daily WHERE symbol = 'IBM'") == [(None,)]
    actions = query(database_url, "SELECT date, kind, value FROM corporate_actions WHERE symbol = 'NVDA'")
    assert [(str(d), k, v) for d, k, v in actions] == [("2021-07-20", "split", 4.0)]


def tsla(days_closes: list[tuple[str, float]], factor: float = 1.0) -> list[tuple]:
    """TSLA bars (day, open, high, low, close, volume) as an answer sends them, divided by
    `factor` (made-up as-traded prices, multiples of 0.03 so a 3:1 division is exact)."""
    return [(d, (c - 0.3) / factor, (c + 3.0) / factor, (c - 6.0) / factor, c / factor, 3_000_000 * factor)
            for d, c in days_closes]


BEFORE = [("2022-08-08", 871.29), ("2022-08-09", 850.02), ("2022-08-10", 883.08), ("2022-08-11", 859.89),
          ("2022-08-12", 900.09)]
SHORT = [("2022-08-15", 927.96), ("2022-08-16", 919.68), ("2022-08-17", 912.0), ("2022-08-18", 908.61),
         ("2022-08-19", 890.01)]
BRIDGE = [("2022-08-22", 869.73), ("2022-08-23", 889.35), ("2022-08-24", 891.3)]
AFTER = [("2022-08-25", 296.07), ("2022-08-26", 288.09), ("2022-08-29", 284.82), ("2022-08-30", 277.7),
         ("2022-08-31", 275.61), ("2022-09-01", 277.16)]


def test_a_split_that_appears_later_restates_exactly_the_bars_fetched_short_of_it(settings_for, fake_vendor,
                                                                                  tmp_path, caplog):
    settings = settings_for(database_url=f"sqlite:///{tmp_path / 'w.db'}", symbols=("TSLA",))
    path = "/v8/finance/chart/TSLA"

    def fetch(start: str, end: str, clock: str, bars: list[tuple], splits=()):
        fake_vendor.route(path, Reply(200, yahoo_chart("TSLA", bars, splits=splits)))
        result = pipeline.fetch(settings, D.fromisoformat(start), D.fromisoformat(end), clock=at(clock))
        assert result.exit_code == ExitCode.OK, result.message
        return result

    # fetched before the split: as traded, on the basis of 2022-08-12
    fetch("2022-08-08", "2022-08-12", "2022-08-12", tsla(BEFORE))
    # fetched on 2022-09-01, after the split, by an answer that stopped at 2022-08-19 (a cache,
    # a proxy): Yahoo had divided the bars by 3, but the answer could not say so
    fetch("2022-08-15", "2022-08-19", "2022-09-01", tsla(SHORT, 3))
    # the next answer reports the split: the five bars fetched short of it are restated
    with caplog.at_level(logging.WARNING, logger="stockpipe"):
        result = fetch("2022-08-22", "2022-09-01", "2022-09-02", tsla(BRIDGE, 3) + tsla(AFTER),
                       splits=[("2022-08-25", 3, 1)])

    prices = Lake(settings.lake_dir).read_frame(PRICES, ["TSLA"]).set_index("date")
    expected = dict(BEFORE + SHORT + BRIDGE + AFTER)
    assert {d.strftime("%Y-%m-%d"): c for d, c in prices["close"].items()} == pytest.approx(expected)
    assert set(prices["volume"]) == {3_000_000}
    basis = {d.strftime("%Y-%m-%d"): b.strftime("%Y-%m-%d") for d, b in prices["split_basis"].items()}
    assert {basis[d] for d, _ in BEFORE} == {"2022-08-12"}  # untouched: fetched before the split
    assert {basis[d] for d, _ in SHORT} == {"2022-08-25"}  # restated up to the split they missed
    assert {basis[d] for d, _ in BRIDGE + AFTER} == {"2022-09-01"}
    outcome = result.stages[0].outcomes[0]
    assert "5 stored bar(s) 2022-08-15..2022-08-19 restated" in outcome.message and "3:1 of 2022-08-25" in outcome.message
    assert any("restated" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_refetch_keeps_the_basis_of_unchanged_bars_and_moves_it_with_the_vendors_adj_close(
        settings_for, fake_vendor, tmp_path):
    """split_basis is volatile like fetched_at: the same answer again rewrites nothing. The
    vendor's adj_close is adjusted as of the answer's day, so a later answer restates it, and
    the bar's basis says which day it is on."""
    settings = settings_for(database_url=f"sqlite:///{tmp_path / 'w.db'}", symbols=("NVDA",))
    lake = Lake(settings.lake_dir)
    fake_vendor.route("/v8/finance/chart/NVDA", fixture("yahoo", "split_after_window.json"))
    pipeline.fetch(settings, D(2021, 7, 13), D(2021, 7, 19), clock=at("2021-07-21"))
    pipeline.fetch(settings, D(2021, 7, 13), D(2021, 7, 19), clock=at("2021-07-22"))
    first = lake.read_frame(PRICES, ["NVDA"])
    assert set(first["split_basis"]) == {pd.Timestamp("2021-07-21")}
    assert set(first["fetched_at"]) == {pd.Timestamp("2021-07-21T22:00", tz="UTC")}
    assert first["adj_close"].tolist() == [204.1, 198.08, 190.03, 180.86, 187.8]

    fake_vendor.route("/v8/finance/chart/NVDA", fixture("yahoo", "split_before_later_split.json"))
    again = pipeline.fetch(settings, D(2021, 7, 13), D(2021, 7, 19), clock=at("2025-01-02"))
    assert again.exit_code == ExitCode.OK
    later = lake.read_frame(PRICES, ["NVDA"])
    assert later["close"].tolist() == first["close"].tolist()  # as traded whatever the basis
    assert later["adj_close"].tolist() == [20.41, 19.808, 19.003, 18.086, 18.78]  # Yahoo's, as of 2025-01-02
    assert set(later["split_basis"]) == {pd.Timestamp("2025-01-02")}
