"""The one HTTP module: timeouts, rate limits, the quota ledger, retries, secret redaction.

Vendor modules are pure (wire.py): they build `wire.Request`s without the key and parse
`wire.Response`s. `VendorClient.call` does the I/O for one provider:

1. waits for the in-memory rate limiter (sliding windows per second/minute/hour/day),
   whose slot the call holds until its answer begins (`RateLimiter`: exact as the vendor counts);
2. spends the call in the warehouse quota ledger (`ledger.Ledger`) before sending it, so
   a crash never loses a call, or raises QuotaExhaustedError when the day's quota is spent;
3. sends with the key added (query parameter or header), reading the body under a total
   deadline (a read timeout between bytes cannot stop a body that trickles forever; one
   watchdog thread per client cuts the socket of a body still arriving at its deadline);
4. retries with tenacity what is transient (timeouts, connection errors, truncated bodies,
   429, 5xx, and a 200 that `classify` calls RATE_LIMITED), with jittered exponential
   backoff or the vendor's Retry-After; never other 4xx, never a body that failed to parse;
5. returns the final `wire.Response` for the vendor module to parse.

Secrets: every message and log line goes through `redact`, which also runs as a logging
filter on httpx's and httpcore's own loggers (httpx logs the full URL, query included).
Errors are raised outside `except` blocks, so no httpx exception (which holds the URL)
is chained to them.

Concurrency: `fetch_many` runs calls on a thread pool sized from the limits; the shared
rate limiter and ledger are thread-safe, so the workers never exceed a published limit.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import re
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterable, Mapping, TypeVar
from urllib.parse import quote, quote_plus

import httpx
import tenacity

from .. import errors
from .wire import Outcome, Parsed, Request, Response

if TYPE_CHECKING:
    from .ledger import Ledger

log = logging.getLogger(__name__)

WINDOWS = {"calls_per_second": 1.0, "calls_per_minute": 60.0, "calls_per_hour": 3600.0, "calls_per_day": 86400.0}
MAX_BODY_BYTES = 64 * 1024 * 1024

# ----------------------------------------------------------------------- redaction

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_QUERY_SECRET = re.compile(r"(?i)\b(apikey|api_key|api_token|access_token|token)=[^&\s\"'#<>]+")
_HEADER_SECRET = re.compile(r"(?i)\b(authorization|x-[a-z-]*token|x-api-key)(['\"]?\s*[:=,]\s*['\"]?)"
                            r"(?:(?:bearer|token|basic)\s+)?[^\s'\",)]+")


def register_secret(secret: str) -> None:
    """Make `redact` remove `secret` (raw and URL-encoded) everywhere from now on."""
    if not secret:
        return
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    with _SECRETS_LOCK:
        _SECRETS.update(forms)


def redact(text: str) -> str:
    """`text` without any registered key and without the value of any key-like parameter."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _QUERY_SECRET.sub(r"\1=***", text)
    return _HEADER_SECRET.sub(r"\1\2***", text)


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message (and traceback text) through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record must not leak its raw args
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text)
        return True


# Filters on a logger see only the records that logger itself creates, so each of
# httpx's and httpcore's module loggers gets one.
_FILTERED_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                     "httpcore.proxy", "httpcore.socks", __name__)
_FILTER = RedactingFilter()
for _name in _FILTERED_LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)

# -------------------------------------------------------------------------- errors


class _Redacted:
    """Mixin: the message passes through `redact` however the error is built."""

    def __init__(self, message: str = "", *args: Any) -> None:
        super().__init__(redact(message), *args)  # type: ignore[call-arg] - cooperative with Exception


class AuthFailedError(_Redacted, errors.ConfigError):
    """The provider refused the key, or none is set (exit 4): stop the provider."""

    stops_provider = True


