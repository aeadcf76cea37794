"""plan_fetch: which date range each symbol lacks. Pure."""

from __future__ import annotations

import datetime as dt

from stockpipe.stages.plan import FetchPlan, FetchTask, plan_fetch

LATEST = dt.date(2026, 11, 23)  # Monday: the latest closed session at conftest.NOW
FRIDAY = dt.date(2026, 11, 20)


def test_new_symbol_gets_a_history_days_backfill():
    plan = plan_fetch(["AAA"], {}, LATEST, history_days=365)
    assert plan == FetchPlan((FetchTask("AAA", dt.date(2025, 11, 23), LATEST, backfill=True),), ())


def test_a_symbol_with_none_as_last_date_is_new_too():
    plan = plan_fetch(["AAA"], {"AAA": None}, LATEST, history_days=10)
    assert plan.tasks == (FetchTask("AAA", dt.date(2026, 11, 13), LATEST, backfill=True),)


def test_up_to_date_symbol_is_planned_nothing():
    plan = plan_fetch(["AAA"], {"AAA": LATEST}, LATEST, history_days=365)
    assert plan.tasks == ()
    assert plan.current == ("AAA",)


def test_symbol_behind_gets_the_days_after_its_last_date():
    plan = plan_fetch(["AAA"], {"AAA": FRIDAY}, LATEST, history_days=365)
    assert plan.tasks == (FetchTask("AAA", dt.date(2026, 11, 21), LATEST, backfill=False),)
    assert plan.current == ()


def test_explicit_start_overrides_the_state():
    last_dates = {"AAA": LATEST, "BBB": FRIDAY}
    start = dt.date(2026, 1, 2)
    plan = plan_fetch(["AAA", "BBB", "CCC"], last_dates, LATEST, history_days=365, start=start)
    assert plan.current == ()
    assert {t.symbol: (t.start, t.end, t.backfill) for t in plan.tasks} == {
        "AAA": (start, LATEST, False),
        "BBB": (start, LATEST, False),
        "CCC": (start, LATEST, True),
    }


def test_end_is_capped_at_the_latest_session():
    plan = plan_fetch(["AAA"], {"AAA": FRIDAY}, LATEST, history_days=30, end=dt.date(2026, 12, 31))
    assert plan.tasks == (FetchTask("AAA", dt.date(2026, 11, 21), LATEST, backfill=False),)


def test_an_earlier_explicit_end_is_kept_and_counts_for_currency():
    end = dt.date(2026, 11, 18)
    plan = plan_fetch(["AAA", "BBB", "CCC"], {"AAA": dt.date(2026, 11, 18), "BBB": dt.date(2026, 11, 16)},
                      LATEST, history_days=7, end=end)
    assert plan.current == ("AAA",)
    assert plan.tasks == (
        FetchTask("BBB", dt.date(2026, 11, 17), end, backfill=False),
        FetchTask("CCC", dt.date(2026, 11, 11), end, backfill=True),
    )


def test_incremental_tasks_come_before_backfills_stalest_first():
    symbols = ["NEW1", "RECENT", "UPTODATE", "STALE", "NEW2", "MIDDLE"]
    last_dates = {"RECENT": FRIDAY, "UPTODATE": LATEST, "STALE": dt.date(2026, 10, 1),
                  "MIDDLE": dt.date(2026, 11, 2)}
    plan = plan_fetch(symbols, last_dates, LATEST, history_days=365)
    assert [t.symbol for t in plan.tasks] == ["STALE", "MIDDLE", "RECENT", "NEW1", "NEW2"]
    assert [t.backfill for t in plan.tasks] == [False, False, False, True, True]
    assert [t.start for t in plan.tasks[:3]] == [dt.date(2026, 10, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 21)]
    assert plan.current == ("UPTODATE",)


def test_every_symbol_is_either_planned_or_current():
    symbols = [f"S{i}" for i in range(20)]
    last_dates = {s: LATEST - dt.timedelta(days=i % 4) for i, s in enumerate(symbols) if i % 5}
    plan = plan_fetch(symbols, last_dates, LATEST, history_days=100)
    planned = [t.symbol for t in plan.tasks]
    assert sorted(planned + list(plan.current)) == sorted(symbols)
    assert len(set(planned)) == len(planned)
    assert plan.current == tuple(s for i, s in enumerate(symbols) if i % 5 and i % 4 == 0)
    assert all(t.end == LATEST and t.start <= t.end for t in plan.tasks)


def test_no_symbols_no_plan():
    assert plan_fetch([], {}, LATEST, history_days=365) == FetchPlan((), ())
