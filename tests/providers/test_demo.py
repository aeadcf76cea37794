"""Tests for the synthetic `demo` provider."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from stockpipe import calendars
from stockpipe.errors import BadInputError, SymbolNotFoundError
from stockpipe.providers.base import ACTION_COLUMNS, BAR_COLUMNS, ParsedDaily
from stockpipe.providers.demo import DemoProvider

NEW_YORK = ZoneInfo("America/New_York")
# Monday 2025-01-06 after the close: every range below ends well before it.
LATE = dt.datetime(2025, 1, 6, 22, 0, tzinfo=dt.timezone.utc)
SYMBOLS = [f"SYM{i:03d}" for i in range(150)] + ["AAPL", "MSFT", "BRK.B", "X", "7203.T"]


def fixed(now: dt.datetime) -> DemoProvider:
    """A provider whose clock always says `now`."""
    return DemoProvider(clock=lambda: now)


def daily(provider: DemoProvider, symbol: str, start: dt.date, end: dt.date) -> ParsedDaily:
    """Fetch then parse, as the pipeline does."""
    return provider.parse_daily(provider.fetch_daily(symbol, start, end), start, end)


def between(frame: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Rows of `frame` dated within [start, end], re-indexed from 0."""
    inside = frame["date"].between(pd.Timestamp(start), pd.Timestamp(end))
    return frame[inside].reset_index(drop=True)


@pytest.fixture(scope="module")
def two_years() -> dict[str, ParsedDaily]:
    """2023-2024 for many symbols, shared by the property tests."""
    provider = fixed(LATE)
    return {s: daily(provider, s, dt.date(2023, 1, 1), dt.date(2024, 12, 31)) for s in SYMBOLS}


def test_same_dates_give_same_bars_whatever_the_range() -> None:
    provider = fixed(LATE)
    start, end = dt.date(2024, 3, 1), dt.date(2024, 6, 30)
    for symbol in ("AAPL", "SYM007"):
        wide = daily(provider, symbol, dt.date(2023, 1, 1), dt.date(2024, 12, 31))
        narrow = daily(provider, symbol, start, end)
        pd.testing.assert_frame_equal(narrow.bars, between(wide.bars, start, end))
        pd.testing.assert_frame_equal(narrow.actions, between(wide.actions, start, end))


def test_a_single_day_matches_the_long_fetch() -> None:
    # A one-day range is the harshest case for anything seeded at the range start.
    provider = fixed(LATE)
    day = dt.date(2024, 7, 15)
    wide = daily(provider, "AAPL", dt.date(2020, 1, 1), dt.date(2024, 12, 31)).bars
    one = daily(provider, "AAPL", day, day).bars
    pd.testing.assert_frame_equal(one, between(wide, day, day))


# The open follows the previous session's level: 2024-01-01 was a holiday, so it is 2023-12-29's.
PINNED = (117.63, 118.72, 117.51, 118.32, 946561.0)


def test_pinned_values_do_not_depend_on_the_process() -> None:
    # Python's hash() is salted per process; these numbers pin the stable crc32 seeding.
    bars = daily(fixed(LATE), "AAPL", dt.date(2024, 1, 2), dt.date(2024, 1, 2)).bars
    row = bars.iloc[0]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (
        PINNED)


def test_bars_fall_on_every_session_and_only_sessions(two_years: dict[str, ParsedDaily]) -> None:
    us = calendars.sessions_between(dt.date(2023, 1, 1), dt.date(2024, 12, 31), "XNYS")
    assert dt.date(2024, 7, 4) not in us and len(us) == 502  # holidays are not sessions
    for symbol, parsed in two_years.items():
        exchange = calendars.exchange_for(symbol)  # 7203.T trades on Tokyo's calendar
        sessions = [pd.Timestamp(d) for d in calendars.sessions_between(dt.date(2023, 1, 1), dt.date(2024, 12, 31), exchange)]
        assert list(pd.DatetimeIndex(parsed.bars["date"])) == sessions, symbol
        assert set(pd.DatetimeIndex(parsed.actions["date"])) <= set(sessions)


