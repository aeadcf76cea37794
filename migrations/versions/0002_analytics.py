"""Analytics: the full indicator set, adjustments, quotes, quotes_daily, refetch_from,
and the view prices_daily_adjusted.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Indicator columns this revision adds (0001 had sma_20, ema_12, rsi_14).
NEW_INDICATORS = (
    "sma_5", "sma_10", "sma_50", "sma_200", "ema_26", "ema_50",
    "macd", "macd_signal", "macd_hist", "bb_middle", "bb_upper", "bb_lower", "atr_14",
    "stoch_k", "stoch_d", "adx_14", "plus_di_14", "minus_di_14", "cci_20", "willr_14", "mfi_14",
    "obv", "roc_10", "mom_10", "return_1d", "log_return_1d", "volatility_30d", "high_52w", "low_52w",
    "pct_from_high_52w", "drawdown",
)

ADJUSTED_VIEW = """
CREATE VIEW prices_daily_adjusted AS
SELECT p.symbol, p.date,
       p.open * COALESCE(a.price_factor, 1.0) AS open,
       p.high * COALESCE(a.price_factor, 1.0) AS high,
       p.low * COALESCE(a.price_factor, 1.0) AS low,
       p.close * COALESCE(a.price_factor, 1.0) AS close,
       p.volume * COALESCE(a.volume_factor, 1.0) AS volume,
       COALESCE(a.price_factor, 1.0) AS price_factor,
       p.adj_close AS vendor_adj_close,
       p.provider
FROM prices_daily p
LEFT JOIN adjustments a
  ON a.symbol = p.symbol AND p.date >= a.valid_from AND p.date < a.valid_to
"""


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    for name in NEW_INDICATORS:
        op.add_column("indicators_daily", sa.Column(name, sa.Double(), nullable=True))
    op.add_column("symbol_state", sa.Column("refetch_from", sa.Date(), nullable=True))
    op.create_table(
        "adjustments",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("price_factor", sa.Double(), nullable=False),
        sa.Column("volume_factor", sa.Double(), nullable=False),
        _ts("computed_at", nullable=False),
        sa.PrimaryKeyConstraint("symbol", "valid_to"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "quotes",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("open", sa.Double(), nullable=True),
        sa.Column("high", sa.Double(), nullable=True),
        sa.Column("low", sa.Double(), nullable=True),
        sa.Column("prev_close", sa.Double(), nullable=True),
        sa.Column("change", sa.Double(), nullable=True),
        sa.Column("change_pct", sa.Double(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "ts"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "quotes_daily",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("prev_close", sa.Double(), nullable=True),
        sa.Column("change", sa.Double(), nullable=True),
        sa.Column("change_pct", sa.Double(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("quotes", sa.Integer(), nullable=False),
        sa.Column("avg_volume_per_quote", sa.Double(), nullable=True),
        _ts("first_ts", nullable=False),
        _ts("last_ts", nullable=False),
        _ts("computed_at", nullable=False),
        sa.PrimaryKeyConstraint("symbol", "date"),
        sqlite_with_rowid=False,
    )
    op.execute(ADJUSTED_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS prices_daily_adjusted")
    op.drop_table("quotes_daily")
    op.drop_table("quotes")
    op.drop_table("adjustments")
    op.drop_column("symbol_state", "refetch_from")
    for name in reversed(NEW_INDICATORS):
        op.drop_column("indicators_daily", name)
