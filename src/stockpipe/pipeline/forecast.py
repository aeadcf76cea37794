"""What a fetch will cost before it spends anything: `fetch --dry-run` / `run --dry-run`,
and the same line logged at the start of a real fetch.

Per provider: the calls the plan makes (one per planned symbol: bulk, incremental,
refetch), their quota cost, the daily quota left (the quota ledger), and the projected
finish under the provider's rate limits. The projection is a lower bound: each limit of
L calls per window W lets the first L calls go at once and each further L one window
later, so N calls take floor((N - 1) / L) windows of the tightest limit; the vendor's own
latency comes on top. Calls beyond the quota left are deferred to the next quota day
(the run ends partial, exit 3) and are not in the projection.

A failover chain's first provider is shown with every planned call (which symbols the next
ones take is only known once the first stops). A dry run writes nothing: no lock, no run
record, no migration, and on a fresh machine neither the data directory nor the database.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..config import Settings
from ..models import CommandResult, StageResult
from ..providers.http.limiter import WINDOWS
from ..stages.plan import FetchPlan

log = logging.getLogger("stockpipe")
PRICES = "prices_daily"



def _vendor(provider: str) -> Any:
    """The built-in vendor's declaration (providers/vendor.Vendor); None for demo, csv and others."""
    from ..providers import registry

    if provider not in registry.VENDORS:
        return None
    return importlib.import_module(f"{registry.__package__}.{provider}").VENDOR


def limits(settings: Settings, provider: str) -> dict[str, int | None]:
    """The provider's rate limits: its vendor's published ones under the settings' overrides
    (none for the offline providers)."""
    vendor = _vendor(provider)
    if vendor is None:
        return dict.fromkeys(WINDOWS)
    options = settings.provider_options.get(provider, {})
    return {k: options.get(k, vendor.limits.get(k)) for k in WINDOWS}


def daily_limit(settings: Settings, provider: str) -> int | None:
    """The provider's daily quota (None: none known)."""
    return limits(settings, provider)["calls_per_day"]


@dataclass(frozen=True)
class Forecast:
    """One provider's share of a plan."""

    provider: str
    modes: Mapping[str, int]  # bulk, incremental, refetch, skipped (symbols)
    calls: int
    cost: int  # quota units the calls spend
    quota_left: int | None  # None: no daily quota
    affordable: int  # calls the quota lets through today
    seconds: float  # projected duration of the affordable calls under the rate limits
    finish: dt.datetime

    def line(self) -> str:
        """`eodhd: 21817 call(s) (bulk 0, incremental 21817, refetch 0; 3 skipped), quota cost 21817 of
        100000 left, finish by 2026-11-23T23:22:00+00:00 (21 min) under its rate limits`"""
        modes = ", ".join(f"{k} {self.modes.get(k, 0)}" for k in ("bulk", "incremental", "refetch"))
        skipped = f"; {self.modes['skipped']} skipped" if self.modes.get("skipped") else ""
        left = "no daily quota" if self.quota_left is None else f"{self.quota_left} left today"
        over = (f"; only {self.affordable} fit in today's quota, {self.calls - self.affordable} deferred"
                if self.affordable < self.calls else "")
        return (f"{self.provider}: {self.calls} call(s) ({modes}{skipped}), quota cost {self.cost} ({left}){over}, "
                f"finish by {self.finish.isoformat(timespec='seconds')} ({_duration(self.seconds)}) under its rate limits")

    def document(self) -> dict[str, Any]:
        return {"provider": self.provider, "modes": dict(self.modes), "calls": self.calls, "quota_cost": self.cost,
                "quota_left": self.quota_left, "affordable": self.affordable, "seconds": round(self.seconds, 3),
                "finish": self.finish.isoformat()}


def forecast(settings: Settings, provider: str, modes: Mapping[str, int], quota_left: int | None,
             now: dt.datetime) -> Forecast:
    """The cost and projected finish of the plan's calls on `provider` (pure)."""
    calls = sum(modes.get(k, 0) for k in ("bulk", "incremental", "refetch"))
    affordable = calls if quota_left is None else min(calls, quota_left)
    seconds = duration(affordable, limits(settings, provider))
    return Forecast(provider, dict(modes), calls, calls, quota_left, affordable, seconds,
                    now + dt.timedelta(seconds=seconds))