class QuotaExhaustedError(_Redacted, errors.ProviderError):
    """The daily/plan quota is spent: stop the provider until `resets_at`."""

    stops_provider = True

    def __init__(self, message: str, resets_at: dt.datetime | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class RateLimitedError(_Redacted, errors.ProviderError):
    """Still throttled after the retries, or asked to wait longer than the cap.

    It stops the provider for the run: a throttle that outlasts the retries is an IP block
    or an hourly allocation in practice (PROVIDERS.md); the next run takes the rest.
    """

    stops_provider = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransportError(_Redacted, errors.ProviderError):
    """Timeouts, connection errors, truncated or endless bodies, 5xx: after the retries."""

    stops_provider = False


class ProtocolError(_Redacted, errors.ProviderError):
    """A body that makes no sense (or is too large): log it, store nothing."""

    stops_provider = False


class NotEntitledError(_Redacted, errors.ProviderError):
    """The plan does not cover this endpoint/parameter: permanent for that combination.

    It stops the provider's calls to that endpoint for the run (a fetch uses one endpoint,
    so: the provider); with failover the next provider serves the rest.
    """

    transient = False
    stops_provider = True


def error_for(outcome: Outcome, provider: str, what: str, message: str = "") -> errors.StockpipeError | None:
    """The error a vendor module raises for `outcome` (None for OK and EMPTY).

    `what` names the call ("AAPL daily"); `message` is the vendor's own short words.
    """
    said = f" ({message})" if message else ""
    env = f"STOCKPIPE_{provider.upper()}"
    return {
        Outcome.AUTH_FAILED: lambda: AuthFailedError(f"{provider} refused the API key for {what}{said}: "
                                                     f"check {env}_API_KEY"),
        Outcome.QUOTA_EXHAUSTED: lambda: QuotaExhaustedError(f"{provider} quota spent at {what}{said}: "
                                                             "the next run takes the remaining symbols"),
        Outcome.RATE_LIMITED: lambda: RateLimitedError(f"{provider} is throttling {what}{said}: "
                                                       f"lower {env}_CALLS_PER_MINUTE or retry later"),
        Outcome.NOT_ENTITLED: lambda: NotEntitledError(f"{provider} plan does not cover {what}{said}: "
                                                       "use another endpoint or provider"),
        Outcome.SYMBOL_NOT_FOUND: lambda: errors.SymbolNotFoundError(redact(f"{provider} does not know {what}{said}")),
        Outcome.PROTOCOL_ERROR: lambda: ProtocolError(f"{provider} sent an unreadable answer for {what}{said}"),
    }.get(outcome, lambda: None)()


# -------------------------------------------------------------------- rate limiter


class RateLimiter:
    """Sliding-window limits (calls per window), thread-safe, as the vendor counts them.

    A call holds a slot from `begin` until `_Slot.settle`, which the client calls when the
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
            raise errors.ConfigError(f"unknown rate limit {sorted(unknown)} for {name}: use {', '.join(WINDOWS)}")
        self._windows = [(WINDOWS[k] + margin, int(v), deque()) for k, v in limits.items() if v]
        if any(limit < 1 for _, limit, _ in self._windows):
            raise errors.ConfigError(f"rate limits for {name} must be at least 1 call per window")
        self._name, self._max_block = name, max_block
        self._clock, self._sleep = clock, sleep
        self._changed = threading.Condition()
        self._in_flight = 0

    def acquire(self) -> None:
        """Block until one more call fits in every window, then count it as made now.

        Raises:
            RateLimitedError: the wait would exceed `max_block`.
        """
        self.begin().settle()

    def begin(self) -> "_Slot":
        """Block until one more call fits in every window; hold its slot until `settle`.

        Raises:
            RateLimitedError: the wait would exceed `max_block`.
        """
        if not self._windows:
            return _Slot(None)
        while True:
            with self._changed:
                now = self._clock()
                wait = self._wait(now)
                if wait <= 0:
                    self._in_flight += 1
                    return _Slot(self)
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


class _Slot:
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


# -------------------------------------------------------------------------- client


class _Retry(Exception):
    """Internal: one attempt failed in a way the policy may retry (never leaves this module)."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.retry_after, self.status = kind, detail, retry_after, status


class _Deadline(Exception):
    """Internal: the body did not finish within the total deadline."""


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class FetchResult(Generic[T, R]):
    """One item of `fetch_many`: its value, or the error that stopped it."""

    item: T
    value: R | None = None
    error: BaseException | None = None


class VendorClient:
    """One per provider: a keep-alive httpx.Client, its rate limiter, ledger and retry policy."""

    def __init__(self, name: str, base_url: str, key: str | None = None, key_param: str | None = None,
                 key_header: tuple[str, str] | None = None, default_headers: Mapping[str, str] | None = None,
                 limits: Mapping[str, int | None] | None = None, ledger: "Ledger | None" = None,
                 timeout_connect: float = 10.0, timeout_read: float = 30.0, timeout_total: float = 60.0,
                 max_attempts: int = 5, max_wait: float = 120.0, max_block: float = 300.0, margin: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], dt.datetime] = _utcnow, transport: httpx.BaseTransport | None = None) -> None:
        self.name = name
        self._key = key.reveal() if hasattr(key, "reveal") else (str(key) if key else None)
        register_secret(self._key or "")
        self._key_param, self._key_header = key_param, key_header
        self._ledger, self._sleep, self._now = ledger, sleep, now
        self._max_attempts, self._max_wait, self._timeout_total = max_attempts, max_wait, timeout_total
        self.limits = dict(limits or {})
        self.concurrency = concurrency_for(self.limits)
        self.limiter = RateLimiter(self.limits, name, max_block=max_block, margin=margin, clock=clock, sleep=sleep)
        self._backoff = tenacity.wait_exponential_jitter(multiplier=1, max=max_wait, jitter=1)
        self._watchdog = _Watchdog(f"deadline-{name}")
        self._http = httpx.Client(
            base_url=base_url, headers=dict(default_headers or {}), follow_redirects=True, transport=transport,
            timeout=httpx.Timeout(connect=timeout_connect, read=min(timeout_read, timeout_total),
                                  write=timeout_read, pool=timeout_total),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )

    # -- public

    def call(self, request: Request, classify: Callable[[Response], Outcome | Parsed] | None = None) -> Response:
        """Send `request` under the limits and retry policy; return the final response.

        `classify` (the vendor's parse, or a cheap check) lets a 200 that means "slow down"
        be retried (RATE_LIMITED) and a "quota spent" answer mark the ledger. Other 4xx
        answers come back as they are, for the vendor module to turn into an outcome.

        Raises:
            AuthFailedError: the provider needs a key and none is configured.
            QuotaExhaustedError: the ledger has no calls left, or the vendor says so.
            RateLimitedError: still throttled after the retries, or told to wait over the cap.
            TransportError: timeouts, connection errors or 5xx after the retries; an endless body.
            ProtocolError: a body that cannot be read (too large, bad encoding).
            errors.ConfigError: the base URL is not usable.
        """
        what = f"{self.name} {request.endpoint} {request.path}"
        params, headers = self._with_key(request, what)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._max_attempts), wait=self._wait,
            retry=tenacity.retry_if_exception(self._should_retry), sleep=self._sleep,
            before_sleep=self._log_retry, reraise=True,
        )
        failure: _Retry | None = None
        try:
            return retrying(self._attempt, request, params, headers, classify, what)
        except _Retry as exc:
            failure = exc
        raise self._final_error(failure, what)

    def fetch_many(self, items: Iterable[T], fn: Callable[[T], R],
                   max_workers: int | None = None) -> list[FetchResult[T, R]]:
        """Run `fn(item)` for every item on a thread pool sized from the limits, results in order.

        One item's error never stops the others, except an error that stops the provider
        (bad key, quota spent): items not yet started then get that error without a call.
        """
        stop: list[BaseException] = []

        def run(item: T) -> FetchResult[T, R]:
            if stop:
                return FetchResult(item, error=stop[0])
            try:
                return FetchResult(item, value=fn(item))
            except errors.StockpipeError as exc:
                if getattr(exc, "stops_provider", False):
                    stop.append(exc)
                return FetchResult(item, error=exc)

        with ThreadPoolExecutor(max_workers=max_workers or self.concurrency,
                                thread_name_prefix=f"fetch-{self.name}") as pool:
            return list(pool.map(run, list(items)))

    def close(self) -> None:
        self._http.close()
        self._watchdog.stop()

    def __enter__(self) -> "VendorClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one attempt

    def _with_key(self, request: Request, what: str) -> tuple[dict[str, str], dict[str, str]]:
        params, headers = dict(request.params), dict(request.headers)
        if not (self._key_param or self._key_header):
            return params, headers
        if not self._key:
            raise AuthFailedError(f"{what} needs an API key and none is set: "
                                  f"set STOCKPIPE_{self.name.upper()}_API_KEY or _API_KEY_FILE")
        if self._key_param:
            params[self._key_param] = self._key
        if self._key_header:
            headers[self._key_header[0]] = self._key_header[1].format(key=self._key)
        return params, headers

    def _attempt(self, request: Request, params: dict[str, str], headers: dict[str, str],
                 classify: Callable[[Response], Outcome | Parsed] | None, what: str) -> Response:
        slot = self.limiter.begin()
        try:
            if self._ledger is not None and not self._ledger.try_spend(request.cost):
                raise QuotaExhaustedError(f"{what}: {self._ledger.describe()}", resets_at=self._ledger.resets_at())
            response = self._send(request, params, headers, what, slot)
        finally:
            slot.settle()  # at the latest: a failed attempt may still have reached the vendor
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._now())
        if response.status >= 500:  # whatever the body says (often an HTML error page)
            raise _Retry("server", f"{what} answered {response.status}", retry_after, response.status)
        verdict = self._classify(classify, response)
        outcome = verdict.outcome if isinstance(verdict, Parsed) else verdict
        if outcome is Outcome.QUOTA_EXHAUSTED:  # e.g. Tiingo's monthly allocation, also a 429
            raise self._quota_spent(what, response)
        if retry_after is None and isinstance(verdict, Parsed):
            retry_after = verdict.retry_after
        if response.status == 429 or outcome is Outcome.RATE_LIMITED:
            raise _Retry("throttled", f"{what} answered {response.status} (rate limited)", retry_after, response.status)
        return response

    @staticmethod
    def _classify(classify: Callable[[Response], Outcome | Parsed] | None,
                  response: Response) -> Outcome | Parsed | None:
        """The vendor's verdict; a body it cannot read is not retried, except on a 429."""
        if classify is None:
            return None
        try:
            return classify(response)
        except Exception:
            if response.status == 429:  # "Too Many Requests" in plain text: throttling all the same
                return None
            raise

    def _quota_spent(self, what: str, response: Response) -> QuotaExhaustedError:
        resets_at = None
        if self._ledger is not None:
            self._ledger.mark_exhausted()
            resets_at = self._ledger.resets_at()
            return QuotaExhaustedError(f"{what} answered {response.status}: {self._ledger.describe()}", resets_at)
        return QuotaExhaustedError(f"{what} answered {response.status}: {self.name} quota spent; "
                                   "the next run takes the remaining symbols", resets_at)

    def _send(self, request: Request, params: dict[str, str], headers: dict[str, str], what: str,
              slot: "_Slot") -> Response:
        started = time.monotonic()
        failure: Exception | None = None
        try:
            response = self._receive(request, params, headers, started + self._timeout_total, slot)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            failure = errors.ConfigError(redact(f"{what}: the base URL is not usable ({exc}): check "
                                                f"STOCKPIPE_{self.name.upper()}_BASE_URL"))
        except _Deadline:
            failure = TransportError(f"{what}: the response did not finish within {self._timeout_total:g} s "
                                     "(a body that never ends): not retried; try again later")
        except httpx.TimeoutException as exc:
            failure = _Retry("timeout", f"{what}: {type(exc).__name__} ({redact(str(exc)) or 'no detail'})")
        except httpx.TransportError as exc:
            failure = _Retry("transport", f"{what}: {type(exc).__name__} ({redact(str(exc)) or 'no detail'})")
        except httpx.DecodingError as exc:
            failure = ProtocolError(f"{what}: the body could not be decoded ({type(exc).__name__}): not retried")
        if failure is not None:
            raise failure
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %d (%d bytes) in %.2f s", redact(what), response.status, len(response.body),
                      time.monotonic() - started)
        return response

    def _receive(self, request: Request, params: dict[str, str], headers: dict[str, str], deadline: float,
                 slot: "_Slot") -> Response:
        """GET and read the whole body, cutting the socket when the total deadline passes."""
        with self._http.stream("GET", request.path, params=params, headers=headers) as reply:
            slot.settle()  # the answer has begun: the vendor has counted the request
            watch = self._watchdog.watch(reply, deadline)
            chunks, size = [], 0
            try:
                for chunk in reply.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if time.monotonic() > deadline:
                        raise _Deadline()
                    if size > MAX_BODY_BYTES:
                        raise ProtocolError(f"{self.name} {request.endpoint}: body larger than "
                                            f"{MAX_BODY_BYTES // 2**20} MiB: not stored")
            except httpx.TransportError:
                if self._watchdog.cancel(watch):
                    raise _Deadline() from None
                raise
            finally:
                self._watchdog.cancel(watch)
            body = self._scrub(b"".join(chunks))
            head = {k.lower(): redact(v) for k, v in reply.headers.items()}
            return Response(status=reply.status_code, headers=head, body=body)

    def _scrub(self, body: bytes) -> bytes:
        """A vendor that echoes the key in its body must not put it in the raw archive."""
        if not self._key:
            return body
        for form in {self._key, quote(self._key, safe=""), quote_plus(self._key)}:
            body = body.replace(form.encode(), b"***")
        return body

    # -- retry policy

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, _Retry):
            return False
        return exc.retry_after is None or exc.retry_after <= self._max_wait

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.retry_after is not None:
            return min(exc.retry_after, self._max_wait)
        return min(self._backoff(state), self._max_wait)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; attempt %d of %d in %.1f s", redact(str(exc)), state.attempt_number + 1,
                    self._max_attempts, wait)

    def _final_error(self, failure: _Retry, what: str) -> errors.StockpipeError:
        attempts = f"after {self._max_attempts} attempts"
        if failure.retry_after is not None and failure.retry_after > self._max_wait:
            return RateLimitedError(f"{failure.detail}: asked to wait {failure.retry_after:.0f} s, over the "
                                    f"{self._max_wait:.0f} s cap: deferring the rest to the next run",
                                    retry_after=failure.retry_after)
        if failure.kind == "throttled":
            return RateLimitedError(f"{failure.detail} {attempts}: lower "
                                    f"STOCKPIPE_{self.name.upper()}_CALLS_PER_MINUTE or retry later",
                                    retry_after=failure.retry_after)
        return TransportError(f"{failure.detail} {attempts}: {self.name} is unreachable or failing; "
                              "the next run retries")