def test_ohlcv_is_plausible(two_years: dict[str, ParsedDaily]) -> None:
    for symbol, parsed in two_years.items():
        bars = parsed.bars
        o, h, l, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
        assert (l > 0).all(), symbol
        assert (h >= np.maximum(o, c)).all() and (l <= np.minimum(o, c)).all(), symbol
        for prices in (o, h, l, c):
            assert np.array_equal(np.round(prices, 2), prices), symbol
        volume = bars["volume"].to_numpy()
        assert (volume > 0).all() and np.array_equal(volume, np.round(volume)), symbol
        assert bars["adj_close"].isna().all()


def test_moves_are_small_except_at_splits(two_years: dict[str, ParsedDaily]) -> None:
    all_moves = []
    for symbol, parsed in two_years.items():
        bars, actions = parsed.bars, parsed.actions
        splits = actions[actions["kind"] == "split"].set_index("date")["value"]
        ratio = bars["close"] / bars["close"].shift(1)
        # Undo each split so the series is comparable across it: as traded, a 2:1
        # split halves the price.
        factor = bars["date"].map(splits).fillna(1.0)
        moves = np.log(ratio * factor).iloc[1:].abs()
        assert moves.max() < 0.2, symbol
        at_split = ratio[bars["date"].isin(splits.index)]
        assert (np.abs(np.log(at_split)) > np.log(1.5)).all(), symbol
        all_moves.append(moves.to_numpy())
    typical = np.median(np.concatenate(all_moves))
    assert 0.005 < typical < 0.02


@pytest.mark.parametrize("symbol", ["AAPL", "SYM000", "SYM101", "7203.T"])
@pytest.mark.parametrize("first", [dt.date(1999, 12, 31), dt.date(2008, 2, 29), dt.date(2016, 7, 4),
                                   dt.date(2021, 3, 17), dt.date(2022, 12, 1)])
def test_every_two_year_window_has_a_split_and_a_dividend(symbol: str, first: dt.date) -> None:
    last = first + dt.timedelta(days=729)
    actions = daily(fixed(LATE), symbol, first, last).actions
    kinds = actions["kind"].tolist()
    assert "split" in kinds and "dividend" in kinds
    splits = set(actions.loc[actions["kind"] == "split", "value"])
    assert splits <= {2.0, 0.5}
    dividends = actions.loc[actions["kind"] == "dividend", "value"]
    assert len(dividends) >= 7 and (dividends > 0).all()


def test_dividends_are_a_small_fraction_of_the_price(two_years: dict[str, ParsedDaily]) -> None:
    for parsed in two_years.values():
        dividends = parsed.actions[parsed.actions["kind"] == "dividend"]
        close = parsed.bars.set_index("date")["close"]
        share = dividends["value"].to_numpy() / close.loc[dividends["date"]].to_numpy()
        assert ((share > 0.0015) & (share < 0.0085)).all()


@pytest.mark.parametrize(("now", "last_bar"), [
    (dt.datetime(2024, 6, 15, 12, 0, tzinfo=NEW_YORK), dt.date(2024, 6, 14)),  # Saturday
    (dt.datetime(2024, 6, 16, 23, 0, tzinfo=NEW_YORK), dt.date(2024, 6, 14)),  # Sunday night
    (dt.datetime(2024, 6, 12, 15, 59, tzinfo=NEW_YORK), dt.date(2024, 6, 11)),  # Wed before close
    (dt.datetime(2024, 6, 12, 16, 0, tzinfo=NEW_YORK), dt.date(2024, 6, 12)),  # Wed at close
    (dt.datetime(2024, 6, 17, 9, 30, tzinfo=NEW_YORK), dt.date(2024, 6, 14)),  # Monday morning
    (dt.datetime(2024, 6, 13, 1, 0, tzinfo=dt.timezone.utc), dt.date(2024, 6, 12)),  # UTC clock
])
def test_bars_stop_at_the_latest_closed_session(now: dt.datetime, last_bar: dt.date) -> None:
    bars = daily(fixed(now), "AAPL", dt.date(2024, 6, 1), dt.date(2024, 12, 31)).bars
    assert bars["date"].max() == pd.Timestamp(last_bar)


