"""The one retry policy for HTTP (tenacity): what is retried, how long to wait, and the
error a call ends with when the retries run out.

Retried: timeouts, connection errors, truncated bodies, 429, 5xx, and a 200 the vendor's
classifier calls RATE_LIMITED (`Retryable`), with jittered exponential backoff or the
vendor's Retry-After (wire.Response.retry_after) up to `max_wait`. Never retried: other
4xx, a body that failed to parse, a Retry-After over the cap (deferred to the next run).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

import tenacity

from ...errors import RateLimitedError, StockpipeError, TransportError
from ...redaction import redact

log = logging.getLogger(__package__)
T = TypeVar("T")


class Retryable(Exception):
    """One attempt failed in a way the policy may retry (never leaves the http package).

    kind: "throttled" (429 or RATE_LIMITED), "server" (5xx), "timeout" or "transport".
    """

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.retry_after = kind, detail, retry_after


class RetryPolicy:
    """At most `max_attempts` attempts, waits capped at `max_wait` seconds."""

    def __init__(self, name: str, max_attempts: int = 5, max_wait: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name, self.max_attempts, self.max_wait, self._sleep = name, max_attempts, max_wait, sleep
        self._backoff = tenacity.wait_exponential_jitter(multiplier=1, max=max_wait, jitter=1)

    def run(self, attempt: Callable[[], T], attempts: int | None = None) -> T:
        """`attempt()` until it returns, raises something not Retryable, or the policy gives up
        (after `attempts`, default `max_attempts`).

        Raises:
            RateLimitedError: still throttled after the retries, or told to wait over the cap.
            TransportError: timeouts, connection errors or 5xx after the retries.
        """
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts or self.max_attempts), wait=self._wait,
            retry=tenacity.retry_if_exception(self._should_retry), sleep=self._sleep,
            before_sleep=self._log_retry, reraise=True,
        )
        failure: Retryable | None = None
        try:
            return retrying(attempt)
        except Retryable as exc:
            failure = exc
        # outside the except: no httpx error is chained to it
        raise self._final_error(failure, attempts or self.max_attempts)

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, Retryable):
            return False
        return exc.retry_after is None or exc.retry_after <= self.max_wait

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_wait)
        return min(self._backoff(state), self.max_wait)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; attempt %d of %d in %.1f s", redact(str(exc)), state.attempt_number + 1,
                    self.max_attempts, wait)

    def _final_error(self, failure: Retryable, tried: int) -> StockpipeError:
        attempts = f"after {tried} attempt{'s' if tried > 1 else ''}"
        if failure.retry_after is not None and failure.retry_after > self.max_wait:
            return RateLimitedError(f"{failure.detail}: asked to wait {failure.retry_after:.0f} s, over the "
                                    f"{self.max_wait:.0f} s cap: deferring the rest to the next run",
                                    retry_after=failure.retry_after)
        if failure.kind == "throttled":
            return RateLimitedError(f"{failure.detail} {attempts}: lower "
                                    f"STOCKPIPE_{self.name.upper()}_CALLS_PER_MINUTE or retry later",
                                    retry_after=failure.retry_after)
        return TransportError(f"{failure.detail} {attempts}: {self.name} is unreachable or failing; "
                              "the next run retries")
