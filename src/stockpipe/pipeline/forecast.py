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
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..config import Settings
from ..models import CommandResult, StageResult

WINDOWS = {"calls_per_second": 1, "calls_per_minute": 60, "calls_per_hour": 3600, "calls_per_day": 86400}


def limits(settings: Settings, provider: str) -> dict[str, int | None]:
    """The provider's rate limits: its vendor's published ones under the settings' overrides
    (none for the offline providers)."""
    from ..providers import registry

    if provider not in registry.VENDORS:
        return dict.fromkeys(WINDOWS)
    import importlib

    vendor = importlib.import_module(f"{registry.__package__}.{provider}").VENDOR
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
    from .daily import dry_plan, plan_counts

    now = (clock or calendars.utcnow)()
    plan, quota_left = dry_plan(settings, start, end, now)
    provider = (settings.providers or (settings.provider,))[0]
    modes = plan.modes()
    seen = forecast(settings, provider, modes, quota_left, now)
    counts = {"planned": len(plan.tasks), "skipped": len(plan.current), **plan_counts(plan), "api_calls": seen.calls}
    stage = StageResult("plan", 0, counts, message=seen.line())
    chain = list(settings.providers or (settings.provider,))
    extra = {"dry_run": True, "providers": [seen.document()], "chain": chain,
             "plan": [{"symbol": t.symbol, "mode": t.mode, "start": t.start.isoformat(), "end": t.end.isoformat()}
                      for t in plan.tasks] + [{"symbol": s, "mode": "skipped"} for s in plan.skipped]}
    return CommandResult(command, "", 0, (stage,), now, now, seen.line(), extra)
