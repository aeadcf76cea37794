"""assets: the universe read from the exchanges' symbol lists (`stockpipe universe refresh`).

One row per symbol: what the exchange's list says of it (name, the list's exchange code, the
venue, country, currency, type, ISIN), when it was first and last seen in the list, and
when it vanished from it (`delisted_at`: never deleted, no longer fetched).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("symbol", sa.String(length=32), primary_key=True),
        sa.Column("name", sa.String(length=200)),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("venue", sa.String(length=32)),
        sa.Column("country", sa.String(length=64)),
        sa.Column("currency", sa.String(length=8)),
        sa.Column("type", sa.String(length=32)),
        sa.Column("isin", sa.String(length=16)),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delisted_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_assets_exchange", "assets", ["exchange"])


def downgrade() -> None:
    op.drop_index("ix_assets_exchange", table_name="assets")
    op.drop_table("assets")
