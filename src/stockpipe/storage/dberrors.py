"""What a database error that reached no handler means to a person: the documented
StockpipeError it stands for (storage/warehouse.py's helper; pipeline.context.known_error
and the CLI's handler ask it), with the URL's password hidden."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ..errors import (
    ConfigError,
    DatabaseUnavailableError,
    StockpipeError,
    UnavailableError,
)
from ..redaction import redact

# Connection refusals a person must fix in the URL or the server's configuration (exit 4).
_CREDENTIALS = ("password authentication failed", "no password supplied", "authentication failed",
                "does not exist", "pg_hba.conf", "permission denied for database")
_SQLITE_FULL = ("database or disk is full", "disk i/o error")
_SQLITE_PATH = ("unable to open database file", "attempt to write a readonly database", "readonly database")


def from_db_error(exc: BaseException, url: sa.URL | str | None = None) -> StockpipeError | None:
    """The StockpipeError a database error that reached no handler stands for, or None (a bug).

    PostgreSQL: refused credentials or an unknown database -> ConfigError (4); a server that
    is down, went away mid-run or refused the connection -> DatabaseUnavailableError (5).
    SQLite: a full disk -> UnavailableError (5); a file that cannot be opened or written (read-
    only file system, permissions) -> ConfigError (4); locked past the busy timeout -> 5.
    """
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    lower = text.lower()
    where = shown(url)
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return unreachable(exc, url)
    module = type(original).__module__ or ""
    if module.startswith("sqlite3") or (url is not None and "sqlite" in str(url)[:7]):
        if any(m in lower for m in _SQLITE_FULL):
            return UnavailableError(f"database {where}: {text}: free space on its file system, then run again")
        if any(m in lower for m in _SQLITE_PATH):
            return ConfigError(f"database {where} cannot be opened for writing ({text}): point --database-url / "
                               "STOCKPIPE_DATABASE_URL or the data directory at a writable place")
        if "database is locked" in lower:
            return DatabaseUnavailableError(f"database {where} stayed locked by another process ({text}): run again")
        return None
    if module.startswith("psycopg2") and _connection_error(original):
        if any(m in lower for m in _CREDENTIALS):
            return ConfigError(f"database {where} refused the connection ({_scrub_url(text, url)}): check the user, "
                               "password and database name in STOCKPIPE_DATABASE_URL / --database-url")
        return unreachable(exc, url)
    return None


def _connection_error(original: BaseException) -> bool:
    """A psycopg2 error about the connection (refused, lost, the server shutting down)."""
    import psycopg2

    return isinstance(original, (psycopg2.OperationalError, psycopg2.InterfaceError))


def unreachable(exc: BaseException, url: sa.URL | str | None) -> DatabaseUnavailableError:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    reason = _scrub_url(lines[0] if lines else type(original).__name__, url)
    return DatabaseUnavailableError(f"database {shown(url)} is unreachable ({reason}): check STOCKPIPE_DATABASE_URL / "
                                    "--database-url and that the server is running")


def shown(url: sa.URL | str | None) -> str:
    if url is None:
        return "(STOCKPIPE_DATABASE_URL / --database-url)"
    if isinstance(url, str):
        try:
            url = make_url(url)
        except Exception:  # noqa: BLE001 - an unparseable URL must still never leak
            return redact(url)
    return url.render_as_string(hide_password=True)


def _scrub_url(text: str, url: sa.URL | str | None) -> str:
    try:
        password = (url if isinstance(url, sa.URL) else make_url(url)).password if url is not None else None
    except Exception:  # noqa: BLE001 - an unparseable URL has no password to hide
        password = None
    return text.replace(password, "***") if password else text
