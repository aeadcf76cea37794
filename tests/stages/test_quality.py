"""quality.evaluate: the rules on per-symbol statistics. Pure."""

from __future__ import annotations

import datetime as dt

import pytest

from stockpipe.models import Check
from stockpipe.stages.quality import COUNT_RULES, evaluate

LATEST = dt.date(2026, 11, 23)  # Monday
RULE_NAMES = [name for name, _, _ in COUNT_RULES]


def stats(symbol: str = "AAA", last_date: dt.date = LATEST, **counts) -> dict:
    row = {"symbol": symbol, "rows": 250, "last_date": last_date, **{name: 0 for name in RULE_NAMES}}
    row.update(counts)
    return row


def by_name(checks: list[Check], symbol: str = "AAA") -> dict[str, Check]:
    return {c.name: c for c in checks if c.symbol == symbol}


def test_a_clean_symbol_passes_every_rule():
    checks = evaluate([stats()], ["AAA"], LATEST, stale_after_sessions=1)
    assert [c.name for c in checks] == [*RULE_NAMES, "stale"]
    assert all(c.ok for c in checks)
    for name in RULE_NAMES:
        c = by_name(checks)[name]
        assert (c.severity, c.observed, c.threshold, c.detail) == ("error", 0.0, 0.0, "ok")


@pytest.mark.parametrize("rule, what", [(name, what) for name, _, what in COUNT_RULES])
def test_each_count_rule_fails_on_a_bad_count(rule: str, what: str):
    checks = by_name(evaluate([stats(**{rule: 3})], ["AAA"], LATEST, stale_after_sessions=1))
    bad = checks[rule]
    assert bad == Check(rule, False, f"3 {what}", "error", "AAA", 3.0, 0.0)
    assert [name for name, c in checks.items() if not c.ok] == [rule]


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_each_count_rule_passes_at_zero_and_treats_null_as_zero(rule: str):
    for zero in (0, None):
        check = by_name(evaluate([stats(**{rule: zero})], ["AAA"], LATEST, stale_after_sessions=1))[rule]
        assert check.ok is True
        assert check.observed == 0.0


def test_stale_passes_at_the_latest_session():
    check = by_name(evaluate([stats(last_date=LATEST)], ["AAA"], LATEST, stale_after_sessions=0))["stale"]
    assert check == Check("stale", True, "last bar 2026-11-23, 0 session(s) behind 2026-11-23", "warn", "AAA", 0.0, 0.0)


def test_stale_fails_when_behind_more_sessions_than_allowed():
    thursday = dt.date(2026, 11, 19)  # Friday 20 and Monday 23 are missing: 2 sessions (not the weekend)
    behind = by_name(evaluate([stats(last_date=thursday)], ["AAA"], LATEST, stale_after_sessions=1))["stale"]
    assert (behind.ok, behind.observed, behind.threshold, behind.severity) == (False, 2.0, 1.0, "warn")
    assert behind.detail == "last bar 2026-11-19, 2 session(s) behind 2026-11-23"

    allowed = by_name(evaluate([stats(last_date=thursday)], ["AAA"], LATEST, stale_after_sessions=2))["stale"]
    assert (allowed.ok, allowed.observed) == (True, 2.0)


def test_friday_bar_on_monday_is_one_session_behind():
    check = by_name(evaluate([stats(last_date=dt.date(2026, 11, 20))], ["AAA"], LATEST, stale_after_sessions=0))["stale"]
    assert (check.ok, check.observed) == (False, 1.0)


def test_a_symbol_without_rows_is_only_a_stale_warning():
    checks = evaluate([stats("AAA")], ["AAA", "MISSING"], LATEST, stale_after_sessions=1)
    missing = [c for c in checks if c.symbol == "MISSING"]
    assert missing == [Check("stale", False, "no bars in the warehouse", "warn", "MISSING", None, 1.0)]
    assert all(c.ok for c in checks if c.symbol == "AAA")


def test_only_symbols_of_the_universe_are_judged():
    checks = evaluate([stats("AAA"), stats("OTHER", price_positive=9)], ["AAA"], LATEST, stale_after_sessions=1)
    assert {c.symbol for c in checks} == {"AAA"}
    assert len(checks) == len(RULE_NAMES) + 1
    assert evaluate([stats("AAA")], [], LATEST, stale_after_sessions=1) == []