def duration(calls: int, limits: Mapping[str, int | None]) -> float:
    """Seconds `calls` calls take under `limits` (module docstring): the tightest window decides."""
    if calls <= 1:
        return 0.0
    waits = [math.floor((calls - 1) / limit) * WINDOWS[name] for name, limit in limits.items() if limit]
    return float(max(waits, default=0))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_only(settings: Settings, command: str, start: dt.date | None, end: dt.date | None,
              clock: Callable[[], dt.datetime] | None = None) -> CommandResult:
    """The plan of a fetch (or of `run`'s fetch) and its forecast, writing nothing.

    Raises:
        ConfigError: the warehouse is behind its migrations (a dry run migrates nothing).
    """
    from .. import calendars

    now = (clock or calendars.utcnow)()
    plan, left = dry_plan(settings, start, end, now)
    provider = (settings.providers or (settings.provider,))[0]
    seen = forecast(settings, provider, plan.modes(), left, now)
    counts = {"planned": len(plan.tasks), "skipped": len(plan.current), **plan_counts(plan), "api_calls": seen.calls}
    stage = StageResult("plan", 0, counts, message=seen.line())
    chain = list(settings.providers or (settings.provider,))
    extra = {"dry_run": True, "providers": [seen.document()], "chain": chain,
             "plan": [{"symbol": t.symbol, "mode": t.mode, "start": t.start.isoformat(), "end": t.end.isoformat()}
                      for t in plan.tasks] + [{"symbol": s, "mode": "skipped"} for s in plan.skipped]}
    return CommandResult(command, "", 0, (stage,), now, now, seen.line(), extra)


# ------------------------------------------------------------- the plan, read and announced


def restate_sessions(settings, provider: str) -> int:
    """The restate window for `provider`: none for a vendor of whose daily answer only the newest
    bar is kept (Finnhub, Stooq: the older bars come adjusted, so re-reading them would only
    add `adjusted_only` rejects)."""
    from ..providers.basis import UNREPORTED

    vendor = _vendor(provider)
    return 0 if vendor is not None and vendor.adjusted == UNREPORTED else settings.restate_sessions


def quota_left(conn, settings, provider: str, now: dt.datetime) -> int | None:
    """Calls left in `provider`'s quota day (the ledger; None: no daily quota)."""
    from ..storage import monitoring

    window = next(iter(monitoring.quotas(conn, now, [provider])), None)
    if window is not None and window.limit is not None:
        return window.remaining
    limit = daily_limit(settings, provider)
    return None if limit is None else max(0, limit - (window.calls if window else 0))


def announce(settings, provider: str, plan: FetchPlan, quota_left: int | None, now: dt.datetime) -> None:
    """The plan's line (what `fetch --dry-run` prints) at the start of a real fetch, and a
    warning for the symbols skipped after failing too often."""
    log.info("plan: %s", forecast(settings, provider, plan.modes(), quota_left, now).line())
    if plan.skipped:
        log.warning("%d symbol(s) skipped after %d failed fetches in a row (first %s): "
                    "`stockpipe reset SYMBOL` or `stockpipe reset --all-skipped` to fetch them again",
                    len(plan.skipped), settings.max_consecutive_failures, plan.skipped[0])


def dry_plan(settings, start: dt.date | None, end: dt.date | None, now: dt.datetime) -> tuple[FetchPlan, int | None]:
    """The plan a fetch would make now and the first provider's quota left, writing nothing
    (no reconciling with the lake, no lock, no migration, no database created).

    Raises:
        ConfigError: the warehouse is behind its migrations.
    """
    from .. import calendars
    from ..config import normalize_symbol
    from ..errors import ConfigError
    from ..providers import registry as providers
    from ..shards import select
    from ..stages.plan import EARLIEST, plan_fetch
    from ..storage import state, warehouse
    from .reading import sqlite_file_missing

    exchange_of = calendars.exchange_resolver(settings.exchanges)
    name = (settings.providers or (settings.provider,))[0]
    symbols = select(settings.shard, settings.symbols)
    if name == "csv":  # a file source: everything its files hold, each a first import
        provider = providers.create(name, settings, calendars.utcnow)
        try:
            listed = [normalize_symbol(s, f"the symbols {name} listed") for s in provider.symbols() or ()]
        finally:
            provider.close()
        chosen = symbols if settings.universe_source == "command line" else select(settings.shard, listed)
        return plan_fetch(chosen, {}, now, settings.history_days, exchange_of, start or EARLIEST, end), None
    known, left = {}, daily_limit(settings, name)
    if sqlite_file_missing(settings.database_url) is None:
        engine = warehouse.create(settings.database_url)
        warehouse.check_reachable(engine)
        current, head = warehouse.current_revision(engine), warehouse.head_revision()
        if current is not None and current != head:
            raise ConfigError(f"the warehouse is at {current}, newest is {head}: a dry run migrates nothing, "
                              "so run `stockpipe db upgrade` first")
        if current is not None:
            with engine.connect() as conn:
                known = state.read_states(conn, PRICES, symbols)
                left = quota_left(conn, settings, name, now)
    plan = plan_fetch(symbols, known, now, settings.history_days, exchange_of, start, end,
                      restate_sessions(settings, name), settings.max_consecutive_failures)
    return plan, left


def plan_counts(plan: FetchPlan) -> dict[str, int]:
    """The plan's modes as fetch counts; `skipped_failing` (fetch's `skipped` counts the
    symbols already up to date) the symbols failed `max_consecutive_failures` times in a row."""
    modes = plan.modes()
    return {"bulk": modes["bulk"], "incremental": modes["incremental"], "refetch": modes["refetch"],
            "skipped_failing": modes["skipped"]}
