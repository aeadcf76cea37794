"""`health-check`: database, migrations, runs on time, failing symbols, the last run, quota,
disk and lake, graded by the [health] thresholds.

Imports neither pandas nor pyarrow (health-check must stay fast): the lake is checked
against its Delta logs (every file there, its size, magic bytes and time as committed:
storage/lake_stats.py), not by reading pages (`stockpipe verify` does), and the calendar
comes from closes.py.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import Settings
from ..errors import ConfigError, StockpipeError
from ..models import Check
from ..storage import warehouse

# [health] / STOCKPIPE_HEALTH_<KEY>: the thresholds of health-check.
HEALTH_DEFAULTS: dict[str, float] = {
    "late_after_hours": 12.0,  # a session is due this long after its close (the timer runs 6.5 h after New York's)
    "missed_sessions_critical": 3.0,  # missed sessions that make "late" critical (fewer: a warning)
    "disk_free_warn_gb": 2.0,  # GB (10^9 bytes) free in the data directory's file system
    "disk_free_critical_gb": 0.5,
    "failing_share_warn": 0.05,  # share of symbols failing (symbol_state) or failed/deferred (last run)
    "failing_share_critical": 0.5,
    "quota_left_warn": 0.1,  # share of a provider's daily quota left
}
_SHARES = ("failing_share_warn", "failing_share_critical", "quota_left_warn")
RECENT = dt.timedelta(days=7)  # symbols attempted this lately count in "failing symbols"


@dataclass(frozen=True)
class Health:
    """health-check's checks, and the values they judged (for --json and the metrics file)."""

    checks: list[Check]
    observed: dict[str, Any]


