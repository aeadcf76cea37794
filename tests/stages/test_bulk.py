"""stages/bulk.py: per exchange, bulk days or a call per symbol, by cost."""

from __future__ import annotations

import datetime as dt

import pytest

from stockpipe.stages.bulk import BULK_COST, plan_bulk
from stockpipe.stages.plan import FetchTask

MON, TUE, WED = dt.date(2026, 11, 23), dt.date(2026, 11, 24), dt.date(2026, 11, 25)


def task(symbol: str, start: dt.date = WED, end: dt.date = WED, backfill: bool = False,
         exchange: str = "XNYS") -> FetchTask:
    return FetchTask(symbol, start, end, backfill, exchange)


def venue(symbol: str) -> str | None:
    """BP.L -> LSE, AAPL -> US, ^X -> no bulk answer."""
    if symbol.startswith("^"):
        return None
    return "LSE" if symbol.endswith(".L") else "US"


def us(n: int, **kw) -> list[FetchTask]:
    return [task(f"S{i:04d}", **kw) for i in range(n)]


@pytest.mark.parametrize(("n", "bulk"), [(BULK_COST - 1, False), (BULK_COST, False), (BULK_COST + 1, True)])
def test_bulk_exactly_when_more_symbols_need_the_latest_session_than_it_costs(n, bulk):
    plan = plan_bulk(us(n), venue)
    assert bool(plan.days) is bulk
    if bulk:
        assert [(d.venue, d.day, len(d.symbols)) for d in plan.days] == [("US", WED, n)]
        assert plan.single == () and plan.calls == BULK_COST
    else:
        assert len(plan.single) == n and plan.calls == n


def test_each_exchange_decides_alone():
    tasks = us(150) + [task(f"L{i}.L", exchange="XLON") for i in range(30)]
    plan = plan_bulk(tasks, venue)
    assert [(d.venue, len(d.symbols)) for d in plan.days] == [("US", 150)]
    assert [t.symbol for t in plan.single] == [f"L{i}.L" for i in range(30)]
    assert plan.calls == BULK_COST + 30
    assert {c.venue: c.days for c in plan.choices} == {"US": (WED,), "LSE": ()}


def test_backfills_gaps_and_symbols_without_a_venue_are_asked_one_by_one():
    tasks = us(200) + [task("NEW", start=WED - dt.timedelta(days=730), backfill=True),
                       task("GAP", start=dt.date(2026, 11, 2)), task("^GSPC")]
    plan = plan_bulk(tasks, venue)
    assert [t.symbol for t in plan.single] == ["NEW", "GAP", "^GSPC"]  # in the plan's order
    assert len(plan.days[0].symbols) == 200


def test_one_missed_session_adds_the_date_parameter_day_when_it_pays():
    # 150 symbols missed Tuesday too (Tuesday..Wednesday), 60 need only Wednesday: 210 calls
    # one by one, 100 + 150 with Wednesday's bulk day alone, 200 with Tuesday's as well
    tasks = us(150, start=TUE) + [task(f"W{i}") for i in range(60)]
    plan = plan_bulk(tasks, venue)
    assert [(d.day, len(d.symbols)) for d in plan.days] == [(TUE, 150), (WED, 210)]
    assert plan.single == () and plan.calls == 2 * BULK_COST
    # 50 only Wednesday: 200 either way, and a tie goes to asking one by one
    assert plan_bulk(us(150, start=TUE) + [task(f"W{i}") for i in range(50)], venue).days == ()


def test_a_missed_session_is_not_worth_a_second_bulk_day_for_few_symbols():
    tasks = us(20, start=TUE) + [task(f"W{i}") for i in range(150)]
    plan = plan_bulk(tasks, venue)
    assert [(d.day, len(d.symbols)) for d in plan.days] == [(WED, 150)]
    assert len(plan.single) == 20 and plan.calls == BULK_COST + 20


def test_three_sessions_behind_is_never_bulk():
    plan = plan_bulk(us(500, start=MON - dt.timedelta(days=7)), venue)
    assert plan.days == () and len(plan.single) == 500


def test_a_holiday_inside_the_range_is_no_session():
    # Thanksgiving 2026-11-26: a symbol holding Wednesday lacks only Friday
    fri = dt.date(2026, 11, 27)
    plan = plan_bulk(us(101, start=dt.date(2026, 11, 26), end=fri), venue)
    assert [(d.day, len(d.symbols)) for d in plan.days] == [(fri, 101)]


def test_the_restate_window_of_an_incremental_plan_does_not_hide_a_one_session_need():
    """plan_fetch re-reads `restate_sessions` held sessions (start days earlier); what the
    symbol lacks is still only WED, so a bulk day serves it."""
    from stockpipe.stages.plan import plan_fetch

    now = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.timezone.utc)  # after Wednesday's close
    known = {f"S{i:04d}": {"last_date": TUE, "first_date": dt.date(2025, 1, 2)} for i in range(BULK_COST + 1)}
    fetch_plan = plan_fetch(list(known), known, now, 730, lambda s: "XNYS", None, None, 5)
    assert all(t.start < TUE and t.new_from == WED for t in fetch_plan.tasks)
    plan = plan_bulk(fetch_plan.tasks, venue)
    assert [(d.venue, d.day, len(d.symbols)) for d in plan.days] == [("US", WED, BULK_COST + 1)]
    assert plan.single == ()
