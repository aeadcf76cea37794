"""Views a BI tool reads as they are: daily_analytics and latest_quotes.

Plain SQL that SQLite (>= 3.25, window functions) and PostgreSQL run alike, so Looker
Studio, Grafana or Metabase see the same rows whichever warehouse they are pointed at.

- daily_analytics: per (symbol, date) the close as traded, the adjusted close (from
  prices_daily_adjusted, 0002), MA7 and MA30 of the adjusted close (NULL until 7 or 30 bars
  exist, like the indicators' warm-up), and the main indicators of indicators_daily.
- latest_quotes: the newest quote per symbol, its change and change % (percent) taken from
  the vendor, else computed from the previous close.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The indicators a dashboard wants next to the price (names as in indicators_daily).
INDICATORS = ("sma_20", "sma_50", "sma_200", "ema_12", "ema_26", "rsi_14", "macd", "macd_signal", "macd_hist",
              "bb_upper", "bb_middle", "bb_lower", "atr_14", "return_1d", "volatility_30d", "high_52w", "low_52w",
              "pct_from_high_52w", "drawdown", "mom_10", "roc_10")


def _moving_average(rows: int) -> str:
    window = f"(PARTITION BY a.symbol ORDER BY a.date ROWS BETWEEN {rows - 1} PRECEDING AND CURRENT ROW)"
    return f"CASE WHEN COUNT(a.close) OVER {window} = {rows} THEN AVG(a.close) OVER {window} END AS ma{rows}"


DAILY_ANALYTICS = f"""
CREATE VIEW daily_analytics AS
SELECT a.symbol, a.date,
       p.close AS close,
       a.close AS adj_close,
       p.volume AS volume,
       {_moving_average(7)},
       {_moving_average(30)},
       {", ".join(f"i.{name} AS {name}" for name in INDICATORS)},
       p.provider AS provider
FROM prices_daily_adjusted a
JOIN prices_daily p ON p.symbol = a.symbol AND p.date = a.date
LEFT JOIN indicators_daily i ON i.symbol = a.symbol AND i.date = a.date
"""

LATEST_QUOTES = """
CREATE VIEW latest_quotes AS
SELECT symbol, ts, price, open, high, low, prev_close,
       COALESCE(change, price - prev_close) AS change,
       COALESCE(change_pct, 100.0 * (price - prev_close) / NULLIF(prev_close, 0)) AS change_pct,
       volume, provider
FROM (SELECT q.*, ROW_NUMBER() OVER (PARTITION BY q.symbol ORDER BY q.ts DESC) AS newest FROM quotes q) ranked
WHERE newest = 1
"""


def upgrade() -> None:
    op.execute(DAILY_ANALYTICS)
    op.execute(LATEST_QUOTES)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latest_quotes")
    op.execute("DROP VIEW IF EXISTS daily_analytics")
