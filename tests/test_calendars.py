"""Trading calendars: sessions, closes (early ones too), DST, exchanges per symbol."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import stockpipe
from stockpipe import calendars
from stockpipe.calendars import (DEFAULT_SUFFIXES, exchange_for, is_session, latest_closed_session,
                                 session_close, sessions_between)
from stockpipe.errors import ConfigError

NEW_YORK, LONDON, TOKYO = ZoneInfo("America/New_York"), ZoneInfo("Europe/London"), ZoneInfo("Asia/Tokyo")
UTC = dt.timezone.utc
D = dt.date


def at(zone, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


# ------------------------------------------------------------------- Thanksgiving 2026


def test_thanksgiving_is_closed_and_the_day_after_closes_early():
    assert not is_session(D(2026, 11, 26), "XNYS")
    assert is_session(D(2026, 11, 27), "XNYS")
    assert session_close(D(2026, 11, 27), "XNYS") == at(NEW_YORK, 2026, 11, 27, 13, 0)
    assert session_close(D(2026, 11, 25), "XNYS") == at(NEW_YORK, 2026, 11, 25, 16, 0)


@pytest.mark.parametrize("now, expected", [
    (at(NEW_YORK, 2026, 11, 25, 15, 59), D(2026, 11, 24)),  # Wednesday, a minute before the close
    (at(NEW_YORK, 2026, 11, 25, 16, 0), D(2026, 11, 25)),  # at the close: closed
    (at(NEW_YORK, 2026, 11, 26, 19, 0), D(2026, 11, 25)),  # Thanksgiving evening: still Wednesday
    (at(NEW_YORK, 2026, 11, 27, 12, 59), D(2026, 11, 25)),  # Friday before the 13:00 early close
    (at(NEW_YORK, 2026, 11, 27, 13, 1), D(2026, 11, 27)),  # Friday after it (not 16:00)
    (at(UTC, 2026, 11, 27, 18, 1), D(2026, 11, 27)),  # the same, said in UTC
    (at(NEW_YORK, 2026, 11, 28, 10, 0), D(2026, 11, 27)),  # Saturday
    (at(NEW_YORK, 2026, 11, 29, 23, 59), D(2026, 11, 27)),  # Sunday night
    (at(NEW_YORK, 2026, 11, 30, 9, 30), D(2026, 11, 27)),  # Monday, market open, not closed
])
def test_latest_closed_session_around_thanksgiving(now, expected):
    assert latest_closed_session(now, "XNYS") == expected


def test_london_trades_on_thanksgiving():
    assert latest_closed_session(at(UTC, 2026, 11, 26, 23, 0), "XLON") == D(2026, 11, 26)
    assert latest_closed_session(at(UTC, 2026, 11, 26, 23, 0), "XNYS") == D(2026, 11, 25)


def test_sessions_between_skips_the_holiday_and_includes_both_ends():
    assert sessions_between(D(2026, 11, 22), D(2026, 11, 30), "XNYS") == [
        D(2026, 11, 23), D(2026, 11, 24), D(2026, 11, 25), D(2026, 11, 27), D(2026, 11, 30)]
    assert sessions_between(D(2026, 11, 23), D(2026, 11, 23)) == [D(2026, 11, 23)]
    assert sessions_between(D(2026, 11, 26), D(2026, 11, 26)) == []
    assert sessions_between(D(2026, 11, 30), D(2026, 11, 23)) == []
    # Christmas week: New York closes the 25th; London the 25th and 28th (Boxing Day observed)
    assert sessions_between(D(2026, 12, 24), D(2026, 12, 29), "XNYS") == [
        D(2026, 12, 24), D(2026, 12, 28), D(2026, 12, 29)]
    assert sessions_between(D(2026, 12, 24), D(2026, 12, 29), "XLON") == [D(2026, 12, 24), D(2026, 12, 29)]


def test_good_friday_2026():
    assert not is_session(D(2026, 4, 3), "XNYS")
    assert not is_session(D(2026, 4, 3), "XLON")
    assert not is_session(D(2026, 4, 6), "XLON")  # Easter Monday: London only
    assert is_session(D(2026, 4, 6), "XNYS")
    assert latest_closed_session(at(NEW_YORK, 2026, 4, 3, 20, 0), "XNYS") == D(2026, 4, 2)
    assert latest_closed_session(at(LONDON, 2026, 4, 6, 20, 0), "XLON") == D(2026, 4, 2)
    assert sessions_between(D(2026, 4, 1), D(2026, 4, 7), "XNYS") == [
        D(2026, 4, 1), D(2026, 4, 2), D(2026, 4, 6), D(2026, 4, 7)]


def test_weekends_are_not_sessions():
    assert [is_session(D(2026, 11, 20) + dt.timedelta(days=i)) for i in range(4)] == [True, False, False, True]


# ------------------------------------------------------------------------------ DST


@pytest.mark.parametrize("exchange, before_session, before_close, after_session, after_close", [
    # New York, DST starts Sunday 2026-03-08: the 16:00 close moves from 21:00 to 20:00 UTC
    ("XNYS", D(2026, 3, 6), at(UTC, 2026, 3, 6, 21, 0), D(2026, 3, 9), at(UTC, 2026, 3, 9, 20, 0)),
    # New York, DST ends Sunday 2026-11-01: from 20:00 back to 21:00 UTC
    ("XNYS", D(2026, 10, 30), at(UTC, 2026, 10, 30, 20, 0), D(2026, 11, 2), at(UTC, 2026, 11, 2, 21, 0)),
    # London, BST starts Sunday 2026-03-29: the 16:30 close moves from 16:30 to 15:30 UTC
    ("XLON", D(2026, 3, 27), at(UTC, 2026, 3, 27, 16, 30), D(2026, 3, 30), at(UTC, 2026, 3, 30, 15, 30)),
    # London, BST ends Sunday 2026-10-25: from 15:30 back to 16:30 UTC
    ("XLON", D(2026, 10, 23), at(UTC, 2026, 10, 23, 15, 30), D(2026, 10, 26), at(UTC, 2026, 10, 26, 16, 30)),
])
def test_the_close_moves_by_an_hour_in_utc_across_dst(exchange, before_session, before_close, after_session,
                                                      after_close):
    assert session_close(before_session, exchange) == before_close
    assert session_close(after_session, exchange) == after_close
    assert abs(after_close.time().hour - before_close.time().hour) == 1
    minute = dt.timedelta(minutes=1)
    previous = sessions_between(before_session - dt.timedelta(days=7), before_session - dt.timedelta(days=1),
                                exchange)[-1]
    assert latest_closed_session(before_close - minute, exchange) == previous
    assert latest_closed_session(before_close + minute, exchange) == before_session
    assert latest_closed_session(after_close - minute, exchange) == before_session
    assert latest_closed_session(after_close + minute, exchange) == after_session


def test_between_the_us_and_uk_dst_changes_new_york_closes_at_20_utc_while_london_is_on_gmt():
    # 2026-03-09..03-27: New York on EDT, London still on GMT
    assert session_close(D(2026, 3, 16), "XNYS") == at(UTC, 2026, 3, 16, 20, 0)
    assert session_close(D(2026, 3, 16), "XLON") == at(UTC, 2026, 3, 16, 16, 30)


# -------------------------------------------------------- the date is the exchange's


def test_the_trading_date_depends_on_the_instant_not_on_the_zone_it_is_written_in():
    instant = at(TOKYO, 2026, 11, 24, 8, 0)  # Tuesday in Tokyo = Monday 23:00 UTC = 18:00 New York
    assert instant == at(UTC, 2026, 11, 23, 23, 0)
    assert latest_closed_session(instant, "XNYS") == D(2026, 11, 23)
    assert latest_closed_session(instant.astimezone(UTC), "XNYS") == D(2026, 11, 23)
    assert latest_closed_session(instant, "XTKS") == D(2026, 11, 20)  # Tokyo's Monday 11-23 is a holiday
    later = at(TOKYO, 2026, 11, 24, 16, 0)  # after Tokyo's 15:30 close; still Monday 02:00 in New York
    assert latest_closed_session(later, "XTKS") == D(2026, 11, 24)
    assert latest_closed_session(later, "XNYS") == D(2026, 11, 23)


def test_machine_time_zone_is_never_read(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: a different local date for most of the day
    time.tzset()
    try:
        assert latest_closed_session(at(UTC, 2026, 11, 23, 12, 0), "XNYS") == D(2026, 11, 20)
        with pytest.raises(ValueError, match="aware"):
            latest_closed_session(dt.datetime(2026, 11, 23, 23, 0), "XNYS")
    finally:
        monkeypatch.undo()
        time.tzset()


# ----------------------------------------------------------------- symbol -> exchange


@pytest.mark.parametrize("symbol, exchange", [
    ("AAPL", "XNYS"), ("IBM", "XNYS"), ("^GSPC", "XNYS"), ("RDS-A", "XNYS"),
    ("BRK.B", "XNYS"), ("BF.A", "XNYS"),  # class shares stay US
    ("VOD.L", "XLON"), ("SAP.DE", "XETR"), ("BMW.F", "XFRA"), ("MC.PA", "XPAR"), ("ASML.AS", "XAMS"),
    ("RY.TO", "XTSE"), ("7203.T", "XTKS"), ("0700.HK", "XHKG"), ("BHP.AX", "XASX"), ("NESN.SW", "XSWX"),
    ("ENI.MI", "XMIL"),
])
def test_exchange_for_defaults(symbol, exchange):
    assert exchange_for(symbol) == exchange


def test_exchange_for_overrides():
    overrides = {".L": "XNYS", "VOD.L": "XLON", ".de": "xfra", "SHOP": "XTSE", ".B": "XLON"}
    assert exchange_for("VOD.L", overrides) == "XLON"  # a whole symbol beats its suffix
    assert exchange_for("BARC.L", overrides) == "XNYS"  # a suffix override beats the default
    assert exchange_for("SAP.DE", overrides) == "XFRA"  # case does not matter
    assert exchange_for("SHOP", overrides) == "XTSE"
    assert exchange_for("BRK.B", overrides) == "XLON"  # even a class letter, when the config says so
    assert exchange_for("7203.T", overrides) == "XTKS"  # untouched defaults stay
    assert exchange_for("AAPL", overrides) == "XNYS"
    assert exchange_for("BRK.B", None) == exchange_for("BRK.B", {}) == "XNYS"


def test_unknown_long_suffix_is_planned_on_new_york_with_a_warning(caplog):
    with caplog.at_level("WARNING", logger="stockpipe"):
        assert exchange_for("ABC.ZZ") == "XNYS"
    assert ".ZZ" in caplog.text and "[exchanges]" in caplog.text


@pytest.mark.parametrize("exchange", sorted(set(DEFAULT_SUFFIXES.values())))
def test_every_default_exchange_has_a_working_calendar(exchange):
    # a full weekday week always holds at least one session, wherever the weekend falls
    assert sessions_between(D(2026, 6, 1), D(2026, 6, 7), exchange)


def test_an_unknown_exchange_is_a_configuration_error():
    with pytest.raises(ConfigError, match="XNOPE"):
        is_session(D(2026, 1, 5), "XNOPE")


# ------------------------------------------------------------------------ the cache


def test_one_calendar_per_exchange_per_process(monkeypatch):
    import exchange_calendars

    built = []
    real = exchange_calendars.get_calendar
    monkeypatch.setattr(exchange_calendars, "get_calendar", lambda name, **kw: built.append((name, kw)) or real(name, **kw))
    calendars._clear_cache()
    try:
        for hour in range(24):
            latest_closed_session(at(UTC, 2026, 11, 23, hour, 0), "XNYS")
            latest_closed_session(at(UTC, 2026, 11, 23, hour, 0), "XLON")
        is_session(D(2026, 11, 26), "XNYS")
        sessions_between(D(2000, 1, 1), D(2026, 12, 31), "XNYS")  # history since 1990 is covered
        assert [name for name, _ in built] == ["XNYS", "XLON"]
        assert built[0][1]["start"] <= "1990-01-01"
        assert built[0][1]["end"] >= "2027-11-23"  # a year ahead
        # a question outside the range widens it once, then it is covered
        assert is_session(D(1985, 1, 2), "XNYS")
        assert is_session(D(1985, 1, 3), "XNYS")
        assert [name for name, _ in built] == ["XNYS", "XLON", "XNYS"]
    finally:
        calendars._clear_cache()


def test_a_calendar_that_starts_late_is_clipped_not_an_error():
    first = sessions_between(D(1990, 1, 1), D(1997, 1, 10), "XTKS")
    assert first[0] >= D(1997, 1, 1) and first


def test_importing_calendars_does_not_import_pandas():
    src = Path(stockpipe.__file__).resolve().parents[1]
    code = "import sys, stockpipe.calendars; sys.exit('pandas' in sys.modules or 'exchange_calendars' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(src)})
    assert done.returncode == 0
