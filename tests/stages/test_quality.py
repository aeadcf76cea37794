"""quality: thresholds and the rules on per-symbol facts. Pure."""

from __future__ import annotations

import datetime as dt

import pytest

from stockpipe.errors import ConfigError
from stockpipe.models import Check
from stockpipe.stages import quality
from stockpipe.stages.quality import COUNT_RULES, RULES, evaluate, hundred_x_bars, spike_moves, thresholds

LATEST = dt.date(2026, 11, 23)  # Monday
D = lambda day: dt.date(2026, 11, day)  # noqa: E731
RULE_NAMES = [rule.name for rule in RULES]
LIMITS = thresholds()


def fact(**changes) -> dict:
    """The facts of a clean symbol, as storage.quality_data.collect gives them."""
    row = {"symbol": "AAA", "rows": 250, "first_date": dt.date(2025, 11, 24), "last_date": LATEST,
           **{rule.name: 0 for rule in COUNT_RULES}, "exchange": "XNYS", "latest_session": LATEST,
           "sessions_behind": 0, "missing_sessions": 0, "first_missing": None, "unexpected_bars": 0,
           "first_unexpected": None, "zero_volume_run": 0, "zero_volume_from": None, "moves": [], "splits": [],
           "quote_days": 0, "max_divergence": None, "divergences": [], "revisions": []}
    row.update(changes)
    return row


def move(day: dt.date, close: float, prev: float | None, nxt: float | None = None) -> dict:
    return {"date": day, "close": close, "prev_date": None if prev is None else day - dt.timedelta(days=1),
            "prev_close": prev, "next_date": None if nxt is None else day + dt.timedelta(days=1), "next_close": nxt}


def by_name(checks: list[Check], symbol: str = "AAA") -> dict[str, Check]:
    return {c.name: c for c in checks if c.symbol == symbol}


def failed(checks: list[Check]) -> set[str]:
    return {c.name for c in checks if not c.ok}


# ----------------------------------------------------------------- thresholds


def test_rule_names_severities_and_defaults_are_stable():
    table = [(r.name, r.severity, r.threshold) for r in RULES]
    assert table == [
        ("price_positive", "error", 0), ("volume_non_negative", "error", 0), ("high_encloses", "error", 0),
        ("low_encloses", "error", 0), ("duplicate_keys", "error", 0), ("hundred_x", "error", 50.0),
        ("spike", "warn", 0.20), ("gaps", "warn", 0), ("unexpected_bars", "warn", 0), ("stale", "warn", 1),
        ("zero_volume_run", "warn", 5), ("provider_divergence", "warn", 0.005), ("restated", "warn", 0),
    ]


def test_the_rule_table_in_the_docstring_is_the_rules():
    rows = [line.split("|")[1:3] for line in quality.__doc__.splitlines() if line.startswith("| ")][1:]
    assert [(name.strip(), severity.strip()) for name, severity in rows] == [(r.name, r.severity) for r in RULES]


def test_count_rules_read_the_fact_of_their_own_name_and_a_detail_reads_what_it_names():
    assert [r.reads for r in COUNT_RULES] == [(r.name,) for r in COUNT_RULES]
    by_rule = {r.name: r.reads for r in RULES}
    assert by_rule["gaps"] == ("missing_sessions", "exchange", "first_date", "last_date", "first_missing")
    assert by_rule["zero_volume_run"] == ("zero_volume_run", "zero_volume_from")


def test_thresholds_defaults_then_stale_after_sessions_then_the_quality_table():
    assert thresholds()["spike"] == 0.2
    assert thresholds({}, stale_after_sessions=3)["stale"] == 3.0
    limits = thresholds({"spike": 0.5, "stale": 7, "zero_volume_run": "10"}, stale_after_sessions=3)
    assert (limits["spike"], limits["stale"], limits["zero_volume_run"]) == (0.5, 7.0, 10.0)


def test_an_unknown_rule_name_is_a_config_error_naming_it_and_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        thresholds({"spikes": 0.3})
    assert str(caught.value) == ("unknown quality rule 'spikes' in the config's [quality] table: known rules are "
                                 + ", ".join(RULE_NAMES))


@pytest.mark.parametrize("value", [-1, "many", True, float("nan"), None])
def test_a_threshold_must_be_a_number_at_least_zero(value):
    with pytest.raises(ConfigError, match=r"\[quality\] spike = .* is not a number >= 0"):
        thresholds({"spike": value})


# ----------------------------------------------------------------- clean data


def test_a_clean_symbol_passes_every_rule_in_rule_order():
    checks = evaluate({"AAA": fact()}, ["AAA"], LIMITS)
    assert [c.name for c in checks] == RULE_NAMES
    assert all(c.ok for c in checks) and {c.symbol for c in checks} == {"AAA"}
    assert by_name(checks)["price_positive"] == Check("price_positive", True, "ok", "error", "AAA", 0.0, 0.0)
    assert by_name(checks)["spike"] == Check("spike", True, "no unexplained move above 20%", "warn", "AAA", None, 0.2)


