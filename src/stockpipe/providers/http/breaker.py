"""The client's circuit breaker: stop calling a vendor that is down or hangs.

A refused connection or a read that times out is retried (retry.py), which is right for a
blip and ruinous for an outage: five attempts a symbol, ~10 s each refused and ~2.5 min
each hung, times every symbol of the run. So every attempt that got no answer at all
(connection refused or reset, connect or read timeout, a body that never ends) counts,
across symbols and retries, and any answer (even a 5xx: the server is up) resets the
count; at `limit` in a row the breaker opens for the rest of the run: the attempt that
reached it ends with ProviderUnreachableError ("<provider> unreachable at <host>: ...",
exit 5, StopsProvider), and every later call is refused before it is sent, as not asked,
so the fetch loop defers the remaining symbols (they come first next run) or hands them to
the next provider of a failover chain.
"""

from __future__ import annotations

import threading

from ...errors import NotAsked, ProviderUnreachableError


class UnreachableNotAskedError(NotAsked, ProviderUnreachableError):
    """The breaker was already open: the call was not sent."""


class Breaker:
    """Counts consecutive attempts without an answer; thread-safe (one per client)."""

    def __init__(self, name: str, host: str, limit: int = 3) -> None:
        self.name, self.host, self.limit = name, host, max(1, int(limit))
        self._lock = threading.Lock()
        self._failures = 0
        self._open: str | None = None  # the message, once open

    def check(self) -> None:
        """Before an attempt.

        Raises:
            UnreachableNotAskedError: the breaker is open: nothing is sent.
        """
        if self._open is not None:
            raise UnreachableNotAskedError(self._open)

    def answered(self) -> None:
        """The vendor answered something: it is up."""
        with self._lock:
            self._failures = 0

    def failed(self, detail: str) -> ProviderUnreachableError | None:
        """An attempt got no answer; the error that ends the call when this one opens the
        breaker (or found it open), else None (the attempt may be retried)."""
        with self._lock:
            self._failures += 1
            if self._open is None and self._failures >= self.limit:
                self._open = (f"{self.name} unreachable at {self.host}: {detail} ({self._failures} attempts in a row "
                              "without an answer, across symbols): no further calls this run; the remaining "
                              "symbols are deferred to the next run (or go to the next --provider)")
            return ProviderUnreachableError(self._open) if self._open is not None else None