def health_thresholds(raw: Mapping[str, Any]) -> dict[str, float]:
    """The [health] table over HEALTH_DEFAULTS.

    Raises:
        ConfigError: an unknown key, a value that is not a number >= 0 (a share above 1,
            a fractional session count), or a warning threshold beyond its critical one.
    """
    limits = dict(HEALTH_DEFAULTS)
    for key, value in raw.items():
        where = f"[health] {key} (STOCKPIPE_HEALTH_{key.upper()})"
        if key not in HEALTH_DEFAULTS:
            raise ConfigError(f"unknown setting {where}: known are {', '.join(HEALTH_DEFAULTS)}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if isinstance(value, bool) or not 0 <= number < float("inf"):  # `not <=` also refuses NaN
            raise ConfigError(f"{where} = {value!r} is not a number >= 0: fix the config file or the environment")
        if key in _SHARES and number > 1:
            raise ConfigError(f"{where} = {value!r} is a share: use a number from 0 to 1 (0.1 = 10%)")
        limits[key] = number
    if limits["missed_sessions_critical"] < 1 or not limits["missed_sessions_critical"].is_integer():
        raise ConfigError("[health] missed_sessions_critical must be a whole number >= 1")
    for high, low in (("disk_free_warn_gb", "disk_free_critical_gb"), ("failing_share_critical", "failing_share_warn")):
        if limits[high] < limits[low]:
            raise ConfigError(f"[health] {high} = {limits[high]:g} is below {low} = {limits[low]:g}: "
                              "the warning must come before the critical alarm")
    return limits


def health(settings: Settings, now: dt.datetime) -> Health:
    """Database, migrations, runs on time, failing symbols, the last run, quota, disk, lake.

    A failed check's severity is its level: "error" critical, "warn" warning, "unknown"
    (the check could not run) unknown. Reads the run metadata only (never a price table)
    and imports neither pandas nor pyarrow (see closes.py for the calendar).

    Raises:
        ConfigError: the [health] thresholds are invalid (health-check exits 3, unknown).
    """
    limits = health_thresholds(settings.health)
    observed: dict[str, Any] = {}
    checks = _database_health(settings, now, limits, observed)
    checks += [_check_disk(settings.data_dir, limits, observed), _check_lake(settings.lake_dir)]
    return Health(checks, observed)


def _database_health(settings: Settings, now: dt.datetime, limits: Mapping[str, float],
                     observed: dict[str, Any]) -> list[Check]:
    import sqlalchemy as sa

    from ..storage import monitoring, state

    try:
        engine = warehouse.create(settings.database_url)
        warehouse.check_reachable(engine)
    except StockpipeError as exc:
        return [Check("database", False, str(exc))]
    current, head = warehouse.current_revision(engine), warehouse.head_revision()
    checks = [Check("database", True, "reachable"),
              Check("migrations", current == head, f"at {current or 'no migration'}, newest {head}"
                    + ("" if current == head else f": {warehouse.revision_fix(current, head)}"))]
    if current != head:  # the metadata tables are not (all) there yet
        return checks
    try:
        with warehouse.snapshot(engine) as conn:  # one state while a run commits beside it
            last = state.last_successful_run(conn)
            failing = monitoring.failing_symbols(conn, now - RECENT)
            last_run = monitoring.last_fetch_runs(conn)
            quotas = monitoring.quotas(conn, now)
            held, any_price = monitoring.held_symbols(conn, now - RECENT), monitoring.prices_held(conn)
            loaded = _check_loaded(settings, conn)
    except sa.exc.SQLAlchemyError as exc:
        return [*checks, Check("run metadata", False, f"cannot read pipeline_runs/symbol_state/quota_ledger "
                               f"({type(exc).__name__}): check the database role's privileges", "unknown")]
    closes = _session_closes(settings, now)
    return [*checks, _check_on_time(last, closes, now, limits, observed),
            _check_prices(held, any_price, last is not None, settings, closes, now, limits, observed),
            _check_failing(failing, limits, observed), _check_last_run(last_run, limits, observed),
            *_check_quotas(quotas, limits, observed), loaded]


def _check_loaded(settings: Settings, conn) -> Check:
    """The lake and the warehouse agree: rows the lake holds that the warehouse lacks (an
    empty warehouse under a full lake above all) mean a load is owed, and are critical."""
    from ..models import LOAD_ORDER
    from ..storage import lake_stats, monitoring

    lake = lake_stats.counts(settings.lake_dir, [d.name for d in LOAD_ORDER])
    held = monitoring.row_counts(conn, list(lake))
    behind = {name: (held[name], rows) for name, rows in lake.items() if rows > held[name]}
    if not behind:
        return Check("lake loaded", True, f"the warehouse holds every lake row ({sum(lake.values())} in {len(lake)} table(s))")
    shown = ", ".join(f"{name} {have} of {rows}" for name, (have, rows) in behind.items())
    return Check("lake loaded", False, f"the warehouse lacks rows the lake holds ({shown}): run `stockpipe load`",
                 "error", observed=sum(rows - have for have, rows in behind.values()), threshold=0)


def _session_closes(settings: Settings, now: dt.datetime):
    from .. import closes

    return closes.load(settings.data_dir) or closes.compute(
        closes.exchanges_of(settings.symbols, settings.exchanges), now)


def _graded(name: str, bad: float, limits: Mapping[str, float], warn: str, critical: str, detail: str) -> Check:
    """A check where more is worse: warning above limits[warn], critical above limits[critical]."""
    if bad > limits[critical]:
        return Check(name, False, detail, "error", observed=bad, threshold=limits[critical])
    return Check(name, bad <= limits[warn], detail, "warn", observed=bad, threshold=limits[warn])


def _check_on_time(last: dt.datetime | None, closes, now: dt.datetime, limits: Mapping[str, float],
                   observed: dict[str, Any]) -> Check:
    """Calendar-aware: every session that closed more than late_after_hours ago must have
    closed before the last successful run. A weekend or a holiday is no session, so
    Monday morning does not alarm over Friday's data."""
    observed["last_success"] = last.isoformat() if last else None
    if last is None:
        return Check("last success", False, "no successful fetch or run recorded yet", "warn")
    late, hours = dt.timedelta(hours=limits["late_after_hours"]), limits["late_after_hours"]
    when = f"last successful run {last:%Y-%m-%d %H:%M} UTC"
    if not closes:
        return Check("last success", False, f"{when}; no exchange calendar to judge it by", "unknown")
    missed = {ex: [s for s, close in rows if last < close and close + late <= now] for ex, rows in closes.items()}
    exchange, sessions = max(missed.items(), key=lambda item: (len(item[1]), item[0]))
    observed["missed_sessions"] = len(sessions)
    if not sessions:
        return Check("last success", True, f"{when} covers every session that closed over {hours:g} h ago",
                     "warn", observed=0)
    at_least = "at least " if last < closes[exchange][0][1] else ""
    detail = (f"{at_least}{len(sessions)} {exchange} session(s) missed, first {sessions[0]:%Y-%m-%d}; {when} "
              f"(a session is due {hours:g} h after its close)")
    critical = len(sessions) >= limits["missed_sessions_critical"]
    return Check("last success", False, detail, "error" if critical else "warn", observed=len(sessions),
                 threshold=limits["missed_sessions_critical"])


def _check_prices(held, any_price: bool, succeeded: bool, settings: Settings, closes, now: dt.datetime,
                  limits: Mapping[str, float], observed: dict[str, Any]) -> Check:
    """The data itself: prices_daily holds rows, and the symbols attempted lately hold every
    session that is due (a run can succeed while a vendor sends nothing new). Whether the
    warehouse holds what the lake does is the "lake loaded" check."""
    from ..calendars import exchange_resolver

    observed["prices_held"] = any_price
    if not any_price:
        if succeeded:
            return Check("prices", False, "prices_daily is empty although a fetch or run succeeded: run "
                         "`stockpipe transform && stockpipe load` (or `stockpipe run`)")
        return Check("prices", False, "prices_daily is empty: no bars loaded yet", "warn")
    late = dt.timedelta(hours=limits["late_after_hours"])
    exchange_of = exchange_resolver(settings.exchanges)
    behind = {h.symbol: _sessions_behind(h.last_date, closes.get(exchange_of(h.symbol), []), now, late)
              for h in held}
    stale = sorted(((n, s) for s, n in behind.items() if n), reverse=True)
    observed.update(stale_symbols=len(stale), most_sessions_behind=stale[0][0] if stale else 0)
    notes = []
    if stale:
        worst = ", ".join(f"{s} ({n})" for n, s in stale[:3])
        notes.append(f"{len(stale)} of {len(held)} symbol(s) lack due sessions (sessions behind: {worst})")
    if not notes:
        return Check("prices", True, f"{len(held)} symbol(s) attempted lately hold every due session", "warn")
    share = len(stale) / len(held) if held else 0.0
    critical = stale and share > limits["failing_share_critical"] and \
        stale[0][0] >= limits["missed_sessions_critical"]
    return Check("prices", False, "; ".join(notes), "error" if critical else "warn",
                 observed=stale[0][0] if stale else 0, threshold=limits["missed_sessions_critical"])


def _sessions_behind(last: dt.date | None, closes, now: dt.datetime, late: dt.timedelta) -> int:
    """Sessions after `last` whose close is over `late` ago (all of them in the closes when
    nothing is held)."""
    return sum(1 for session, close in closes if (last is None or session > last) and close + late <= now)


def _check_failing(failing, limits: Mapping[str, float], observed: dict[str, Any]) -> Check:
    observed.update(failing_symbols=failing.failing, tracked_symbols=failing.tracked)
    if not failing.tracked:
        return Check("failing symbols", True, f"no symbol attempted in the last {RECENT.days} days")
    share = failing.failing / failing.tracked
    worst = ", ".join(f"{symbol} ({times}x)" for symbol, times in failing.worst)
    detail = (f"{failing.failing} of {failing.tracked} symbol(s) failed their last fetch ({share:.1%})"
              + (f": {worst}" if worst else ""))
    return _graded("failing symbols", share, limits, "failing_share_warn", "failing_share_critical", detail)


def _check_last_run(last_run, limits: Mapping[str, float], observed: dict[str, Any]) -> Check:
    if last_run is None:
        return Check("last run", True, "no fetch or run finished yet")
    failed, deferred, total = last_run.outcomes.get("failed", 0), last_run.outcomes.get("skipped", 0), last_run.symbols
    observed["last_run"] = {"run_ids": list(last_run.run_ids), "symbols": total, "failed": failed,
                            "deferred": deferred, "finished_at": last_run.finished_at.isoformat()}
    more = len(last_run.run_ids) - 3
    names = ", ".join(last_run.run_ids[:3]) + (f" and {more} more" if more > 0 else "")
    if not total:
        return Check("last run", True, f"run {names} had nothing to fetch")
    share = (failed + deferred) / total
    detail = f"run {names}: {failed} of {total} symbol(s) failed, {deferred} deferred ({share:.1%})"
    return _graded("last run", share, limits, "failing_share_warn", "failing_share_critical", detail)


def _check_quotas(quotas, limits: Mapping[str, float], observed: dict[str, Any]) -> list[Check]:
    observed["quota"] = [{"provider": q.provider, "calls": q.calls, "limit": q.limit, "remaining": q.remaining,
                          "resets_at": q.resets_at.isoformat()} for q in quotas]
    if not quotas:
        return [Check("quota", True, "no provider has made calls in its current quota day")]
    checks = []
    for q in quotas:
        resets = f"resets {q.resets_at:%Y-%m-%d %H:%M} UTC"
        if q.limit is None:
            checks.append(Check(f"quota {q.provider}", True, f"{q.calls} call(s) made, no daily limit known; {resets}"))
            continue
        left = q.remaining / q.limit if q.limit else 0.0
        checks.append(Check(f"quota {q.provider}", left >= limits["quota_left_warn"],
                            f"{q.remaining} of {q.limit} calls left ({left:.0%}); {resets}", "warn",
                            observed=q.remaining, threshold=round(limits["quota_left_warn"] * q.limit, 3)))
    return checks


def _check_disk(data_dir: Path, limits: Mapping[str, float], observed: dict[str, Any]) -> Check:
    where = data_dir
    while not where.exists() and where != where.parent:  # not created yet: the file system it will be on
        where = where.parent
    try:
        usage = shutil.disk_usage(where)
    except OSError as exc:
        return Check("disk free", False, f"cannot stat {where}: {exc.strerror}", "unknown")
    observed.update(disk_free_bytes=usage.free, disk_total_bytes=usage.total)
    free = usage.free / 1e9
    detail = f"{free:.1f} GB free of {usage.total / 1e9:.1f} GB under {where}"
    if free < limits["disk_free_critical_gb"]:
        return Check("disk free", False, detail, "error", observed=round(free, 3),
                     threshold=limits["disk_free_critical_gb"])
    return Check("disk free", free >= limits["disk_free_warn_gb"], detail, "warn", observed=round(free, 3),
                 threshold=limits["disk_free_warn_gb"])


def _check_lake(lake_dir: Path) -> Check:
    """Every data file the Delta logs reference is there, whole and unchanged since its
    commit (storage/lake_stats.py, without reading pages); each damaged one is named."""
    from ..models import DATASETS
    from ..storage import lake_stats

    names = lake_stats.tables(lake_dir, DATASETS) if lake_dir.is_dir() else []
    try:
        problems = lake_stats.file_problems(lake_dir, names)
        total = sum(len(lake_stats.files(lake_dir, name)) for name in names)
    except Exception as exc:  # noqa: BLE001 - delta-rs raises its own types for an unreadable log
        return Check("lake", False, f"cannot read the Delta log under {lake_dir}: {exc}: run `stockpipe verify`")
    if problems:
        return Check("lake", False, f"{len(problems)} of {total} lake file(s) damaged: "
                     f"{lake_stats.describe(problems, lake_dir)}: run `stockpipe verify --repair`",
                     observed=len(problems), threshold=0)
    return Check("lake", True, f"{total} file(s) in {len(names)} Delta table(s) whole under {lake_dir}")
