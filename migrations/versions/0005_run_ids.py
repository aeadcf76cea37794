"""Scheduler run ids: pipeline_runs gets one row per invocation, keyed by `id`.

`--run-id` lets a scheduler name a run (Airflow's run_id, systemd's $INVOCATION_ID), and
one Airflow DAG run calls stockpipe many times under one name (fetch, transform, load,
each shard, each retry), so run_id can no longer be the primary key. The table is
rebuilt (the same way on SQLite, which cannot change a primary key in place, and on
PostgreSQL), keeping every row in its order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = ("run_id", "command", "arguments", "provider", "shard", "started_at", "finished_at", "status",
            "exit_code", "planned", "ok", "failed", "skipped", "rows_fetched", "rows_rejected", "rows_loaded",
            "api_calls", "error")


def _table(name: str, keyed_by_id: bool) -> None:
    key = ([sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(length=64), nullable=False)] if keyed_by_id
           else [sa.Column("run_id", sa.String(length=64), primary_key=True)])
    op.create_table(
        name,
        *key,
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("shard", sa.String(length=16), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        *(sa.Column(c, sa.Integer(), server_default="0", nullable=False)
          for c in ("planned", "ok", "failed", "skipped", "rows_fetched", "rows_rejected", "rows_loaded", "api_calls")),
        sa.Column("error", sa.Text(), nullable=True),
    )


def upgrade() -> None:
    columns = ", ".join(_COLUMNS)
    _table("pipeline_runs_new", keyed_by_id=True)
    op.execute(f"INSERT INTO pipeline_runs_new ({columns}) SELECT {columns} FROM pipeline_runs ORDER BY started_at, run_id")
    op.drop_table("pipeline_runs")
    op.rename_table("pipeline_runs_new", "pipeline_runs")
    op.create_index("ix_pipeline_runs_run_id", "pipeline_runs", ["run_id"])


def downgrade() -> None:
    """Back to one row per run_id: the latest invocation of each name is kept."""
    columns = ", ".join(_COLUMNS)
    _table("pipeline_runs_old", keyed_by_id=False)
    op.execute(f"INSERT INTO pipeline_runs_old ({columns}) SELECT {columns} FROM pipeline_runs "
               "WHERE id IN (SELECT MAX(id) FROM pipeline_runs GROUP BY run_id)")
    op.drop_index("ix_pipeline_runs_run_id", table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
    op.rename_table("pipeline_runs_old", "pipeline_runs")
