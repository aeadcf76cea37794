"""Skip and reset: a symbol that failed `max_consecutive_failures` fetches in a row is
skipped by planning, shown as such, and fetched again in full (bulk) after `reset`."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import knobbed
from helpers import query
from stockpipe import pipeline
from stockpipe.errors import ExitCode, NoDataError, UsageError
from stockpipe.pipeline.reset import reset
from stockpipe.pipeline.status import status

UTC = dt.timezone.utc
FRIDAY = dt.datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
MONDAY = dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)


@pytest.fixture
def settings(make_settings, database_url):
    knobbed.reset()
    yield make_settings(database_url=database_url, provider=knobbed.NAME, symbols=("AAA", "BAD"), history_days=30,
                        max_consecutive_failures=2)
    knobbed.reset()


def fetch_counts(result) -> dict[str, int]:
    return next(s.counts for s in result.stages if s.stage == "fetch")


def state_of(settings, symbol: str) -> tuple:
    return query(settings.database_url, "SELECT consecutive_failures, needs_reprocess, last_date FROM symbol_state "
                 f"WHERE symbol = '{symbol}' AND dataset = 'prices_daily'")[0]


def test_a_symbol_failing_too_often_is_skipped_until_reset_then_reloaded_in_full(settings):
    knobbed.Knobbed.failing = {"BAD"}
    for _ in range(2):  # two failures in a row: the limit
        failed = pipeline.fetch(settings, clock=lambda: FRIDAY)
        assert failed.exit_code in (ExitCode.PARTIAL, ExitCode.BAD_INPUT)  # with AAA, then BAD alone
    assert state_of(settings, "BAD")[0] == 2
    assert status(settings, clock=lambda: FRIDAY).totals["skipped"] == 1

    skipped = pipeline.fetch(settings, clock=lambda: MONDAY)  # AAA gets Monday; BAD is not asked
    assert skipped.exit_code == ExitCode.OK, skipped.message
    wanted = {"planned": 1, "incremental": 1, "bulk": 0, "skipped_failing": 1}
    assert {k: fetch_counts(skipped)[k] for k in wanted} == wanted
    assert query(settings.database_url, f"SELECT count(*) FROM run_events WHERE run_id = '{skipped.run_id}' "
                 "AND symbol = 'BAD'") == [(0,)]

    knobbed.Knobbed.failing = set()  # the vendor knows it again; the plan still skips it
    assert pipeline.fetch(settings, clock=lambda: MONDAY).exit_code == ExitCode.NOTHING_TO_DO

    done = reset(settings, ["bad"], clock=lambda: MONDAY)
    assert done.exit_code == ExitCode.OK and done.stages[0].counts["symbols"] == 1
    assert state_of(settings, "BAD")[:2] in ((0, True), (0, 1))
    assert status(settings, "BAD", clock=lambda: MONDAY).story["status"] == "never_loaded"

    reloaded = pipeline.fetch(settings, clock=lambda: MONDAY)
    assert reloaded.exit_code == ExitCode.OK, reloaded.message
    assert fetch_counts(reloaded)["bulk"] == 1 and fetch_counts(reloaded)["skipped_failing"] == 0
    failures, reprocess, last = state_of(settings, "BAD")
    assert (failures, bool(reprocess), str(last)) == (0, False, "2026-11-23")  # cleared with the bars' state


def test_reset_failed_and_all_skipped_choose_by_the_failure_count(settings):
    knobbed.Knobbed.failing = {"BAD"}
    pipeline.fetch(settings, clock=lambda: FRIDAY)
    assert reset(settings, all_skipped=True, clock=lambda: FRIDAY).stages[0].counts["symbols"] == 0  # 1 < 2
    result = reset(settings, failed=True, clock=lambda: FRIDAY)
    assert [o.symbol for o in result.stages[0].outcomes] == ["BAD"]
    assert query(settings.database_url, f"SELECT stage, status FROM run_events WHERE run_id = '{result.run_id}'") == [
        ("reset", "ok")]
    assert state_of(settings, "AAA")[:2] in ((0, False), (0, 0))  # untouched


def test_reset_refuses_no_selection_two_selections_and_unknown_symbols(settings):
    with pytest.raises(UsageError):
        reset(settings)
    with pytest.raises(UsageError):
        reset(settings, ["AAA"], failed=True)
    pipeline.fetch(settings, clock=lambda: FRIDAY)
    with pytest.raises(NoDataError, match="no state for ZZZ"):
        reset(settings, ["ZZZ"], clock=lambda: FRIDAY)


def test_reset_through_the_cli(make_cli, database_url):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="20", STOCKPIPE_DATABASE_URL=database_url)
    assert cli("fetch", "--symbol", "AAA")[0] == 0
    code, out, err = cli("reset", "aaa", "--json")
    doc = json.loads(out)
    assert code == 0, err
    assert (doc["counts"]["symbols"], doc["symbols"][0]["stage"]) == (1, "reset")
    assert query(database_url, "SELECT needs_reprocess FROM symbol_state WHERE symbol = 'AAA'")[0][0] in (True, 1)
    code, out, _ = cli("fetch", "--symbol", "AAA", "--json")  # up to date, but reset: reloaded in full
    assert code == 0 and json.loads(out)["counts"]["bulk"] == 1
    assert cli("reset")[0] == ExitCode.USAGE
    assert cli("reset", "AAA", "--failed")[0] == ExitCode.USAGE
    code, _, err = cli("reset", "ZZZ")
    assert code == ExitCode.BAD_INPUT and "no state for ZZZ" in err
