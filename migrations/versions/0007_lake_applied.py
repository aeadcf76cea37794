"""lake_applied: what of each Delta lake table the warehouse holds, kept with the rows.

The load stage records, per consumer and dataset, the lake table's id and the version it
applied, in the same transaction as the rows (issue 10: a counter saved apart from the data
is lost by a kill at the wrong moment). A warehouse without a row loads the lake's snapshot.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lake_applied",
        sa.Column("consumer", sa.String(length=32), primary_key=True),
        sa.Column("dataset", sa.String(length=32), primary_key=True),
        sa.Column("table_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lake_applied")