class _Watchdog:
    """One thread per client that shuts down the socket of a response still being read at
    its deadline (unblocking a stalled read). Replaces a threading.Timer per request, whose
    thread start cost ~0.5 ms of every call (bench/bench_fetch.py).

    The thread starts with the first watched response, sleeps until the earliest deadline
    of the responses being read (at most one per connection), and ends with `stop`.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._changed = threading.Condition()
        self._reading: dict[int, tuple[float, socket.socket]] = {}  # watch id -> (deadline, socket)
        self._fired: set[int] = set()
        self._ids = iter(range(1, 2**63))
        self._wakes_at = math.inf
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, reply: httpx.Response, deadline: float) -> int:
        """Watch `reply`'s socket until `cancel`; returns the watch id (0: nothing to watch)."""
        stream = reply.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return 0
        with self._changed:
            watch = next(self._ids)
            self._reading[watch] = (deadline, sock)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif deadline < self._wakes_at:
                self._changed.notify()
        return watch

    def cancel(self, watch: int) -> bool:
        """Stop watching; True when the deadline passed and the socket was shut down."""
        with self._changed:
            self._reading.pop(watch, None)
            if watch in self._fired:
                self._fired.discard(watch)
                return True
        return False

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while not self._stopped:
                now = time.monotonic()
                for watch, (deadline, sock) in list(self._reading.items()):
                    if deadline <= now:
                        del self._reading[watch]
                        self._fired.add(watch)
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                self._wakes_at = min((deadline for deadline, _ in self._reading.values()), default=math.inf)
                self._changed.wait(None if self._wakes_at == math.inf else self._wakes_at - now)
