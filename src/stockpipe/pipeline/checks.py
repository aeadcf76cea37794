"""`validate`: checks of the configuration, credentials, data directory, database and symbols.

validate writes nothing: on a fresh machine the data directory and the SQLite file do not
exist yet, and it says that the first command that writes creates them (and migrates the
database when `auto_migrate` is on), instead of creating an empty database and refusing
it. With `--provider csv` the symbols checked are those the CSV files hold.
Imports neither pandas nor pyarrow.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Settings, normalize_symbol
from ..errors import BadInputError, ExitCode, StockpipeError
from ..models import Check, StageResult
from ..storage import warehouse
from .health import health_thresholds

def validate(settings: Settings) -> StageResult:
    """Configuration, credentials, data directory, database and symbols, in that order.

    The exit code is the code of the first failing check's error class (config 4,
    unavailable 5, bad input 65), so a script can tell the causes apart.
    """
    provider, symbols = _check_provider(settings)
    found: list[tuple[Check, int]] = [
        provider,
        _check_data_dir(settings.data_dir),
        *_check_database(settings),
        _check_symbols(settings, symbols),
        _check_quality_thresholds(settings),
        _check_health_thresholds(settings),
    ]
    failed = [(c, code) for c, code in found if not c.ok]
    exit_code = failed[0][1] if failed else ExitCode.OK
    message = failed[0][0].detail if failed else ""
    return StageResult("validate", exit_code, {"checks": len(found), "checks_failed": len(failed)},
                       checks=tuple(c for c, _ in found), message=message)


def _check_provider(settings: Settings) -> tuple[tuple[Check, int], tuple[str, ...] | None]:
    """The provider's check, and the symbols its source names (the csv provider's files), if any."""
    from ..providers import registry

    try:
        provider = registry.create(settings.provider, settings)
    except StockpipeError as exc:
        return (Check("provider", False, str(exc)), exc.exit_code), None
    try:
        if provider.needs_key and not settings.api_key(settings.provider):
            env = f"STOCKPIPE_{settings.provider.upper()}_API_KEY"
            return (Check("credentials", False, f"no API key for {settings.provider}: set {env} or {env}_FILE"),
                    ExitCode.CONFIG), None
        named = provider.symbols()
    except StockpipeError as exc:  # the csv provider's files: a missing path, a malformed symbol
        return (Check("provider", False, str(exc)), exc.exit_code), None
    finally:
        provider.close()
    label = "demo (synthetic data)" if settings.provider == "demo" else settings.provider
    check = Check("provider", True, f"{label}, credentials not needed" if not provider.needs_key
                  else f"{label}, API key present")
    return (check, ExitCode.OK), None if named is None else tuple(named)


def _check_data_dir(data_dir: Path) -> tuple[Check, int]:
    if not data_dir.exists():
        parent = next(p for p in data_dir.parents if p.exists())
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return Check("data directory", True, f"{data_dir} will be created by the first command that writes"), \
                ExitCode.OK
        return Check("data directory", False, f"cannot create {data_dir}: {parent} is not writable: "
                     "fix its permissions or set STOCKPIPE_DATA_DIR"), ExitCode.UNAVAILABLE
    try:
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check("data directory", False, f"cannot write to {data_dir}: {exc.strerror}: "
                     "fix its permissions or set STOCKPIPE_DATA_DIR"), ExitCode.UNAVAILABLE
    return Check("data directory", True, f"{data_dir} is writable"), ExitCode.OK


def _check_database(settings: Settings) -> list[tuple[Check, int]]:
    from .reading import sqlite_file_missing

    missing = sqlite_file_missing(settings.database_url)
    if missing is not None:
        return [(Check("database", True, f"{missing} will be created by the first command that writes"), ExitCode.OK),
                _migrations(settings, None, warehouse.head_revision())]
    try:
        engine = warehouse.create(settings.database_url)
        warehouse.check_reachable(engine)
        current, head = warehouse.current_revision(engine), warehouse.head_revision()
    except StockpipeError as exc:
        return [(Check("database", False, str(exc)), exc.exit_code)]
    reachable = (Check("database", True, f"{engine.url.render_as_string(hide_password=True)} reachable"), ExitCode.OK)
    return [reachable, _migrations(settings, current, head)]


def _migrations(settings: Settings, current: str | None, head: str) -> tuple[Check, int]:
    """At the newest revision; or behind, which is fine when the next command that writes
    migrates it (auto_migrate, the default)."""
    if current == head:
        return Check("migrations", True, f"at {head} (newest)"), ExitCode.OK
    at = f"at {current}" if current else "not migrated yet"
    if settings.auto_migrate:
        return Check("migrations", True, f"{at}, newest {head}: the first command that writes migrates it "
                     "(auto_migrate)"), ExitCode.OK
    return Check("migrations", False, f"database {at}, newest is {head}: run `stockpipe db upgrade` "
                 "(auto_migrate is off)"), ExitCode.CONFIG


def _check_symbols(settings: Settings, named: tuple[str, ...] | None) -> tuple[Check, int]:
    """The universe's symbols, or those the provider's source names (csv files) instead."""
    symbols, source = (named, f"in {settings.csv_path}") if named is not None else (
        settings.symbols, settings.universe_source)
    try:
        for symbol in symbols:
            normalize_symbol(symbol)
    except BadInputError as exc:
        return Check("symbols", False, str(exc)), ExitCode.BAD_INPUT
    if not symbols:
        return Check("symbols", False, f"no symbol {source}: nothing to fetch"), ExitCode.BAD_INPUT
    return Check("symbols", True, f"{len(symbols)} well formed ({source})"), ExitCode.OK


def _check_quality_thresholds(settings: Settings) -> tuple[Check, int]:
    """A typo in [quality] is caught before a run fetches anything."""
    from ..stages.quality import thresholds

    try:
        limits = thresholds(settings.quality, settings.stale_after_sessions)
    except StockpipeError as exc:
        return Check("quality thresholds", False, str(exc)), exc.exit_code
    return Check("quality thresholds", True, f"{len(limits)} rules"), ExitCode.OK


def _check_health_thresholds(settings: Settings) -> tuple[Check, int]:
    """A typo in [health] is caught by validate, not by the monitor at 3 a.m."""
    try:
        limits = health_thresholds(settings.health)
    except StockpipeError as exc:
        return Check("health thresholds", False, str(exc)), exc.exit_code
    return Check("health thresholds", True, f"{len(limits)} thresholds"), ExitCode.OK
