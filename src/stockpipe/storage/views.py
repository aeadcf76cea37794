"""The warehouse's views as SQLAlchemy tables, so reads get typed values (a SQLite date is
text until a `Date` column reads it back) and `export` can offer them like any dataset.

They live in a MetaData of their own: the migrations create them (0002, 0006), and
alembic's comparison against `schema.metadata` must never try to create them as tables.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_SYMBOL = sa.String(32)
# migrations/versions/0006_views.py: the indicators daily_analytics carries (a test keeps the two equal)
ANALYTICS_INDICATORS = ("sma_20", "sma_50", "sma_200", "ema_12", "ema_26", "rsi_14", "macd", "macd_signal",
                        "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr_14", "return_1d", "volatility_30d",
                        "high_52w", "low_52w", "pct_from_high_52w", "drawdown", "mom_10", "roc_10")


def _floats(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Double) for name in names]


prices_daily_adjusted = sa.Table(
    "prices_daily_adjusted", metadata,
    sa.Column("symbol", _SYMBOL), sa.Column("date", sa.Date),
    *_floats("open", "high", "low", "close", "volume", "price_factor", "vendor_adj_close"),
    sa.Column("provider", _SYMBOL),
)

daily_analytics = sa.Table(
    "daily_analytics", metadata,
    sa.Column("symbol", _SYMBOL), sa.Column("date", sa.Date),
    *_floats("close", "adj_close"), sa.Column("volume", sa.BigInteger), *_floats("ma7", "ma30"),
    *_floats(*ANALYTICS_INDICATORS),
    sa.Column("provider", _SYMBOL),
)

latest_quotes = sa.Table(
    "latest_quotes", metadata,
    sa.Column("symbol", _SYMBOL), sa.Column("ts", sa.DateTime(timezone=True)),
    *_floats("price", "open", "high", "low", "prev_close", "change", "change_pct"),
    sa.Column("volume", sa.BigInteger), sa.Column("provider", _SYMBOL),
)

VIEWS: dict[str, sa.Table] = {t.name: t for t in (prices_daily_adjusted, daily_analytics, latest_quotes)}
