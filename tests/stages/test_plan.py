"""plan_fetch: which date range each symbol lacks, on its own exchange's calendar. Pure."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from stockpipe.stages.plan import FetchPlan, FetchTask, plan_fetch

UTC, TOKYO, NEW_YORK = dt.timezone.utc, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # conftest.NOW: Monday, 18:00 New York
LATEST = dt.date(2026, 11, 23)  # Monday: the latest closed session at NOW
FRIDAY = dt.date(2026, 11, 20)
WEDNESDAY = dt.date(2026, 11, 25)  # before Thanksgiving (Thursday 2026-11-26, New York closed)
BLACK_FRIDAY = dt.date(2026, 11, 27)  # New York closes early, at 13:00


def last(**dates: dt.date | None) -> dict[str, dict]:
    """symbol_state rows holding only last_date."""
    return {symbol: {"last_date": day} for symbol, day in dates.items()}


# ------------------------------------------------------- the trunk's tests, same intent


def test_new_symbol_gets_a_history_days_backfill():
    plan = plan_fetch(["AAA"], {}, NOW, history_days=365)
    assert plan == FetchPlan((FetchTask("AAA", dt.date(2025, 11, 23), LATEST, backfill=True),), ())


def test_a_symbol_with_none_as_last_date_is_new_too():
    plan = plan_fetch(["AAA", "BBB"], {"AAA": {"last_date": None, "refetch_from": None}, "BBB": None}, NOW,
                      history_days=10)
    assert plan.tasks == (FetchTask("AAA", dt.date(2026, 11, 13), LATEST, backfill=True),
                          FetchTask("BBB", dt.date(2026, 11, 13), LATEST, backfill=True))


def test_up_to_date_symbol_is_planned_nothing():
    plan = plan_fetch(["AAA"], last(AAA=LATEST), NOW, history_days=365)
    assert plan.tasks == ()
    assert plan.current == ("AAA",)


def test_symbol_behind_gets_the_days_after_its_last_date():
    plan = plan_fetch(["AAA"], last(AAA=FRIDAY), NOW, history_days=365)
    assert plan.tasks == (FetchTask("AAA", dt.date(2026, 11, 21), LATEST, backfill=False),)
    assert plan.current == ()


def test_explicit_start_overrides_the_state():
    states = last(AAA=LATEST, BBB=FRIDAY) | {"DDD": {"last_date": FRIDAY, "refetch_from": dt.date(2025, 6, 2)}}
    start = dt.date(2026, 1, 2)
    plan = plan_fetch(["AAA", "BBB", "CCC", "DDD"], states, NOW, history_days=365, start=start)
    assert plan.current == ()
    assert {t.symbol: (t.start, t.end, t.backfill) for t in plan.tasks} == {
        "AAA": (start, LATEST, False),
        "BBB": (start, LATEST, False),
        "CCC": (start, LATEST, True),
        "DDD": (start, LATEST, False),
    }


def test_end_is_capped_at_the_latest_session():
    plan = plan_fetch(["AAA"], last(AAA=FRIDAY), NOW, history_days=30, end=dt.date(2026, 12, 31))
    assert plan.tasks == (FetchTask("AAA", dt.date(2026, 11, 21), LATEST, backfill=False),)


def test_an_earlier_explicit_end_is_kept_and_counts_for_currency():
    end = dt.date(2026, 11, 18)
    plan = plan_fetch(["AAA", "BBB", "CCC"], last(AAA=dt.date(2026, 11, 18), BBB=dt.date(2026, 11, 16)),
                      NOW, history_days=7, end=end)
    assert plan.current == ("AAA",)
    assert plan.tasks == (
        FetchTask("BBB", dt.date(2026, 11, 17), end, backfill=False),
        FetchTask("CCC", dt.date(2026, 11, 11), end, backfill=True),
    )


def test_an_explicit_end_on_a_weekend_or_holiday_means_the_session_before():
    plan = plan_fetch(["AAA", "BBB"], last(AAA=FRIDAY, BBB=dt.date(2026, 11, 19)), NOW, history_days=7,
                      end=dt.date(2026, 11, 22))  # Sunday
    assert plan.current == ("AAA",)
    assert plan.tasks == (FetchTask("BBB", dt.date(2026, 11, 20), FRIDAY, backfill=False),)
    later = dt.datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    plan = plan_fetch(["AAA"], last(AAA=WEDNESDAY), later, history_days=7, end=dt.date(2026, 11, 26))
    assert plan == FetchPlan((), ("AAA",))  # Thanksgiving: nothing after Wednesday up to it


def test_incremental_tasks_come_before_backfills_stalest_first():
    symbols = ["NEW1", "RECENT", "UPTODATE", "STALE", "NEW2", "MIDDLE", "GAPPED"]
    states = last(RECENT=FRIDAY, UPTODATE=LATEST, STALE=dt.date(2026, 10, 1), MIDDLE=dt.date(2026, 11, 2))
    # a gap far back in a symbol that is otherwise current does not make it "stale"
    states["GAPPED"] = {"last_date": dt.date(2026, 11, 12), "refetch_from": dt.date(2024, 3, 4)}
    plan = plan_fetch(symbols, states, NOW, history_days=365)
    assert [t.symbol for t in plan.tasks] == ["STALE", "MIDDLE", "GAPPED", "RECENT", "NEW1", "NEW2"]
    assert [t.backfill for t in plan.tasks] == [False, False, False, False, True, True]
    assert [t.start for t in plan.tasks[:4]] == [dt.date(2026, 10, 2), dt.date(2026, 11, 3), dt.date(2024, 3, 4),
                                                 dt.date(2026, 11, 21)]
    assert plan.current == ("UPTODATE",)


def test_every_symbol_is_either_planned_or_current():
    symbols = [f"S{i}" for i in range(20)]
    states = {s: {"last_date": LATEST - dt.timedelta(days=i % 4)} for i, s in enumerate(symbols) if i % 5}
    plan = plan_fetch(symbols, states, NOW, history_days=100)
    planned = [t.symbol for t in plan.tasks]
    assert sorted(planned + list(plan.current)) == sorted(symbols)
    assert len(set(planned)) == len(planned)
    assert plan.current == tuple(s for i, s in enumerate(symbols) if i % 5 and i % 4 == 0)
    assert all(t.end == LATEST and t.start <= t.end for t in plan.tasks)


def test_no_symbols_no_plan():
    assert plan_fetch([], {}, NOW, history_days=365) == FetchPlan((), ())


# ------------------------------------------------------ weekends, holidays, early closes


@pytest.mark.parametrize("now", [
    dt.datetime(2026, 11, 28, 15, 0, tzinfo=UTC),  # Saturday
    dt.datetime(2026, 11, 29, 23, 59, tzinfo=NEW_YORK),  # Sunday night
    dt.datetime(2026, 11, 30, 15, 0, tzinfo=UTC),  # Monday, 10:00 New York: open, not closed
])
def test_a_weekend_run_plans_nothing_for_a_symbol_current_to_the_last_session(now):
    plan = plan_fetch(["IBM", "AAPL"], last(IBM=BLACK_FRIDAY, AAPL=WEDNESDAY), now, history_days=365)
    assert plan.current == ("IBM",)
    assert plan.tasks == (FetchTask("AAPL", dt.date(2026, 11, 26), BLACK_FRIDAY, backfill=False),)


def test_thanksgiving_evening_plans_nothing_for_a_symbol_current_to_wednesday():
    thursday_evening = dt.datetime(2026, 11, 26, 19, 0, tzinfo=NEW_YORK)
    plan = plan_fetch(["IBM", "MSFT"], last(IBM=WEDNESDAY, MSFT=WEDNESDAY), thursday_evening, history_days=365)
    assert plan == FetchPlan((), ("IBM", "MSFT"))


def test_good_friday_plans_nothing_for_new_york_or_london():
    good_friday_night = dt.datetime(2026, 4, 3, 23, 0, tzinfo=UTC)
    thursday = dt.date(2026, 4, 2)
    plan = plan_fetch(["IBM", "VOD.L"], last(IBM=thursday, **{"VOD.L": thursday}), good_friday_night, 365)
    assert plan == FetchPlan((), ("IBM", "VOD.L"))
    easter_monday_night = dt.datetime(2026, 4, 6, 23, 0, tzinfo=UTC)  # New York trades, London does not
    plan = plan_fetch(["IBM", "VOD.L"], last(IBM=thursday, **{"VOD.L": thursday}), easter_monday_night, 365)
    assert plan.current == ("VOD.L",)
    assert plan.tasks == (FetchTask("IBM", dt.date(2026, 4, 3), dt.date(2026, 4, 6), backfill=False),)


def test_the_early_close_counts_at_13_new_york():
    states = last(IBM=WEDNESDAY)
    before = plan_fetch(["IBM"], states, dt.datetime(2026, 11, 27, 12, 59, tzinfo=NEW_YORK), 365)
    after = plan_fetch(["IBM"], states, dt.datetime(2026, 11, 27, 13, 1, tzinfo=NEW_YORK), 365)
    assert before == FetchPlan((), ("IBM",))
    assert after.tasks == (FetchTask("IBM", dt.date(2026, 11, 26), BLACK_FRIDAY, backfill=False),)


# -------------------------------------------------------------- each symbol's exchange


def test_london_and_new_york_symbols_at_the_same_instant_get_different_ends():
    evening_in_london = dt.datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # 13:00 in New York
    plan = plan_fetch(["IBM", "VOD.L"], last(IBM=dt.date(2026, 11, 19), **{"VOD.L": dt.date(2026, 11, 19)}),
                      evening_in_london, history_days=365)
    assert {t.symbol: (t.start, t.end, t.exchange) for t in plan.tasks} == {
        "IBM": (dt.date(2026, 11, 20), FRIDAY, "XNYS"),
        "VOD.L": (dt.date(2026, 11, 20), LATEST, "XLON"),
    }
    thanksgiving_night = dt.datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    plan = plan_fetch(["IBM", "VOD.L"], last(IBM=WEDNESDAY, **{"VOD.L": WEDNESDAY}), thanksgiving_night, 365)
    assert plan.current == ("IBM",)
    assert plan.tasks == (FetchTask("VOD.L", dt.date(2026, 11, 26), dt.date(2026, 11, 26), False, "XLON"),)


def test_exchange_of_decides_the_calendar():
    evening_in_london = dt.datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    on_london = plan_fetch(["SHEL"], last(SHEL=FRIDAY), evening_in_london, 365, exchange_of=lambda s: "XLON")
    on_new_york = plan_fetch(["SHEL"], last(SHEL=FRIDAY), evening_in_london, 365, exchange_of=lambda s: "XNYS")
    assert on_london.tasks == (FetchTask("SHEL", dt.date(2026, 11, 21), LATEST, False, "XLON"),)
    assert on_new_york == FetchPlan((), ("SHEL",))


def test_the_date_is_never_the_machines_local_date(monkeypatch):
    import time

    # Tuesday 08:00 in Tokyo is Monday 23:00 UTC and Monday 18:00 in New York.
    in_tokyo = dt.datetime(2026, 11, 24, 8, 0, tzinfo=TOKYO)
    in_utc = dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert in_tokyo == in_utc and in_tokyo.date() != in_utc.date()
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the machine's own zone says Tuesday too
    time.tzset()
    try:
        states = last(IBM=FRIDAY, **{"7203.T": dt.date(2026, 11, 19)})
        plans = [plan_fetch(["IBM", "7203.T"], states, now, history_days=365) for now in (in_tokyo, in_utc)]
        assert plans[0] == plans[1]
        # New York: Monday (not Tokyo's Tuesday); Tokyo: Monday 11-23 is a holiday and
        # Tuesday's session has not opened: Friday 11-20.
        assert {t.symbol: t.end for t in plans[0].tasks} == {"IBM": LATEST, "7203.T": FRIDAY}
        # Tuesday 16:00 Tokyo (after its 15:30 close) = Tuesday 07:00 UTC = Tuesday 02:00 New York
        afternoon = plan_fetch(["IBM", "7203.T"], states, dt.datetime(2026, 11, 24, 7, 0, tzinfo=UTC), 365)
        assert {t.symbol: t.end for t in afternoon.tasks} == {"IBM": LATEST, "7203.T": dt.date(2026, 11, 24)}
        with pytest.raises(ValueError, match="aware"):
            plan_fetch(["IBM"], states, dt.datetime(2026, 11, 24, 8, 0), history_days=365)
    finally:
        monkeypatch.undo()
        time.tzset()


# --------------------------------------------------------------------- refetch_from


def test_refetch_from_gives_one_task_spanning_the_gap_and_the_new_sessions():
    states = {"IBM": {"last_date": FRIDAY, "refetch_from": dt.date(2026, 9, 8)}}
    plan = plan_fetch(["IBM"], states, NOW, history_days=365)
    assert plan == FetchPlan((FetchTask("IBM", dt.date(2026, 9, 8), LATEST, backfill=False, refetch=True),), ())
    assert plan.tasks[0].mode == "refetch"


def test_refetch_from_is_planned_even_when_no_new_session_closed():
    saturday = dt.datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    states = {"IBM": {"last_date": BLACK_FRIDAY, "refetch_from": dt.date(2026, 11, 24)},
              "AAPL": {"last_date": BLACK_FRIDAY, "refetch_from": None}}
    plan = plan_fetch(["IBM", "AAPL"], states, saturday, history_days=365)
    assert plan == FetchPlan((FetchTask("IBM", dt.date(2026, 11, 24), BLACK_FRIDAY, backfill=False, refetch=True),),
                             ("AAPL",))


def test_refetch_from_after_last_date_changes_nothing():
    # a stale marker (already covered by the incremental range) neither widens nor adds a request
    states = {"IBM": {"last_date": dt.date(2026, 11, 18), "refetch_from": FRIDAY}}
    plan = plan_fetch(["IBM"], states, NOW, history_days=365)
    assert plan.tasks == (FetchTask("IBM", dt.date(2026, 11, 19), LATEST, backfill=False),)


# ------------------------------------------------- modes, skipped, reset, restate window


def test_modes_are_bulk_incremental_refetch_and_skipped():
    states = {"OLD": {"last_date": FRIDAY}, "GAP": {"last_date": FRIDAY, "refetch_from": dt.date(2026, 11, 2)},
              "DEAD": {"last_date": FRIDAY, "consecutive_failures": 5},
              "UP": {"last_date": LATEST}}
    plan = plan_fetch(["NEW", "OLD", "GAP", "DEAD", "UP"], states, NOW, history_days=30, max_failures=5)
    assert {t.symbol: t.mode for t in plan.tasks} == {"NEW": "bulk", "OLD": "incremental", "GAP": "refetch"}
    assert plan.skipped == ("DEAD",) and plan.current == ("UP",)
    assert plan.modes() == {"bulk": 1, "incremental": 1, "refetch": 1, "skipped": 1}


def test_a_symbol_below_the_failure_limit_is_still_asked():
    states = {"AAA": {"last_date": FRIDAY, "consecutive_failures": 4}}
    assert [t.symbol for t in plan_fetch(["AAA"], states, NOW, 30, max_failures=5).tasks] == ["AAA"]
    assert plan_fetch(["AAA"], states, NOW, 30).skipped == ()  # no limit: never skipped


def test_a_reset_symbol_gets_a_full_reload_from_its_first_bar():
    first = dt.date(2023, 1, 3)
    states = {"AAA": {"first_date": first, "last_date": LATEST, "consecutive_failures": 0, "needs_reprocess": True},
              "BBB": {"first_date": dt.date(2026, 11, 2), "last_date": FRIDAY, "needs_reprocess": True}}
    plan = plan_fetch(["AAA", "BBB"], states, NOW, history_days=365, max_failures=5)
    assert {t.symbol: (t.start, t.mode) for t in plan.tasks} == {
        "AAA": (first, "bulk"),  # up to date, but reprocess asks for everything again
        "BBB": (dt.date(2025, 11, 23), "bulk")}  # history_days back reaches further than its first bar
    assert plan.skipped == ()
    failing_again = {"AAA": states["AAA"] | {"consecutive_failures": 5}}
    assert plan_fetch(["AAA"], failing_again, NOW, 365, max_failures=5).skipped == ("AAA",)


def test_an_incremental_request_re_reads_the_last_held_sessions():
    plan = plan_fetch(["AAA"], last(AAA=FRIDAY), NOW, history_days=365, restate_sessions=5)
    # the five sessions up to Friday 2026-11-20: Mon 16th .. Fri 20th; then the new Monday
    assert plan.tasks == (FetchTask("AAA", dt.date(2026, 11, 16), LATEST, backfill=False,
                                    new_from=dt.date(2026, 11, 21)),)  # what it lacks starts after Friday
    over_thanksgiving = plan_fetch(["AAA"], last(AAA=BLACK_FRIDAY), dt.datetime(2026, 12, 1, 0, 0, tzinfo=UTC), 365,
                                   restate_sessions=3)
    assert over_thanksgiving.tasks[0].start == dt.date(2026, 11, 24)  # Tue, Wed, Fri: the holiday is no session


def test_the_restate_window_never_reaches_before_the_first_bar_and_never_makes_a_call_alone():
    states = {"AAA": {"first_date": dt.date(2026, 11, 19), "last_date": FRIDAY}, "BBB": {"last_date": LATEST}}
    plan = plan_fetch(["AAA", "BBB"], states, NOW, history_days=365, restate_sessions=5)
    assert [(t.symbol, t.start) for t in plan.tasks] == [("AAA", dt.date(2026, 11, 19))]
    assert plan.current == ("BBB",)  # nothing new closed: the window alone is no reason to call
