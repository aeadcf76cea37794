"""I/O to the Parquet lake and the SQL warehouse."""