def test_a_symbol_without_rows_is_only_a_stale_warning():
    checks = evaluate({"AAA": fact()}, ["AAA", "MISSING"], LIMITS)
    assert [c for c in checks if c.symbol == "MISSING"] == [
        Check("stale", False, "no bars in the warehouse", "warn", "MISSING", None, 1.0)]
    assert all(c.ok for c in checks if c.symbol == "AAA")


def test_only_the_given_symbols_are_judged():
    facts = {"AAA": fact(), "OTHER": fact(price_positive=9)}
    assert {c.symbol for c in evaluate(facts, ["AAA"], LIMITS)} == {"AAA"}
    assert evaluate(facts, [], LIMITS) == []


# ----------------------------------------------------------------- count rules


@pytest.mark.parametrize("rule", COUNT_RULES, ids=lambda r: r.name)
def test_each_count_rule_fails_above_its_threshold(rule):
    checks = evaluate({"AAA": fact(**{rule.name: 3})}, ["AAA"], LIMITS)
    assert by_name(checks)[rule.name] == Check(rule.name, False, f"3 {rule.description}", "error", "AAA", 3.0, 0.0)
    assert failed(checks) == {rule.name}
    allowed = by_name(evaluate({"AAA": fact(**{rule.name: 3})}, ["AAA"], thresholds({rule.name: 3})))[rule.name]
    assert (allowed.ok, allowed.observed, allowed.threshold) == (True, 3.0, 3.0)


@pytest.mark.parametrize("rule", COUNT_RULES, ids=lambda r: r.name)
def test_a_null_count_is_zero(rule):
    check = by_name(evaluate({"AAA": fact(**{rule.name: None})}, ["AAA"], LIMITS))[rule.name]
    assert (check.ok, check.observed) == (True, 0.0)


# ------------------------------------------------------------------- hundred_x


def test_a_close_100x_both_neighbours_fails_and_its_neighbours_do_not():
    moves = [move(D(10), 10.0, 10.1, 1000.0), move(D(11), 1000.0, 10.0, 10.2), move(D(12), 10.2, 1000.0, 10.3)]
    check = by_name(evaluate({"AAA": fact(moves=moves)}, ["AAA"], LIMITS))["hundred_x"]
    assert (check.ok, check.severity, check.observed, check.threshold) == (False, "error", pytest.approx(98.04, 0.01), 50)
    assert check.detail == ("1 close(s) more than 50x away from the neighbouring closes (a unit error?); "
                            "worst 98.0x on 2026-11-11: 10 -> 1000 -> 10.2")
    assert [day for day, _ in hundred_x_bars(fact(moves=moves), 50)] == [D(11)]


def test_one_hundredth_of_both_neighbours_fails_too():
    assert hundred_x_bars(fact(moves=[move(D(11), 0.1, 10.0, 10.2)]), 50) == [(D(11), pytest.approx(100.0))]


def test_a_level_shift_and_a_staircase_are_not_hundred_x():
    shift = [move(D(11), 1000.0, 10.0, 1001.0)]  # far from the previous close only
    stairs = [move(D(11), 100.0, 1.0, 10000.0)]  # 100x up from one side, 100x down to the other
    assert hundred_x_bars(fact(moves=shift), 50) == [] and hundred_x_bars(fact(moves=stairs), 50) == []


def test_the_newest_and_oldest_bars_are_judged_on_their_one_neighbour():
    newest = [move(D(20), 1000.0, 10.0)]
    oldest = [move(D(2), 1000.0, None, 10.0)]
    assert [d for d, _ in hundred_x_bars(fact(moves=newest), 50)] == [D(20)]
    assert [d for d, _ in hundred_x_bars(fact(moves=oldest), 50)] == [D(2)]


def test_an_edge_bar_next_to_a_bad_bar_or_after_a_split_is_not_flagged():
    bad_before_newest = [move(D(19), 1000.0, 10.0, 10.1), move(D(20), 10.1, 1000.0)]
    assert [d for d, _ in hundred_x_bars(fact(moves=bad_before_newest), 50)] == [D(19)]
    reverse_split = [move(D(20), 1000.0, 10.0)]
    assert hundred_x_bars(fact(moves=reverse_split, splits=[D(20)]), 50) == []


# ----------------------------------------------------------------------- spike


def test_a_move_above_the_threshold_is_a_spike_unless_a_split_explains_it():
    moves = [move(D(17), 12.6, 10.0)]
    spike = by_name(evaluate({"AAA": fact(moves=moves)}, ["AAA"], LIMITS))["spike"]
    assert (spike.ok, spike.severity, spike.observed, spike.threshold) == (False, "warn", pytest.approx(0.26), 0.2)
    assert spike.detail == "1 close-to-close move(s) above 20% without a split; largest +26.0% on 2026-11-17"
    for split_day in (D(17), D(16)):  # that day, or the day before (the previous bar)
        assert spike_moves(fact(moves=moves, splits=[split_day]), 0.2) == []
    assert spike_moves(fact(moves=moves, splits=[D(15), D(18)]), 0.2) == [(D(17), pytest.approx(0.26))]


