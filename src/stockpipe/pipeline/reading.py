"""What the looking commands (show, plot, report, export) share: a read-only way into the
warehouse, and the symbols a person named.

They take no lock and record no run: they only read. They never create a database either:
`stockpipe show AAPL` on a fresh machine says there is nothing yet instead of leaving an
empty stockpipe.db behind.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..errors import ConfigError, NoDataError
from ..storage import warehouse
from .context import connect

EMPTY_HINT = "run `stockpipe run --all` (or fetch, transform and load) first"


def open_reader(settings: Settings):
    """An engine on the configured warehouse, at the newest migration (the views the
    readers use come with it: migrated first when `auto_migrate`).

    Raises:
        NoDataError: the database does not exist yet, or was never migrated.
        ConfigError: it is behind and auto_migrate is off.
        DatabaseUnavailableError: it cannot be reached.
    """
    missing = sqlite_file_missing(settings.database_url)
    if missing is not None:
        raise NoDataError(f"no warehouse yet ({missing} does not exist): {EMPTY_HINT}")
    engine = connect(settings)
    current, head = warehouse.current_revision(engine), warehouse.head_revision()
    if current is None:
        raise NoDataError(f"the warehouse {warehouse.redact(settings.database_url)} is empty: {EMPTY_HINT}")
    if current != head:
        if not settings.auto_migrate:
            raise ConfigError(f"the warehouse is at {current}, newest is {head}: run `stockpipe db upgrade`")
        warehouse.upgrade(engine)
    return engine


def sqlite_file_missing(url: str) -> Path | None:
    """The SQLite file `url` names when it does not exist yet (connecting would create it);
    None for any other database, or a file that exists."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - an unusable URL is reported by warehouse.create, with its fix
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def named_symbols(settings: Settings) -> tuple[str, ...]:
    """The symbols named on the command line (--symbol, --symbols-file, --list); () when the
    universe came from the environment, the config file or the default."""
    explicit = settings.universe_source == "command line" or settings.universe_source.startswith("lists ")
    return settings.symbols if explicit else ()
