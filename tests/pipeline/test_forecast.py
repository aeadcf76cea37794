"""`fetch --dry-run` / `run --dry-run`: the plan's calls, quota cost and projected finish per
provider, writing nothing; and the arithmetic of the projection."""

from __future__ import annotations

import datetime as dt
import json

from stockpipe.pipeline.forecast import duration, forecast

NOW = dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.timezone.utc)


def test_the_tightest_rate_limit_decides_the_duration():
    assert duration(0, {"calls_per_minute": 1000}) == 0 and duration(1, {"calls_per_minute": 1000}) == 0
    assert duration(1000, {"calls_per_minute": 1000}) == 0  # the first 1,000 go at once
    assert duration(21_817, {"calls_per_minute": 1000, "calls_per_day": 100_000}) == 21 * 60
    assert duration(100, {"calls_per_second": 2, "calls_per_hour": 2000}) == 49  # Yahoo: 2/s
    assert duration(4000, {"calls_per_second": 2, "calls_per_hour": 2000}) == 3600


def test_forecast_counts_the_modes_and_stops_at_the_quota_left(make_settings):
    settings = make_settings(provider="eodhd")
    seen = forecast(settings, "eodhd", {"bulk": 17, "incremental": 21_800, "refetch": 0, "skipped": 3}, 10_000, NOW)
    assert (seen.calls, seen.cost, seen.affordable) == (21_817, 21_817, 10_000)
    assert seen.finish == NOW + dt.timedelta(minutes=9)  # 10,000 calls at 1,000 a minute
    assert seen.line().startswith("eodhd: 21817 call(s) (bulk 17, incremental 21800, refetch 0; 3 skipped), "
                                  "quota cost 21817 (10000 left today); only 10000 fit in today's quota, 11817 deferred")


def test_dry_run_on_a_fresh_machine_prints_the_plan_and_writes_nothing(make_cli, tmp_path):
    cli = make_cli(STOCKPIPE_PROVIDER="eodhd", STOCKPIPE_EODHD_API_KEY="k", STOCKPIPE_HISTORY_DAYS="30")
    code, out, err = cli("fetch", "--all", "--dry-run", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["dry_run"] is True and doc["counts"]["bulk"] == 4
    assert doc["providers"][0] | {"finish": None} == {
        "provider": "eodhd", "modes": {"bulk": 4, "incremental": 0, "refetch": 0, "skipped": 0}, "calls": 4,
        "quota_cost": 4, "quota_left": 100_000, "affordable": 4, "seconds": 0.0, "finish": None}
    assert [p["mode"] for p in doc["plan"]] == ["bulk"] * 4
    code, out, _ = cli("run", "--all", "--dry-run")
    assert code == 0 and "eodhd: 4 call(s) (bulk 4, incremental 0, refetch 0), quota cost 4" in out
    assert list(tmp_path.iterdir()) == []


def test_dry_run_after_a_run_plans_from_the_state_and_writes_nothing(make_cli, database_url, tmp_path):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="30", STOCKPIPE_DATABASE_URL=database_url)
    assert cli("fetch", "--symbol", "AAA")[0] in (0, 99)
    before = sorted(p.name for p in (tmp_path / "stockpipe-data").rglob("*"))
    runs = "SELECT count(*) FROM pipeline_runs"
    from helpers import query

    counted = query(database_url, runs)
    code, out, _ = cli("fetch", "--symbol", "AAA", "--symbol", "BBB", "--dry-run", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["counts"]["bulk"] == 1  # BBB is new; AAA holds the latest session
    assert query(database_url, runs) == counted
    assert sorted(p.name for p in (tmp_path / "stockpipe-data").rglob("*")) == before


def test_dry_run_refuses_what_it_would_write(cli, tmp_path):
    assert cli("fetch", "--all", "--dry-run", "--quotes")[0] == 2
    assert cli("run", "--all", "--dry-run", "--report", str(tmp_path / "r.html"))[0] == 2
    assert cli("fetch", "--all", "--dry-run", "--metrics-file", str(tmp_path / "m.prom"))[0] == 2
