"""`validate`: checks of the configuration, credentials, data directory, database and symbols.

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
    found: list[tuple[Check, int]] = [
        _check_provider(settings),
        _check_data_dir(settings.data_dir),
        *_check_database(settings),
        _check_symbols(settings),
        _check_quality_thresholds(settings),
        _check_health_thresholds(settings),
    ]
    failed = [(c, code) for c, code in found if not c.ok]
    exit_code = failed[0][1] if failed else ExitCode.OK
    message = failed[0][0].detail if failed else ""
    return StageResult("validate", exit_code, {"checks": len(found), "checks_failed": len(failed)},
                       checks=tuple(c for c, _ in found), message=message)


def _check_provider(settings: Settings) -> tuple[Check, int]:
    from ..providers import registry

    try:
        provider = registry.create(settings.provider, settings)
    except StockpipeError as exc:
        return Check("provider", False, str(exc)), exc.exit_code
    try:
        if provider.needs_key and not settings.api_key(settings.provider):
            env = f"STOCKPIPE_{settings.provider.upper()}_API_KEY"
            return Check("credentials", False, f"no API key for {settings.provider}: set {env} or {env}_FILE"), ExitCode.CONFIG
    finally:
        provider.close()
    label = "demo (synthetic data)" if settings.provider == "demo" else settings.provider
    return Check("provider", True, f"{label}, credentials not needed" if not provider.needs_key
                 else f"{label}, API key present"), ExitCode.OK


def _check_data_dir(data_dir: Path) -> tuple[Check, int]:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check("data directory", False, f"cannot write to {data_dir}: {exc.strerror}: "
                     "fix its permissions or set STOCKPIPE_DATA_DIR"), ExitCode.UNAVAILABLE
    return Check("data directory", True, f"{data_dir} is writable"), ExitCode.OK


def _check_database(settings: Settings) -> list[tuple[Check, int]]:
    try:
        engine = warehouse.create(settings.database_url)
        warehouse.check_reachable(engine)
        current, head = warehouse.current_revision(engine), warehouse.head_revision()
    except StockpipeError as exc:
        return [(Check("database", False, str(exc)), exc.exit_code)]
    reachable = (Check("database", True, f"{engine.url.render_as_string(hide_password=True)} reachable"), ExitCode.OK)
    if current != head:
        detail = f"database at {current or 'no migration'}, newest is {head}: run `stockpipe db upgrade`"
        return [reachable, (Check("migrations", False, detail), ExitCode.CONFIG)]
    return [reachable, (Check("migrations", True, f"at {head} (newest)"), ExitCode.OK)]


def _check_symbols(settings: Settings) -> tuple[Check, int]:
    try:
        for symbol in settings.symbols:
            normalize_symbol(symbol)
    except BadInputError as exc:
        return Check("symbols", False, str(exc)), ExitCode.BAD_INPUT
    return Check("symbols", True, f"{len(settings.symbols)} well formed ({settings.universe_source})"), ExitCode.OK


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
