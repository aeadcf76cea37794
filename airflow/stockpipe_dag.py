"""stockpipe's nightly run as an Apache Airflow 3 DAG: BashOperator tasks calling the CLI.

Copy this file into the deployment's DAG folder. Airflow is not a dependency of stockpipe,
and this file imports nothing of stockpipe: the tasks run the `stockpipe` command on the
worker, so the DAG processor needs Airflow only and the workers need stockpipe only.

    validate -> shard_specs -> shard[i]: fetch -> transform -> load -> quality_check
    (every task) -> watcher

Decisions:

- Schedule: 22:30 New York, Monday to Friday (`CronTriggerTimetable`, DST-aware), after
  every US close and its late prints. `max_active_runs=1`: two nights never overlap
  (their shards would only meet each other's locks, exit 75). `catchup=False`: stockpipe
  catches up by itself (fetch plans each symbol's missing range), so a missed night needs
  no backfill run. `dagrun_timeout` 20 h: a run stuck that long is failed, its tasks are
  terminated (stockpipe rolls back on SIGTERM) and the next night starts on time.
- The trading date is left to stockpipe, which picks the latest closed session of each
  symbol's exchange; the DAG passes no date. `{{ ds }}` would be wrong anyway: it is the
  UTC date, so a Friday 22:30 New York run has `ds` = Saturday, and manual runs have none.
- `--run-id` is Airflow's run_id, so every pipeline_runs row of one DAG run (each stage,
  shard and retry) carries the same name. It reaches the shell as the variable
  `AIRFLOW_CTX_DAG_RUN_ID` that BashOperator exports, never spliced into the command by
  Jinja, so no run id can inject shell syntax.
- Shards: the count is the DAG param `shards` (default `STOCKPIPE_AIRFLOW_SHARDS` at parse
  time, else 4), so a manual run can pick another count. Mapping needs its length at run
  time, so the small task `shard_specs` turns the param into ["1/n", ..., "n/n"] and the
  task group `shard` is mapped over that list. The group's argument reaches its three
  BashOperators through `env` (templated, so Airflow resolves the mapped value in it),
  and each command passes it on as `--shard "$STOCKPIPE_AIRFLOW_SHARD"`.
- transform is mapped too, inside the same group: `transform --shard i/n` recomputes only
  that shard's symbols, and it is the CPU-heavy stage (indicators over each changed
  symbol's whole history), so it spreads over the workers like fetch does. A mapped task
  group, rather than three mapped tasks, chains each shard on its own: shard 3 loads while
  shard 7 still fetches, and one shard's failure holds back no other shard.
- A holiday (no new session: stockpipe exits 99) skips the task (`skip_on_exit_code`), and
  the skip flows downstream: the shard's transform and load are skipped, and quality_check
  too when every shard skipped.
- A failed fetch does not hold back its shard's transform and load (trigger rule
  `none_skipped`): a partial fetch (exit 3) is the usual night of a large universe (one
  delisted symbol is enough) and what it committed must still reach the warehouse, as
  `stockpipe run` does. Those tasks only read what is saved, so after a hard failure they
  have nothing new to do. quality_check runs when every load succeeded or skipped and at
  least one succeeded. The DAG run's state comes from its leaf tasks only, so `watcher`
  (downstream of every task, trigger rule `one_failed`) fails the run when any task
  failed; otherwise it is skipped.
- validate first migrates the warehouse (`stockpipe db upgrade`, a no-op when current):
  once, before the fan-out, so that n shards never race to migrate a fresh database.
- Retries: `STOCKPIPE_AIRFLOW_RETRIES` at parse time (default 2), 5 minutes apart. A retry
  of fetch asks only for what is still missing; a locked shard (exit 75) is worth a retry
  too. Set 0 for `airflow dags test`, where retries wait for real.
- The stockpipe command is `$STOCKPIPE_BIN` on the worker, else `stockpipe` on its PATH;
  every other setting is the worker's own `STOCKPIPE_*` environment or stockpipe.toml
  (`append_env=True` keeps the worker's environment).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, task, task_group

DAG_ID = "stockpipe_daily"
TIMEZONE = "America/New_York"
CRON = "30 22 * * 1-5"
NOTHING_TO_DO = 99  # stockpipe's exit code when no session has closed since the last run
MAX_SHARDS = 4096  # stockpipe's own limit for --shard i/n

STOCKPIPE = '"${STOCKPIPE_BIN:-stockpipe}"'
RUN_ID = '--run-id "$AIRFLOW_CTX_DAG_RUN_ID"'
SHARD = '--shard "$STOCKPIPE_AIRFLOW_SHARD"'
COMMANDS = {
    "validate": f"{STOCKPIPE} db upgrade && {STOCKPIPE} validate",
    "fetch": f"{STOCKPIPE} fetch --all {SHARD} {RUN_ID}",
    "transform": f"{STOCKPIPE} transform {SHARD} {RUN_ID}",
    "load": f"{STOCKPIPE} load {SHARD} {RUN_ID}",
    "quality_check": f"{STOCKPIPE} quality-check {RUN_ID}",
}


def _stockpipe(task_id: str, **kwargs) -> BashOperator:
    """One BashOperator running `COMMANDS[task_id]` in the worker's environment."""
    return BashOperator(task_id=task_id, bash_command=COMMANDS[task_id], append_env=True,
                        skip_on_exit_code=NOTHING_TO_DO, **kwargs)


with DAG(
    dag_id=DAG_ID,
    description="stockpipe: validate, then per shard fetch -> transform -> load, then quality-check",
    schedule=CronTriggerTimetable(CRON, timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=20),
    params={"shards": Param(int(os.environ.get("STOCKPIPE_AIRFLOW_SHARDS", "4")), type="integer",
                            minimum=1, maximum=MAX_SHARDS,
                            description="n: the universe is fetched, transformed and loaded as n shards "
                                        "in parallel (--shard i/n)")},
    default_args={
        "retries": int(os.environ.get("STOCKPIPE_AIRFLOW_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
    },
    tags=["stockpipe"],
    doc_md=__doc__,
) as dag:

    @task
    def shard_specs(params: dict | None = None) -> list[str]:
        """["1/n", ..., "n/n"] for the DAG param `shards` = n."""
        count = int(params["shards"])
        return [f"{index}/{count}" for index in range(1, count + 1)]

    @task_group(group_id="shard")
    def shard(spec: str) -> None:
        """fetch -> transform -> load of one shard; transform and load run unless fetch skipped."""
        env = {"STOCKPIPE_AIRFLOW_SHARD": spec}
        fetch = _stockpipe("fetch", env=env)
        transform = _stockpipe("transform", env=env, trigger_rule=TriggerRule.NONE_SKIPPED)
        load = _stockpipe("load", env=env, trigger_rule=TriggerRule.NONE_SKIPPED)
        fetch >> transform >> load

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def watcher() -> None:
        """Fail the DAG run when any task failed (its state comes from the leaf tasks only)."""
        raise RuntimeError("a stockpipe task failed: see the failed task's log")

    validate = _stockpipe("validate")
    specs = shard_specs()
    quality_check = _stockpipe("quality_check", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    validate >> specs
    shard.expand(spec=specs) >> quality_check
    list(dag.tasks) >> watcher()
