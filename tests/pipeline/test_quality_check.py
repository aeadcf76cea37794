"""quality-check end to end: each rule on data made to break it, and silent on clean data.

Rows are inserted with SQLAlchemy Core into a migrated warehouse (SQLite and PostgreSQL),
then `pipeline.quality_check` judges them with the real XNYS/XLON calendars.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from stockpipe import calendars, pipeline
from stockpipe.errors import ConfigError, ExitCode
from stockpipe.models import Check
from stockpipe.stages.quality import RULES
from stockpipe.storage import schema, warehouse

from helpers import query

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # Monday 18:00 New York: the 30th has closed
THANKSGIVING, SATURDAY = dt.date(2026, 11, 26), dt.date(2026, 11, 28)
D = lambda day: dt.date(2026, 11, day)  # noqa: E731 - dates of November 2026, for short tables
SESSIONS = calendars.sessions_between(D(2), D(30), "XNYS")  # 20 sessions: no 26th, no weekends
RULE_NAMES = [rule.name for rule in RULES]


def clock() -> dt.datetime:
    return NOW


@pytest.fixture
def url(database_url: str) -> str:
    engine = warehouse.create(database_url)
    warehouse.upgrade(engine)
    engine.dispose()
    return database_url


def bars(symbol: str, days=SESSIONS, **at: dict) -> list[dict]:
    """A clean daily series (+0.1 % a day) with `at[on(day)] = {column: value}` overrides."""
    rows, close = [], 100.0
    for day in days:
        close = round(close * 1.001, 4)
        row = {"symbol": symbol, "date": day, "open": close * 0.999, "high": close * 1.01, "low": close * 0.99,
               "close": close, "adj_close": None, "volume": 1000, "provider": "test", "fetched_at": NOW}
        row.update(at.get(on(day), {}))
        rows.append(row)
    return rows


def on(day: dt.date) -> str:
    return day.isoformat().replace("-", "_")


def insert(url: str, table: sa.Table, rows: list[dict]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()


def action(symbol: str, day: dt.date, kind: str = "split", value: float = 2.0) -> dict:
    return {"symbol": symbol, "date": day, "kind": kind, "value": value, "provider": "test", "fetched_at": NOW}


def judge(make_settings, url: str, **flags):
    result = pipeline.quality_check(make_settings(database_url=url, **flags), clock=clock)
    checks = {(c.name, c.symbol): c for c in result.stages[0].checks}
    return result, checks


def failures(checks: dict) -> set[tuple[str, str]]:
    return {key for key, c in checks.items() if not c.ok}


def test_the_calendar_these_tests_rely_on():
    assert len(SESSIONS) == 20 and THANKSGIVING not in SESSIONS and D(27) in SESSIONS
    assert THANKSGIVING in calendars.sessions_between(D(2), D(30), "XLON")


# ------------------------------------------------------------------ clean data


def test_clean_data_passes_every_rule_and_stores_one_row_per_rule_and_symbol(make_settings, url):
    insert(url, schema.prices_daily, bars("AAA") + bars("BBB"))
    insert(url, schema.corporate_actions, [action("AAA", D(10), "dividend", 0.5)])
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.OK
    assert failures(checks) == set()
    assert [c.name for c in result.stages[0].checks if c.symbol == "AAA"] == RULE_NAMES
    assert result.stages[0].counts == {"checks": 2 * len(RULE_NAMES), "errors": 0, "warnings": 0, "symbols_checked": 2}
    stored = query(url, "SELECT check_name, symbol, passed, threshold FROM quality_results ORDER BY id")
    assert len(stored) == 2 * len(RULE_NAMES) and all(passed for _, _, passed, _ in stored)
    assert ("spike", "AAA", True, 0.2) in stored and ("zero_volume_run", "BBB", True, 5.0) in stored
    assert query(url, "SELECT refetch_from FROM symbol_state WHERE refetch_from IS NOT NULL") == []


# ------------------------------------------------------------------- calendar


def test_a_bar_on_thanksgiving_and_on_a_saturday_are_unexpected(make_settings, url):
    days = sorted([*SESSIONS, THANKSGIVING, SATURDAY])
    insert(url, schema.prices_daily, bars("HOL", days) + bars("OK"))
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.OK  # a warning
    assert failures(checks) == {("unexpected_bars", "HOL")}
    bad = checks["unexpected_bars", "HOL"]
    assert (bad.severity, bad.observed, bad.threshold) == ("warn", 2.0, 0.0)
    assert bad.detail == "2 bar(s) on days XNYS was closed; first 2026-11-26"


def test_a_missing_session_is_a_gap_and_becomes_refetch_from(make_settings, url):
    insert(url, schema.prices_daily, bars("GAP", [d for d in SESSIONS if d not in (D(24), D(25))]) + bars("OK"))
    insert(url, schema.symbol_state, [{"symbol": "OK", "dataset": "prices_daily", "refetch_from": D(3)}])
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.OK
    assert failures(checks) == {("gaps", "GAP")}
    gap = checks["gaps", "GAP"]
    assert (gap.severity, gap.observed, gap.threshold) == ("warn", 2.0, 0.0)
    assert "first 2026-11-24" in gap.detail
    refetch = dict(query(url, "SELECT symbol, refetch_from FROM symbol_state WHERE dataset = 'prices_daily'"))
    assert {s: str(d) if d else None for s, d in refetch.items()} == {"GAP": "2026-11-24", "OK": None}

    insert(url, schema.prices_daily, [r for r in bars("GAP") if r["date"] in (D(24), D(25))])  # refetched
    _, checks = judge(make_settings, url)
    assert failures(checks) == set()
    assert query(url, "SELECT refetch_from FROM symbol_state WHERE symbol = 'GAP'") == [(None,)]


def test_sessions_come_from_each_symbols_exchange(make_settings, url):
    london = calendars.sessions_between(D(2), D(30), "XLON")  # Thanksgiving is a London session
    insert(url, schema.prices_daily, bars("VOD.L", london) + bars("BP.L", SESSIONS))
    result, checks = judge(make_settings, url)
    assert failures(checks) == {("gaps", "BP.L")}
    assert checks["gaps", "BP.L"].detail.startswith("1 XLON session(s) without a bar")
    assert "first 2026-11-26" in checks["gaps", "BP.L"].detail


def test_stale_counts_sessions_behind_the_latest_closed_session(make_settings, url):
    insert(url, schema.prices_daily, bars("OLD", [d for d in SESSIONS if d <= D(24)]) + bars("NEW"))
    _, checks = judge(make_settings, url)
    assert failures(checks) == {("stale", "OLD")}
    stale = checks["stale", "OLD"]
    assert (stale.observed, stale.threshold) == (3.0, 1.0)  # 25, 27 and 30: not the 26th, not the weekend
    assert stale.detail == "last bar 2026-11-24, 3 session(s) behind 2026-11-30"
    _, checks = judge(make_settings, url, stale_after_sessions=3)
    assert failures(checks) == set()


def test_a_requested_symbol_without_bars_is_only_stale(make_settings, url):
    insert(url, schema.prices_daily, bars("AAA"))
    _, checks = judge(make_settings, url, symbols=("AAA", "NONE"))
    assert [key for key in checks if key[1] == "NONE"] == [("stale", "NONE")]
    assert failures(checks) == {("stale", "NONE")}


# ---------------------------------------------------------------------- moves


def jump(factor: float, day: dt.date = D(17)) -> dict:
    """Overrides that move the close of `day` (and the rest of the series) by `factor`."""
    out, close = {}, 100.0
    for d in SESSIONS:
        close = round(close * 1.001, 4)
        if d >= day:
            c = close * factor
            out[on(d)] = {"open": c, "high": c * 1.01, "low": c * 0.99, "close": c}
    return out


def test_a_25_percent_jump_is_a_spike_and_a_15_percent_one_is_not(make_settings, url):
    insert(url, schema.prices_daily, bars("UP", **jump(1.25)) + bars("DOWN", **jump(0.75)) + bars("SOFT", **jump(1.15)))
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.OK
    assert failures(checks) == {("spike", "UP"), ("spike", "DOWN")}
    up = checks["spike", "UP"]
    assert (up.severity, up.observed, up.threshold) == ("warn", pytest.approx(1.25 * 1.001 - 1), 0.2)
    assert up.detail == "1 close-to-close move(s) above 20% without a split; largest +25.1% on 2026-11-17"
    assert checks["spike", "SOFT"].observed is None


def test_a_split_that_day_or_the_day_before_explains_a_spike_a_dividend_does_not(make_settings, url):
    insert(url, schema.prices_daily, [row for s in ("SAME", "BEFORE", "DIV", "LATE") for row in bars(s, **jump(0.5))])
    insert(url, schema.corporate_actions, [action("SAME", D(17)), action("BEFORE", D(16)),
                                           action("DIV", D(17), "dividend", 50.0), action("LATE", D(18))])
    _, checks = judge(make_settings, url)
    assert failures(checks) == {("spike", "DIV"), ("spike", "LATE")}


def test_a_close_100x_both_neighbours_is_an_error_with_exit_quality(make_settings, url):
    close = bars("X")[10]["close"]
    pence = {on(SESSIONS[10]): {"close": close * 100, "high": close * 101}}
    cents = {on(SESSIONS[5]): {"close": close / 100, "open": close / 100, "low": close / 101}}
    insert(url, schema.prices_daily, bars("PENCE", **pence) + bars("CENTS", **cents) + bars("OK"))
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.QUALITY
    assert {k for k in failures(checks) if k[0] == "hundred_x"} == {("hundred_x", "PENCE"), ("hundred_x", "CENTS")}
    bad = checks["hundred_x", "PENCE"]
    assert (bad.severity, bad.threshold) == ("error", 50.0) and 99 < bad.observed < 101
    assert bad.detail.startswith(f"1 close(s) more than 50x away from the neighbouring closes (a unit error?); "
                                 f"worst {bad.observed:.1f}x on {SESSIONS[10].isoformat()}")
    assert result.message.startswith("2 error-severity check(s) failed; first: hundred_x for CENTS")
    assert query(url, "SELECT COUNT(*) FROM quality_results WHERE check_name = 'hundred_x' AND passed = false") == [(2,)]


def test_a_newest_bar_100x_its_only_neighbour_is_an_error_unless_a_split_explains_it(make_settings, url):
    last = SESSIONS[-1]
    c = bars("X")[-1]["close"] * 100
    hundred = {on(last): {"close": c, "open": c, "high": c, "low": c}}
    insert(url, schema.prices_daily, bars("NEWEST", **hundred) + bars("REVERSE", **hundred))
    insert(url, schema.corporate_actions, [action("REVERSE", last, "split", 0.01)])
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.QUALITY
    assert failures(checks) == {("hundred_x", "NEWEST"), ("spike", "NEWEST")}


def test_a_level_shift_of_100x_is_a_spike_not_a_hundred_x_error(make_settings, url):
    insert(url, schema.prices_daily, bars("SHIFT", **jump(100.0)))
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.OK
    assert failures(checks) == {("spike", "SHIFT")}


# ---------------------------------------------------------------- volume, source


def test_six_zero_volume_sessions_warn_five_do_not(make_settings, url):
    six = {on(d): {"volume": 0} for d in SESSIONS[3:9]}
    five = {on(d): {"volume": 0} for d in SESSIONS[3:8]}
    split = {on(d): {"volume": 0} for d in SESSIONS[3:6] + SESSIONS[7:10]}  # 3 + 3
    insert(url, schema.prices_daily, bars("SIX", **six) + bars("FIVE", **five) + bars("SPLIT", **split))
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.OK
    assert failures(checks) == {("zero_volume_run", "SIX")}
    six_check = checks["zero_volume_run", "SIX"]
    assert (six_check.severity, six_check.observed, six_check.threshold) == ("warn", 6.0, 5.0)
    assert six_check.detail == f"6 consecutive zero-volume bar(s) from {SESSIONS[3].isoformat()}"
    assert (checks["zero_volume_run", "FIVE"].observed, checks["zero_volume_run", "SPLIT"].observed) == (5.0, 3.0)


def quote(symbol: str, day: dt.date, close: float) -> dict:
    ts = dt.datetime.combine(day, dt.time(20, 59), UTC)
    return {"symbol": symbol, "date": day, "open": close, "high": close, "low": close, "close": close,
            "quotes": 390, "first_ts": ts - dt.timedelta(hours=6, minutes=30), "last_ts": ts, "computed_at": NOW}


def test_a_quotes_daily_close_1_percent_off_is_a_divergence(make_settings, url):
    a, b = bars("AAA"), bars("BBB")
    insert(url, schema.prices_daily, a + b + bars("NOQ"))
    insert(url, schema.quotes_daily, [quote("AAA", r["date"], r["close"] * (1.01 if r["date"] == D(20) else 1.0))
                                      for r in a[-6:]] + [quote("BBB", r["date"], r["close"] * 1.004) for r in b[-6:]])
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.OK
    assert failures(checks) == {("provider_divergence", "AAA")}
    bad = checks["provider_divergence", "AAA"]
    assert (bad.severity, round(bad.observed, 4), bad.threshold) == ("warn", 0.01, 0.005)
    assert bad.detail.startswith("1 of 6 day(s) where quotes_daily's close differs from prices_daily's by more "
                                 "than 0.5%; largest on 2026-11-20")
    assert round(checks["provider_divergence", "BBB"].observed, 4) == 0.004
    assert checks["provider_divergence", "NOQ"] == Check("provider_divergence", True, "no quotes_daily day to compare",
                                                         "warn", "NOQ", None, 0.005)


# ------------------------------------------------------------------ row rules


@pytest.mark.parametrize("rule, change", [
    ("price_positive", {"open": 0.0, "low": 0.0}),
    ("volume_non_negative", {"volume": -5}),
    ("high_encloses", {"high": 100.0}),  # below that day's close (~101.2)
    ("low_encloses", {"low": 102.0}),  # above that day's open and close
])
def test_each_row_rule_is_an_error(make_settings, url, rule, change):
    insert(url, schema.prices_daily, bars("BAD", **{on(D(16)): change}) + bars("OK"))
    result, checks = judge(make_settings, url)
    assert result.exit_code == ExitCode.QUALITY
    assert failures(checks) == {(rule, "BAD")}
    assert (checks[rule, "BAD"].observed, checks[rule, "BAD"].severity) == (1.0, "error")


# ------------------------------------------------------------------ thresholds


def test_thresholds_come_from_the_config_files_quality_table(make_settings, url, tmp_path: Path):
    six = {on(d): {"volume": 0} for d in SESSIONS[3:9]}
    insert(url, schema.prices_daily, bars("UP", **jump(1.25)) + bars("SIX", **six))
    config = tmp_path / "stockpipe.toml"
    config.write_text("[quality]\nspike = 0.3\nzero_volume_run = 6\n")
    result, checks = judge(make_settings, url, config=config)
    assert failures(checks) == set()
    assert (checks["spike", "UP"].threshold, checks["zero_volume_run", "SIX"].threshold) == (0.3, 6.0)

    config.write_text("[quality]\nspike = 0.1\n")
    _, checks = judge(make_settings, url, config=config)
    assert failures(checks) == {("spike", "UP"), ("zero_volume_run", "SIX")}


def test_an_unknown_threshold_name_is_a_config_error(make_settings, url):
    insert(url, schema.prices_daily, bars("AAA"))
    with pytest.raises(ConfigError) as caught:
        judge(make_settings, url, quality={"spikes": 0.3})
    message = str(caught.value)
    assert "'spikes'" in message and "[quality]" in message and "spike" in message and "zero_volume_run" in message
    assert caught.value.exit_code == ExitCode.CONFIG