def test_a_drop_is_a_spike_and_the_threshold_is_a_setting():
    moves = [move(D(17), 7.0, 10.0)]
    assert spike_moves(fact(moves=moves), 0.2) == [(D(17), pytest.approx(-0.3))]
    assert by_name(evaluate({"AAA": fact(moves=moves)}, ["AAA"], thresholds({"spike": 0.35})))["spike"].ok


def test_a_candidate_only_far_from_its_next_close_is_no_spike():
    assert spike_moves(fact(moves=[move(D(17), 10.0, 10.1, 1000.0)]), 0.2) == []


# ------------------------------------------------------------ calendar, volume


def test_gaps_and_unexpected_bars_fail_above_zero():
    checks = by_name(evaluate({"AAA": fact(missing_sessions=2, first_missing=D(24), unexpected_bars=1,
                                           first_unexpected=D(26))}, ["AAA"], LIMITS))
    assert checks["gaps"] == Check("gaps", False, "2 XNYS session(s) without a bar between 2025-11-24 and 2026-11-23; "
                                   "first 2026-11-24 (refetched by the next fetch)", "warn", "AAA", 2.0, 0.0)
    assert checks["unexpected_bars"] == Check("unexpected_bars", False, "1 bar(s) on days XNYS was closed; first "
                                              "2026-11-26", "warn", "AAA", 1.0, 0.0)


def test_stale_fails_when_behind_more_sessions_than_allowed():
    behind = fact(last_date=dt.date(2026, 11, 19), sessions_behind=2)
    check = by_name(evaluate({"AAA": behind}, ["AAA"], LIMITS))["stale"]
    assert check == Check("stale", False, "last bar 2026-11-19, 2 session(s) behind 2026-11-23", "warn", "AAA", 2.0, 1.0)
    assert by_name(evaluate({"AAA": behind}, ["AAA"], thresholds(stale_after_sessions=2)))["stale"].ok


def test_a_zero_volume_run_longer_than_the_threshold_warns():
    check = by_name(evaluate({"AAA": fact(zero_volume_run=6, zero_volume_from=D(9))}, ["AAA"], LIMITS))["zero_volume_run"]
    assert check == Check("zero_volume_run", False, "6 consecutive zero-volume bar(s) from 2026-11-09", "warn", "AAA",
                          6.0, 5.0)
    assert by_name(evaluate({"AAA": fact(zero_volume_run=5, zero_volume_from=D(9))}, ["AAA"], LIMITS))["zero_volume_run"].ok


# ----------------------------------------------------------------- divergence


def test_provider_divergence_above_the_threshold_warns():
    rows = [{"date": D(20), "close": 10.0, "quote_close": 10.1}]
    check = by_name(evaluate({"AAA": fact(quote_days=5, max_divergence=0.01, divergences=rows)}, ["AAA"],
                             LIMITS))["provider_divergence"]
    assert (check.ok, check.severity, check.observed, check.threshold) == (False, "warn", pytest.approx(0.01), 0.005)
    assert check.detail == ("1 of 5 day(s) where quotes_daily's close differs from prices_daily's by more than 0.5%; "
                            "largest on 2026-11-20: 10 vs 10.1")


def test_provider_divergence_within_the_threshold_or_without_quotes_passes():
    close = by_name(evaluate({"AAA": fact(quote_days=5, max_divergence=0.004)}, ["AAA"], LIMITS))["provider_divergence"]
    assert (close.ok, close.observed) == (True, 0.004)
    none = by_name(evaluate({"AAA": fact()}, ["AAA"], LIMITS))["provider_divergence"]
    assert none == Check("provider_divergence", True, "no quotes_daily day to compare", "warn", "AAA", None, 0.005)


def test_restated_warns_with_the_bars_a_vendor_restated_and_their_old_values():
    seen = dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.timezone.utc)
    revisions = [{"date": D(19), "column": column, "old": old, "new": new, "seen_at": seen}
                 for column, old, new in (("close", 100.0, 150.0), ("high", 101.0, 151.5))]
    revisions.append({"date": D(18), "column": "adj_close", "old": None, "new": 99.0, "seen_at": seen})
    check = by_name(evaluate({"AAA": fact(revisions=revisions)}, ["AAA"]))["restated"]
    assert (check.ok, check.severity, check.observed, check.threshold) == (False, "warn", 2.0, 0.0)
    assert "2 bar(s) restated (3 value(s)" in check.detail and "2026-11-19 close 100 -> 150" in check.detail
    assert "adj_close NULL -> 99" in check.detail
    assert by_name(evaluate({"AAA": fact()}, ["AAA"]))["restated"].ok
