"""The Airflow DAG (airflow/stockpipe_dag.py), checked by Airflow itself in its own virtualenv.

Airflow is never imported here: pytest runs in stockpipe's venv, and every check is a
subprocess of `$STOCKPIPE_AIRFLOW_VENV/bin/python` or `.../bin/airflow` (.ci/run installs
it: `pip install 'apache-airflow==3.3.2' apache-airflow-providers-standard`). Without the
variable these tests skip with a reason; when CI is set they fail instead.

- The DAG folder is bagged with `DagBag` and its shape, schedule and settings are read
  from the bag and from the serialized DAG the scheduler would see; Airflow's own
  timetable computes the fire times across a DST change.
- `airflow dags test` runs the DAG twice end to end on SQLite with the real `stockpipe`
  (demo provider, two symbols that fall into different shards of 2, retries 0): the first
  night loads every shard under the DAG run's run_id; the second finds nothing new
  (exit 99: a holiday's skip) except in one shard whose fetch is made to report a partial
  failure (exit 3, by a wrapper around the real command), which must still be loaded and
  must fail the DAG run.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from stockpipe.shards import shard_of

from helpers import environment_without_settings

REPO = Path(__file__).resolve().parents[1]
DAG_FOLDER = REPO / "airflow"
DAG_ID = "stockpipe_daily"
SYMBOLS = ("AAPL", "KO")  # shard 1/2 and shard 2/2 (asserted below)
SHARDS = 2
LOGICAL_DATES = ("2026-11-19T22:30:00-05:00", "2026-11-20T22:30:00-05:00")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


@pytest.fixture(scope="module")
def airflow_venv() -> Path:
    """`STOCKPIPE_AIRFLOW_VENV`: a virtualenv with apache-airflow and its standard provider."""
    value = os.environ.get("STOCKPIPE_AIRFLOW_VENV")
    if not value:
        if _ci():
            pytest.fail("CI is set but STOCKPIPE_AIRFLOW_VENV is not: the Airflow DAG tests must run in CI")
        pytest.skip("STOCKPIPE_AIRFLOW_VENV not set: no Airflow virtualenv to check the DAG with")
    venv = Path(value)
    if not (venv / "bin" / "airflow").is_file():
        pytest.fail(f"STOCKPIPE_AIRFLOW_VENV={value} has no bin/airflow: "
                    "pip install 'apache-airflow==3.3.2' apache-airflow-providers-standard into it")
    return venv


def _stockpipe_bin() -> str:
    beside = Path(sys.executable).with_name("stockpipe")
    found = str(beside) if beside.is_file() else shutil.which("stockpipe")
    assert found, "the stockpipe console script is neither beside this Python nor on PATH"
    return found


def _environment(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any STOCKPIPE_* or AIRFLOW* setting of the developer's
    (a real STOCKPIPE_DATABASE_URL must never be reached), plus a throw-away Airflow home."""
    env = {k: v for k, v in environment_without_settings().items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(DAG_FOLDER),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING")
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


# --- the bag: shape, schedule, settings ----------------------------------------------------

PROBE = r"""
import json, sys
import pendulum
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import TimeRestriction

bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dag_ids": sorted(bag.dags)}
dag = bag.dags.get(sys.argv[2])
if dag is not None:
    seen = DagSerialization.from_dict(DagSerialization.to_dict(dag))  # what the scheduler gets
    tasks = {}
    for task in dag.tasks:
        group = seen.get_task(task.task_id).get_closest_mapped_task_group()
        tasks[task.task_id] = {
            "operator": type(task).__name__,
            "upstream": sorted(task.upstream_task_ids),
            "trigger_rule": str(task.trigger_rule.value),
            "retries": task.retries,
            "bash_command": getattr(task, "bash_command", None),
            "append_env": getattr(task, "append_env", None),
            "skip_on_exit_code": list(getattr(task, "skip_on_exit_code", None) or []),
            "env_keys": sorted(getattr(task, "env", None) or {}),
            "mapped_group": group.group_id if group is not None else None,
        }
    timetable, fires, last = seen.timetable, [], None
    since = TimeRestriction(earliest=pendulum.datetime(2027, 3, 11, 12, tz="UTC"), latest=None, catchup=True)
    for _ in range(4):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=since)
        fires.append(info.run_after.in_timezone("UTC").isoformat())
        last = info.data_interval
    out.update(tasks=tasks, fires=fires, timetable=type(timetable).__name__, cron=timetable.summary,
               timezone=str(dag.timetable.timezone), max_active_runs=dag.max_active_runs,
               catchup=dag.catchup, dagrun_timeout_h=dag.dagrun_timeout.total_seconds() / 3600,
               shards_default=dag.params["shards"])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def bagged(airflow_venv, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow-bag")
    done = _run([str(airflow_venv / "bin" / "python"), "-c", PROBE, str(DAG_FOLDER), DAG_ID],
                _environment(home), cwd=home)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dag_folder_bags_without_import_errors(bagged):
    assert bagged["import_errors"] == {}
    assert bagged["dag_ids"] == [DAG_ID]


def test_shape_validate_then_one_mapped_chain_per_shard_then_quality_check(bagged):
    tasks = bagged["tasks"]
    assert {t: v["upstream"] for t, v in tasks.items()} == {
        "validate": [],
        "shard_specs": ["validate"],
        "shard.fetch": ["shard_specs"],
        "shard.transform": ["shard.fetch", "shard_specs"],
        "shard.load": ["shard.transform", "shard_specs"],
        "quality_check": ["shard.load"],
        "watcher": sorted(set(tasks) - {"watcher"}),
    }
    assert {t for t, v in tasks.items() if v["mapped_group"] == "shard"} == {
        "shard.fetch", "shard.transform", "shard.load"}
    for name in ("shard.fetch", "shard.transform", "shard.load"):
        assert tasks[name]["env_keys"] == ["STOCKPIPE_AIRFLOW_SHARD"]
        assert '--shard "$STOCKPIPE_AIRFLOW_SHARD"' in tasks[name]["bash_command"]


def test_every_stockpipe_task_calls_the_cli_with_the_run_id_and_skips_on_99(bagged):
    tasks = bagged["tasks"]
    commands = {t: v["bash_command"] for t, v in tasks.items() if v["operator"] == "BashOperator"}
    assert set(commands) == {"validate", "shard.fetch", "shard.transform", "shard.load", "quality_check"}
    for name, command in commands.items():
        assert command.startswith('"${STOCKPIPE_BIN:-stockpipe}" '), command
        assert tasks[name]["append_env"] is True
        assert tasks[name]["skip_on_exit_code"] == [99]
        assert "{{" not in command, "values reach the shell as variables, never spliced in by Jinja"
        if name != "validate":  # validate records no run
            assert command.endswith('--run-id "$AIRFLOW_CTX_DAG_RUN_ID"'), command
    assert " fetch --all " in commands["shard.fetch"]
    assert commands["validate"].endswith(" validate")


def test_failures_flow_as_decided(bagged):
    rules = {t: v["trigger_rule"] for t, v in bagged["tasks"].items()}
    assert rules == {
        "validate": "all_success", "shard_specs": "all_success", "shard.fetch": "all_success",
        "shard.transform": "none_skipped", "shard.load": "none_skipped",
        "quality_check": "none_failed_min_one_success", "watcher": "one_failed",
    }
    retries = {t: v["retries"] for t, v in bagged["tasks"].items()}
    assert retries == {**{t: 2 for t in retries}, "watcher": 0}  # STOCKPIPE_AIRFLOW_RETRIES unset: 2


def test_schedule_is_22_30_new_york_on_weekdays_across_dst(bagged):
    assert bagged["timetable"] == "CronTriggerTimetable"
    assert (bagged["cron"], bagged["timezone"]) == ("30 22 * * 1-5", "America/New_York")
    # From Thursday 2027-03-11: Thu and Fri at 22:30 EST (03:30 UTC next day), no weekend run,
    # then Mon and Tue at 22:30 EDT (02:30 UTC) after the change of 2027-03-14.
    assert bagged["fires"] == ["2027-03-12T03:30:00+00:00", "2027-03-13T03:30:00+00:00",
                               "2027-03-16T02:30:00+00:00", "2027-03-17T02:30:00+00:00"]
    assert bagged["max_active_runs"] == 1
    assert bagged["catchup"] is False
    assert bagged["dagrun_timeout_h"] == 20
    assert bagged["shards_default"] == 4  # STOCKPIPE_AIRFLOW_SHARDS unset


# --- airflow dags test, end to end ------------------------------------------------------------

PARTIAL_WRAPPER = """#!/bin/sh
# The real stockpipe; fetch of shard 2/2 then reports a partial failure (exit 3).
"{real}" "$@"
code=$?
if [ "$1" = fetch ] && [ "$STOCKPIPE_AIRFLOW_SHARD" = 2/2 ]; then
    echo "wrapper: reporting fetch of shard 2/2 as partial" >&2
    exit 3
fi
exit $code
"""


@pytest.fixture(scope="module")
def deployment(airflow_venv, tmp_path_factory) -> dict:
    """A migrated Airflow home on SQLite and a stockpipe data directory, both throw-away."""
    assert [shard_of(s, SHARDS) for s in SYMBOLS] == [1, 2], "each shard must hold one symbol"
    root = tmp_path_factory.mktemp("airflow-e2e")
    home, data = root / "airflow-home", root / "stockpipe-data"
    env = _environment(home, STOCKPIPE_BIN=_stockpipe_bin(), STOCKPIPE_PROVIDER="demo",
                       STOCKPIPE_SYMBOLS=",".join(SYMBOLS), STOCKPIPE_DATA_DIR=str(data),
                       STOCKPIPE_HISTORY_DAYS="120", STOCKPIPE_AIRFLOW_RETRIES="0")
    done = _run([str(airflow_venv / "bin" / "airflow"), "db", "migrate"], env, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"venv": airflow_venv, "root": root, "home": home, "data": data, "env": env}


def _dags_test(deployment: dict, logical_date: str, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    """`airflow dags test` with `shards` = 2; returns the process and the new DAG run's run_id."""
    done = _run([str(deployment["venv"] / "bin" / "airflow"), "dags", "test", DAG_ID, logical_date,
                 "-c", json.dumps({"shards": SHARDS})], {**deployment["env"], **env}, cwd=deployment["root"])
    [(run_id,)] = _airflow(deployment, "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", DAG_ID)
    return done, run_id


def _query(path: Path, sql: str, args: tuple) -> list[tuple]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


def _airflow(deployment: dict, sql: str, *args) -> list[tuple]:
    """Airflow's metadata database (task_instance, dag_run)."""
    return _query(deployment["home"] / "airflow.db", sql, args)


def _states(deployment: dict, run_id: str) -> dict[tuple[str, int], str]:
    rows = _airflow(deployment, "SELECT task_id, map_index, state FROM task_instance WHERE run_id = ?", run_id)
    return {(task, index): state for task, index, state in rows}


def _warehouse(deployment: dict, sql: str, *args) -> list[tuple]:
    """stockpipe's SQLite warehouse in the data directory."""
    return _query(deployment["data"] / "stockpipe.db", sql, args)


@pytest.fixture(scope="module")
def first_night(deployment) -> str:
    done, run_id = _dags_test(deployment, LOGICAL_DATES[0])
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return run_id


def test_dags_test_runs_every_shard_into_the_warehouse(deployment, first_night):
    assert _states(deployment, first_night) == {
        ("validate", -1): "success", ("shard_specs", -1): "success",
        **{(f"shard.{t}", i): "success" for t in ("fetch", "transform", "load") for i in range(SHARDS)},
        ("quality_check", -1): "success", ("watcher", -1): "skipped",
    }
    rows = dict(_warehouse(deployment, "SELECT symbol, COUNT(*) FROM prices_daily GROUP BY symbol"))
    assert set(rows) == set(SYMBOLS) and min(rows.values()) > 50, rows
    indicators = dict(_warehouse(deployment, "SELECT symbol, COUNT(*) FROM indicators_daily GROUP BY symbol"))
    assert indicators == rows


def test_pipeline_runs_carry_the_airflow_run_id_and_shard(deployment, first_night):
    runs = _warehouse(deployment, "SELECT run_id, command, shard, exit_code FROM pipeline_runs ORDER BY id")
    assert {r[0] for r in runs} == {first_night}
    assert sorted((command, shard) for _, command, shard, _ in runs) == [
        ("fetch", "1/2"), ("fetch", "2/2"), ("load", "1/2"), ("load", "2/2"),
        ("quality-check", None), ("transform", "1/2"), ("transform", "2/2")]
    assert {r[3] for r in runs} == {0}


def test_next_night_skips_what_has_no_new_session_and_a_partial_fetch_still_loads_but_fails_the_run(
        deployment, first_night):
    wrapper = deployment["root"] / "stockpipe-partial"
    wrapper.write_text(PARTIAL_WRAPPER.format(real=_stockpipe_bin()))
    wrapper.chmod(0o755)
    done, run_id = _dags_test(deployment, LOGICAL_DATES[1], STOCKPIPE_BIN=str(wrapper))
    assert done.returncode != 0, "a failed task must fail `airflow dags test`"
    assert run_id != first_night
    assert _states(deployment, run_id) == {
        ("validate", -1): "success", ("shard_specs", -1): "success",
        # shard 1: no session closed since the first night: stockpipe exits 99, the chain skips
        ("shard.fetch", 0): "skipped", ("shard.transform", 0): "skipped", ("shard.load", 0): "skipped",
        # shard 2: fetch reported partial; what it committed is still transformed and loaded
        ("shard.fetch", 1): "failed", ("shard.transform", 1): "success", ("shard.load", 1): "success",
        ("quality_check", -1): "success", ("watcher", -1): "failed",
    }
    assert _airflow(deployment, "SELECT state FROM dag_run WHERE run_id = ?", run_id) == [("failed",)]
    assert _airflow(deployment, "SELECT MAX(max_tries) FROM task_instance WHERE run_id = ?", run_id) == [(0,)]
    runs = _warehouse(deployment, "SELECT command, shard, exit_code FROM pipeline_runs WHERE run_id = ? ORDER BY id",
                      run_id)
    assert sorted(runs, key=str) == sorted([("fetch", "1/2", 99), ("fetch", "2/2", 99), ("transform", "2/2", 0),
                                            ("load", "2/2", 0), ("quality-check", None, 0)], key=str)
