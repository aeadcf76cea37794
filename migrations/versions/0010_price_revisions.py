"""price_revisions and symbol_state.rows_held.

price_revisions: a restated bar's old values, one row per (symbol, date, column, seen_at),
taken from the lake's change feed (update_preimage / update_postimage) by `load`, in the
same transaction as the rows it applies (pipeline/revisions.py).

symbol_state.rows_held: the rows of prices_daily the warehouse holds for the symbol, kept
by `load` in the same transaction as those rows, so `stockpipe status` never counts the
price table. Existing warehouses are counted once here.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "price_revisions",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("column", sa.String(length=16), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("old", sa.Double(), nullable=True),
        sa.Column("new", sa.Double(), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("symbol", "date", "column", "seen_at"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_price_revisions_seen_at", "price_revisions", ["seen_at"])
    op.add_column("symbol_state", sa.Column("rows_held", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE symbol_state SET rows_held = (SELECT count(*) FROM prices_daily p "
               "WHERE p.symbol = symbol_state.symbol) WHERE dataset = 'prices_daily'")


def downgrade() -> None:
    with op.batch_alter_table("symbol_state") as batch:
        batch.drop_column("rows_held")
    op.drop_index("ix_price_revisions_seen_at", table_name="price_revisions")
    op.drop_table("price_revisions")
