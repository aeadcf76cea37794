"""The client's own rate limits: sliding windows per second/minute/hour/day, exact as the
vendor counts them (`RateLimiter`), and the worker count they allow (`concurrency_for`)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable, Mapping

from ...errors import ConfigError, RateLimitedError

WINDOWS = {"calls_per_second": 1.0, "calls_per_minute": 60.0, "calls_per_hour": 3600.0, "calls_per_day": 86400.0}


class RateLimiter:
    """Sliding-window limits (calls per window), thread-safe, as the vendor counts them.

    A call holds a slot from `begin` until `Slot.settle`, which the client calls when the
    response's headers arrive (or the attempt fails): by then the vendor has certainly
    seen the request, and seen it no earlier than `begin`. The slot counts in every window
    while in flight, and afterwards until `window + margin` seconds past its settle time.
    A call may begin when fewer than `limit` slots count in each window. Hence, in the
    vendor's clock, no window ever holds more than `limit` arrivals: take the last of any
    `limit + 1` of them to begin; the other `limit` began earlier and arrived less than a
    window before it began, so they were still in flight or settled less than a window
    before, and it could not begin. The cost is one time-to-first-byte per window (a few
    ms here, ~0.3% of a real 60 s window at 200 ms), where stamping at `begin` would need
    a margin as large as the worst delay before the request reaches the vendor (GIL, the
    kernel, a connect) and would still break the limit past it.

    `margin` (seconds, default none) is added to every window for a vendor whose counter
    is known to lag. A wait longer than `max_block` raises RateLimitedError instead (an
    hourly or daily window is better deferred to the next run than slept through).
    """

    IN_FLIGHT_POLL = 1.0  # seconds between re-checks while only calls in flight block

    def __init__(self, limits: Mapping[str, int | None], name: str = "provider", max_block: float = 300.0,
                 margin: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        unknown = set(limits) - set(WINDOWS)
        if unknown:
            raise ConfigError(f"unknown rate limit {sorted(unknown)} for {name}: use {', '.join(WINDOWS)}")
        self._windows = [(WINDOWS[k] + margin, int(v), deque()) for k, v in limits.items() if v]
        if any(limit < 1 for _, limit, _ in self._windows):
            raise ConfigError(f"rate limits for {name} must be at least 1 call per window")
        self._name, self._max_block = name, max_block
        self._clock, self._sleep = clock, sleep
        self._changed = threading.Condition()
        self._in_flight = 0

    def begin(self) -> "Slot":
        """Block until one more call fits in every window; hold its slot until `settle`.

        Raises:
            RateLimitedError: the wait would exceed `max_block`.
        """
        if not self._windows:
            return Slot(None)
        while True:
            with self._changed:
                now = self._clock()
                wait = self._wait(now)
                if wait <= 0:
                    self._in_flight += 1
                    return Slot(self)
                if wait == math.inf:  # only calls still in flight stand in the way
                    self._changed.wait(self.IN_FLIGHT_POLL)
                    continue
            if wait > self._max_block:
                raise RateLimitedError(f"{self._name}: the configured rate limit allows the next call in "
                                       f"{wait:.0f} s: deferring the rest to the next run", retry_after=wait)
            self._sleep(max(wait, 0.001))  # never a sub-ulp sleep that leaves a clock where it was

    def _settle(self) -> None:
        with self._changed:
            now = self._clock()
            self._in_flight -= 1
            for _, _, calls in self._windows:
                calls.append(now)  # settle times only grow: each deque stays sorted
            self._changed.notify_all()

    def _wait(self, now: float) -> float:
        """Seconds until one more call fits everywhere; inf while calls in flight fill a window."""
        wait = 0.0
        for seconds, limit, calls in self._windows:
            while calls and calls[0] <= now - seconds:
                calls.popleft()
            leave = len(calls) + self._in_flight - limit + 1  # settled calls that must leave first
            if leave > len(calls):
                return math.inf
            if leave > 0:
                wait = max(wait, calls[leave - 1] + seconds - now)
        return wait


class Slot:
    """One call's place in the limiter's windows; `settle` (idempotent) stamps it."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: RateLimiter | None) -> None:
        self._limiter = limiter

    def settle(self) -> None:
        """The vendor has seen the call (its answer began, or the attempt ended)."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._settle()  # noqa: SLF001 - the slot is the limiter's own handle


def concurrency_for(limits: Mapping[str, int | None]) -> int:
    """Worker threads for a provider: enough to saturate the rate limit, at most 8."""
    return max(1, min(8, limits.get("calls_per_second") or 4))


def projected_seconds(limits: Mapping[str, int | None], calls: int) -> float:
    """Seconds `calls` take at best under the sliding-window `limits` (the first window's
    worth goes at once, each further one a window later); 0 without limits. A daily quota
    kept by the ledger is not in `limits`: see `projection`."""
    if calls <= 0:
        return 0.0
    return max((math.ceil(calls / limit) - 1) * WINDOWS[name] for name, limit in limits.items() if limit) \
        if any(limits.values()) else 0.0


def projection(limits: Mapping[str, int | None], calls: int, day_left: int | None = None) -> str:
    """One line for the start of a fetch: calls planned, the limits, the projected finish,
    and how much of the day's quota they take (`day_left`: calls the ledger has left)."""
    shown = ", ".join(f"{limit}/{name.rsplit('_', 1)[1]}" for name, limit in limits.items() if limit) or "no limit"
    fits = calls if day_left is None else min(calls, day_left)
    seconds = projected_seconds(limits, fits)
    line = f"{calls} call(s) planned at {shown}: projected finish in {_duration(seconds)}"
    if day_left is not None:
        line += (f"; {day_left} left of the day's quota" if fits == calls else
                 f"; the day's quota has {day_left} left: {calls - day_left} deferred to the next run")
    return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
