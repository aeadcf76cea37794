"""The split basis of each daily bar: `prices_daily.split_basis`.

Yahoo sends bars split-adjusted for every split up to the day it answers; stockpipe puts
them back as traded with the splits the answer reports, and records in each bar the last
day that answer covered, so a split that later turns out to be missing from it restates
exactly the bars fetched on an older basis. NULL for a bar the vendor sent as traded (and
for bars stored before this revision).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("prices_daily", sa.Column("split_basis", sa.Date(), nullable=True))


def downgrade() -> None:
    op.drop_column("prices_daily", "split_basis")  # SQLite >= 3.35 drops it in place (the view names it not)