def test_a_range_after_the_latest_session_is_empty() -> None:
    now = dt.datetime(2024, 6, 15, 12, 0, tzinfo=NEW_YORK)
    parsed = daily(fixed(now), "AAPL", dt.date(2024, 6, 15), dt.date(2024, 7, 31))
    assert parsed.bars.empty and parsed.actions.empty
    assert tuple(parsed.bars.columns) == BAR_COLUMNS
    assert tuple(parsed.actions.columns) == ACTION_COLUMNS
    assert pd.api.types.is_datetime64_dtype(parsed.bars["date"])
    assert parsed.bars["volume"].dtype == np.float64


def test_different_symbols_have_different_prices(two_years: dict[str, ParsedDaily]) -> None:
    closes = {s: tuple(p.bars["close"].head(20)) for s, p in two_years.items()}
    assert len(set(closes.values())) == len(closes)
    levels = [p.bars["close"].iloc[0] for p in two_years.values()]
    assert max(levels) / min(levels) > 5  # a spread of price levels, not one curve


def test_payload_round_trips_through_parse() -> None:
    provider = fixed(LATE)
    start, end = dt.date(2024, 1, 1), dt.date(2024, 12, 31)
    payload = provider.fetch_daily("MSFT", start, end)
    assert (payload.provider, payload.symbol) == ("demo", "MSFT")
    assert payload.media_type == "application/json"
    assert payload.api_calls == 0 and "synthetic" in payload.source
    doc = json.loads(payload.content)
    assert doc["symbol"] == "MSFT" and doc["synthetic"] is True

    parsed = provider.parse_daily(payload, start, end)
    assert parsed.symbol == "MSFT"
    assert tuple(parsed.bars.columns) == BAR_COLUMNS
    assert tuple(parsed.actions.columns) == ACTION_COLUMNS
    assert parsed.bars["date"].is_monotonic_increasing
    assert (parsed.bars["date"] == parsed.bars["date"].dt.normalize()).all()
    assert parsed.bars["date"].dt.tz is None
    assert parsed.bars["volume"].dtype == np.float64
    assert [d.strftime("%Y-%m-%d") for d in parsed.bars["date"]] == doc["bars"]["date"]
    for column in ("open", "high", "low", "close", "volume"):
        assert parsed.bars[column].tolist() == doc["bars"][column]
    assert parsed.actions["kind"].tolist() == doc["actions"]["kind"]
    assert parsed.actions["value"].tolist() == doc["actions"]["value"]
    assert provider.parse_daily(payload, start, end).bars.equals(parsed.bars)  # pure


def test_parse_keeps_only_the_requested_range() -> None:
    provider = fixed(LATE)
    payload = provider.fetch_daily("MSFT", dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    parsed = provider.parse_daily(payload, dt.date(2024, 5, 1), dt.date(2024, 5, 31))
    assert parsed.bars["date"].min() == pd.Timestamp("2024-05-01")
    assert parsed.bars["date"].max() == pd.Timestamp("2024-05-31")
    assert len(parsed.bars) == 22  # May 2024 had 22 sessions (Memorial Day is not one)
    assert parsed.bars.index.tolist() == list(range(22))


def test_unreadable_payload_and_empty_symbol_are_refused() -> None:
    provider = fixed(LATE)
    payload = provider.fetch_daily("MSFT", dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    broken = type(payload)(**{**payload.__dict__, "content": b'{"bars": {}}'})
    with pytest.raises(BadInputError):
        provider.parse_daily(broken, dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    with pytest.raises(SymbolNotFoundError):
        provider.fetch_daily(" ", dt.date(2024, 1, 1), dt.date(2024, 1, 31))


def test_interface_basics() -> None:
    provider = DemoProvider.from_settings(SimpleNamespace(exchanges={}))
    assert provider.name == "demo" and provider.needs_key is False
    assert provider.symbols() is None
    provider.close()
