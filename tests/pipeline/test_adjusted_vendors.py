"""Issue 15, item 2: a vendor that sends only adjusted prices never fills the as-traded
columns. Stooq's daily CSV is split- and dividend-adjusted (AAPL's 2018-01-02 close comes as
40.30; it traded at 172.26), Finnhub's daily candles split-adjusted; neither answer says by
which actions. Only the answer's newest bar, which no later action has adjusted, is stored
(its close also as adj_close); the others go to rejects as `adjusted_only`, with the
vendor's values."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from fakevendor import Reply, fixture
from stockpipe import pipeline
from stockpipe.errors import ExitCode
from stockpipe.models import DATASETS
from stockpipe.storage.lake import Lake

from helpers import vendor_base_urls

PRICES, REJECTS = DATASETS["prices_daily"], DATASETS["rejects"]
D = dt.date


def clock():
    return dt.datetime(2024, 6, 7, 22, 0, tzinfo=dt.timezone.utc)  # after the newest bar's close


@pytest.fixture
def settings_for(make_settings, fake_vendor, tmp_path):
    def build(provider: str, symbol: str):
        environ = {**vendor_base_urls(fake_vendor.url), f"STOCKPIPE_{provider.upper()}_API_KEY": "KEY-adjusted-1"}
        return make_settings(environ=environ, provider=provider, symbols=(symbol,),
                             database_url=f"sqlite:///{tmp_path / 'w.db'}")
    return build


def stored(settings, symbol: str) -> tuple[list, list]:
    lake = Lake(settings.lake_dir)
    prices = lake.read_frame(PRICES, [symbol])
    rejects = lake.read_frame(REJECTS, [symbol])
    return ([(d.strftime("%Y-%m-%d"), c, a, b.strftime("%Y-%m-%d"))
             for d, c, a, b in prices[["date", "close", "adj_close", "split_basis"]].itertuples(index=False)],
            sorted(zip(rejects["date"], rejects["reason"], rejects["raw"])))


def test_stooqs_adjusted_2018_close_is_never_stored_as_traded(settings_for, fake_vendor):
    fake_vendor.route("/q/d/l/", fixture("stooq", "adjusted_history.csv"))
    settings = settings_for("stooq", "AAPL")
    result = pipeline.fetch(settings, D(2018, 1, 2), D(2024, 6, 7), clock=clock)
    assert result.exit_code == ExitCode.OK, result.message
    assert fake_vendor.calls("/q/d/l/")[0].param("d2") == "20240607"  # asked up to today: its newest bar
    prices, rejects = stored(settings, "AAPL")
    assert prices == [("2024-06-07", 196.89, 196.89, "2024-06-07")]  # the newest bar: as traded and adjusted
    assert [(d, r) for d, r, _ in rejects] == [(d, "adjusted_only") for d in (
        "2018-01-02", "2018-01-03", "2018-01-04", "2018-01-05", "2024-06-06")]
    first = json.loads(rejects[0][2])
    assert first["close"] == 40.3  # kept, with what it means, in rejects.raw only
    counts = result.stages[0].counts
    assert (counts["rows_fetched"], counts["rows_rejected"]) == (1, 5)


def test_a_window_of_adjusted_history_alone_stores_nothing_as_traded(settings_for, fake_vendor):
    fake_vendor.route("/q/d/l/", fixture("stooq", "adjusted_history.csv"))
    settings = settings_for("stooq", "AAPL")
    result = pipeline.fetch(settings, D(2018, 1, 2), D(2018, 1, 5), clock=clock)
    assert result.exit_code == ExitCode.OK and result.stages[0].outcomes[0].status == "no_data"
    prices, rejects = stored(settings, "AAPL")
    assert prices == [] and len(rejects) == 4


def test_finnhubs_split_adjusted_daily_candles_keep_only_the_newest(settings_for, fake_vendor):
    fake_vendor.route("/api/v1/stock/candle", fixture("finnhub", "candle_midnight_utc.json"))
    settings = settings_for("finnhub", "AAPL")
    result = pipeline.fetch(settings, D(2024, 6, 3), D(2024, 6, 7), clock=clock)
    assert result.exit_code == ExitCode.OK, result.message
    prices, rejects = stored(settings, "AAPL")
    assert prices == [("2024-06-07", 196.89, 196.89, "2024-06-07")]
    assert [(d, r) for d, r, _ in rejects] == [(d, "adjusted_only") for d in (
        "2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06")]  # each on its own session date


def test_finnhubs_intraday_candles_are_as_traded_and_all_stored(settings_for, fake_vendor):
    """Finnhub adjusts daily candles only: its intraday bars keep every bar."""
    fake_vendor.route("/api/v1/stock/candle", fixture("finnhub", "candle_intraday_sydney.json"))
    settings = settings_for("finnhub", "BHP.AX")
    now = lambda: dt.datetime(2024, 6, 4, 8, 0, tzinfo=dt.timezone.utc)  # noqa: E731 - after Sydney's close
    result = pipeline.fetch_intraday(settings, "5m", D(2024, 6, 4), D(2024, 6, 4), clock=now)
    assert result.exit_code == ExitCode.OK, result.message
    bars = Lake(settings.lake_dir).read_frame(DATASETS["prices_intraday"], ["BHP.AX"])
    assert len(bars) == 72 and set(bars["session_date"].dt.strftime("%Y-%m-%d")) == {"2024-06-04"}


def test_the_readme_says_what_each_provider_stores():
    from helpers import TESTS

    readme = (TESTS.parent / "README.md").read_text(encoding="utf-8")
    for words in ("adjusted_only", "split_basis", "Stooq", "Finnhub", "pence"):
        assert words in readme, words


def test_an_unknown_vendor_answer_shape_is_never_coerced(settings_for, fake_vendor):
    """A refusal passes through the adjusting rule untouched (no anchor is made of nothing)."""
    fake_vendor.route("/q/d/l/", Reply(200, "No data", content_type="text/plain"))
    settings = settings_for("stooq", "AAPL")
    result = pipeline.fetch(settings, D(2024, 6, 3), D(2024, 6, 7), clock=clock)
    assert result.exit_code == ExitCode.BAD_INPUT and stored(settings, "AAPL") == ([], [])
