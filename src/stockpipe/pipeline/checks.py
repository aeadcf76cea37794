"""`validate`: checks of the configuration, credentials, data directory, database and symbols.

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
    found: list[tuple[Check, int]] = [
        *_check_providers(settings, probe, today or dt.date.today()),
        _check_data_dir(settings.data_dir),
        *_check_database(settings),
        _check_symbols(settings),
        _check_quality_thresholds(settings),
        _check_health_thresholds(settings),
    ]
    failed = [(c, code) for c, code in found if not c.ok and c.severity == "error"]
    exit_code = failed[0][1] if failed else ExitCode.OK
    message = failed[0][0].detail if failed else ""
    return StageResult("validate", exit_code, {"checks": len(found), "checks_failed": len(failed)},
                       checks=tuple(c for c, _ in found), message=message)


def _check_providers(settings: Settings, probe: str | None, today: dt.date) -> list[tuple[Check, int]]:
    """Each provider of the chain: it can be built (its key is set), and with `probe` its
    server answers. A failure another provider of the chain covers is a warning."""
    from ..providers import registry

    chain = list(settings.providers or (settings.provider,))
    named = (lambda n: "provider") if len(chain) == 1 else (lambda n: f"provider {n}")
    built, found = [], []
    for name in chain:
        try:
            built.append(registry.create(name, settings))
        except StockpipeError as exc:
            found.append((name, Check(named(name), False, str(exc)), exc.exit_code))
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
            sorted(found, key=lambda item: chain.index(item[0]))]


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
