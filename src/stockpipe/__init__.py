"""stockpipe: ETL for stock-market data (fetch, validate, indicators, Parquet lake, SQL warehouse)."""

__version__ = "0.1.0"
