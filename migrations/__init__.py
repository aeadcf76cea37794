"""Alembic migrations, shipped inside the package as `stockpipe.migrations`."""
