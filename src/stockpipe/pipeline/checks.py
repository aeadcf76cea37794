"""`validate`: checks of the configuration, credentials, data directory, database and symbols.

validate writes nothing: on a fresh machine the data directory and the SQLite file do not
exist yet, and it says that the first command that writes creates them (and migrates the
database when `auto_migrate` is on), instead of creating an empty database and refusing
it. With `--provider csv` the symbols checked are those the CSV files hold.
Imports neither pandas nor pyarrow.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from pathlib import Path

from ..config import Settings, normalize_symbol
from ..errors import BadInputError, ExitCode, StockpipeError
from ..models import Check, StageResult
from ..storage import warehouse
from .health import health_thresholds

def validate(settings: Settings, probe: str | None = None, today: dt.date | None = None) -> StageResult:
    """Configuration, credentials, data directory, database and symbols, in that order;
    with `probe`, the providers' servers too (providers/probe.py): "connect" (what `run`
    asks first: is each one there?) or "call" (`validate --probe`: one cheap call each:
    latency, key accepted, quota left).

    The exit code is the code of the first failing check's error class (config 4,
    unavailable 5, bad input 65), so a script can tell the causes apart. A problem of one
    provider of a failover chain that another one covers is a warning, not a failure.
    """
    providers, symbols = _check_providers(settings, probe, today or dt.date.today())
    found: list[tuple[Check, int]] = [
        *providers,
        _check_data_dir(settings.data_dir),
        *_check_database(settings),
        _check_symbols(settings, symbols),
        _check_quality_thresholds(settings),
        _check_health_thresholds(settings),
    ]
    failed = [(c, code) for c, code in found if not c.ok and c.severity == "error"]
    exit_code = failed[0][1] if failed else ExitCode.OK
    message = failed[0][0].detail if failed else ""
    return StageResult("validate", exit_code, {"checks": len(found), "checks_failed": len(failed)},
                       checks=tuple(c for c, _ in found), message=message)


def _check_providers(settings: Settings, probe: str | None,
                     today: dt.date) -> tuple[list[tuple[Check, int]], tuple[str, ...] | None]:
    """Each provider of the chain: it can be built (its key is set), and with `probe` its
    server answers; a failure another provider of the chain covers is a warning. Also the
    symbols the first provider's source names (the csv provider's files), if any."""
    from ..providers import registry

    chain = list(settings.providers or (settings.provider,))
    named = (lambda n: "provider") if len(chain) == 1 else (lambda n: f"provider {n}")
    built, found, symbols = [], [], None
    for name in chain:
        try:
            built.append(registry.create(name, settings))
        except StockpipeError as exc:
            found.append((name, Check(named(name), False, str(exc)), exc.exit_code))
    try:
        if built and built[0].name == chain[0]:
            listed = built[0].symbols()  # the csv provider's files: a missing path, a malformed symbol
            symbols = None if listed is None else tuple(listed)
    except StockpipeError as exc:
        found.append((chain[0], Check(named(chain[0]), False, str(exc)), exc.exit_code))
    try:
        for provider in built:
            label = "demo (synthetic data)" if provider.name == "demo" else provider.name
            detail = f"{label}, API key present" if provider.needs_key else f"{label}, credentials not needed"
            found.append((provider.name, Check(named(provider.name), True, detail), ExitCode.OK))
            if probe:
                found.append((provider.name, *_probe(provider, probe, settings, today)))
    finally:
        for provider in built:
            provider.close()
    working = {name for name, check, _ in found} - {name for name, check, _ in found if not check.ok}
    return [(_covered(check, working - {name}), code) for name, check, code in
            sorted(found, key=lambda item: chain.index(item[0]))], symbols


def _probe(provider, depth: str, settings: Settings, today: dt.date) -> tuple[Check, int]:
    from ..providers.probe import probe, reachable

    if depth == "connect":
        result = reachable(provider, settings.http_timeout_connect)
        return Check(f"reachable {provider.name}", result.ok, result.detail), result.exit_code
    symbol = settings.symbols[0] if settings.symbols else "AAPL"
    result = probe(provider, symbol, today)
    return Check(f"probe {provider.name}", result.ok, result.detail,
                 observed=None if result.latency is None else round(result.latency, 3)), result.exit_code


def _covered(check: Check, others: set[str]) -> Check:
    """A failing check of one provider as a warning when other providers of the chain work."""
    if check.ok or not others:
        return check
    return replace(check, severity="warn",
                   detail=f"{check.detail} (the fetch fails over to {', '.join(sorted(others))})")


def _check_data_dir(data_dir: Path) -> tuple[Check, int]:
    """Whether the data directory can be created and written (exit 4 when not, as the
    commands that write refuse it): tried for real, and what the try created removed again."""
    fix = "point STOCKPIPE_DATA_DIR / --data-dir at a writable directory, or fix its permissions"
    if data_dir.exists() and not data_dir.is_dir():
        return Check("data directory", False, f"{data_dir} is a file, not a directory: {fix}"), ExitCode.CONFIG
    created = [p for p in (data_dir, *data_dir.parents) if not p.exists()]  # deepest first
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check("data directory", False, f"cannot {'create' if created else 'write to'} {data_dir}: "
                     f"{exc.strerror}: {fix}"), ExitCode.CONFIG
    finally:
        for path in created:
            try:
                path.rmdir()
            except OSError:
                pass
    if created:
        return Check("data directory", True, f"{data_dir} will be created by the first command that writes"), \
            ExitCode.OK
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
    if current is not None and not warehouse.known_revision(current):
        return Check("migrations", False, f"database at {current}, newest {head}: "
                     f"{warehouse.revision_fix(current, head)}"), ExitCode.CONFIG
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
