"""The one HTTP client: timeouts, rate limits, the quota ledger, retries, secret redaction.

Vendor modules are pure (wire.py): they build `wire.Request`s without the key and parse
`wire.Response`s. `VendorClient.call` does the I/O for one provider:

1. waits for the in-memory rate limiter (sliding windows per second/minute/hour/day),
   whose slot the call holds until its answer begins (limiter.py: exact as the vendor counts);
2. spends the call in the warehouse quota ledger (storage/ledger.py, handed in by the
   caller) before sending it, so a crash never loses a call, or raises QuotaExhaustedError
   when the day's quota is spent;
3. sends with the key added (query parameter or header), reading the body under a total
   deadline (watchdog.py cuts the socket of a body still arriving at its deadline) and a
   size cap on the decoded bytes, inflated a step at a time (body.py: a gzip bomb stops at
   the cap); redirects are followed only on the same host; a certificate that fails
   verification is terminal (CertificateError), and nothing turns verification off;
4. retries what is transient (retry.py: timeouts, connection errors, truncated bodies, 429,
   5xx, and a 200 that `classify` calls RATE_LIMITED), with jittered exponential backoff or
   the vendor's Retry-After; never other 4xx, never a body that failed to parse;
5. returns the final `wire.Response` for the vendor module to parse.

Secrets: every error message is redacted (errors.py); log lines go through
`redaction.redact`, which also runs as a logging filter on httpx's and httpcore's own
loggers (httpx logs the full URL, query included). Errors are raised outside `except`
blocks, so no httpx exception (which holds the URL) is chained to them.

Concurrency: the caller runs calls on as many threads as `concurrency` (sized from the
limits); the shared rate limiter and ledger are thread-safe, so the workers never exceed a
published limit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Mapping

import httpx

from ...errors import (AuthFailedError, CertificateError, ConfigError, ProtocolError, QuotaExhaustedError,
                       StockpipeError, TransportError)
from ...redaction import filter_loggers, redact, register_secret, secret_forms
from ..wire import Outcome, Parsed, Request, Response
from .body import ACCEPT_ENCODING, RedirectRefused, decoded_chunks, same_origin_only, tls_failure
from .breaker import Breaker
from .limiter import RateLimiter, Slot, concurrency_for
from .retry import Retryable, RetryPolicy
from .watchdog import Watchdog

if TYPE_CHECKING:
    from ..base import QuotaLedger

log = logging.getLogger(__package__)  # "stockpipe.providers.http", for every module of the client
MAX_BODY_BYTES = 32 * 1024 * 1024  # the largest answer kept (decoded): settings.http_max_response_bytes

filter_loggers("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
               "httpcore.proxy", "httpcore.socks", __package__)


class _Deadline(Exception):
    """The body did not finish within the total deadline."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _host(base_url: str) -> str:
    """host[:port] of a base URL, for messages (never a path or a query)."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        return "?"
    return f"{url.host}:{url.port}" if url.port else url.host or "?"


class VendorClient:
    """One per provider: a keep-alive httpx.Client, its rate limiter, ledger and retry policy."""

    def __init__(self, name: str, base_url: str, key: str | None = None, key_param: str | None = None,
                 key_header: tuple[str, str] | None = None, default_headers: Mapping[str, str] | None = None,
                 limits: Mapping[str, int | None] | None = None, ledger: "QuotaLedger | None" = None,
                 timeout_connect: float = 10.0, timeout_read: float = 30.0, timeout_total: float = 60.0,
                 max_attempts: int = 5, max_wait: float = 120.0, max_block: float = 300.0, margin: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], dt.datetime] = _utcnow, transport: httpx.BaseTransport | None = None,
                 unreachable_after: int = 3, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        """Args:
            timeout_total: seconds one attempt may take, body included (watchdog.py).
            max_body_bytes: the largest body accepted, counted decoded; a larger one is a
                ProtocolError for that call, read no further and stored nowhere.
            unreachable_after: attempts in a row without an answer (across symbols) after
                which the vendor counts as down for the run (breaker.py).
        """
        self.name, self.base_url = name, base_url
        self._key = str(key) if key else None  # a config.Secret's plain text, or a str
        register_secret(self._key or "")
        self._key_param, self._key_header = key_param, key_header
        self._ledger, self._now, self._timeout_total = ledger, now, timeout_total
        self._max_body = max_body_bytes
        self.policy = RetryPolicy(name, max_attempts, max_wait, sleep)
        self.limits = dict(limits or {})
        self.concurrency = concurrency_for(self.limits)
        self.limiter = RateLimiter(self.limits, name, max_block=max_block, margin=margin, clock=clock, sleep=sleep)
        self._watchdog = Watchdog(f"deadline-{name}")
        self.breaker = Breaker(name, _host(base_url), unreachable_after)
        self._http = httpx.Client(
            base_url=base_url, headers={"Accept-Encoding": ACCEPT_ENCODING, **dict(default_headers or {})},
            follow_redirects=True, event_hooks={"response": [same_origin_only]}, transport=transport,
            timeout=httpx.Timeout(connect=timeout_connect, read=min(timeout_read, timeout_total),
                                  write=timeout_read, pool=timeout_total),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )

    # -- public

    def call(self, request: Request, classify: Callable[[Response], Outcome | Parsed] | None = None,
             attempts: int | None = None) -> Response:
        """Send `request` under the limits and retry policy; return the final response.

        `attempts` overrides the policy's (a probe tries once). `classify` (the vendor's
        parse, or a cheap check) lets a 200 that means "slow down"
        be retried (RATE_LIMITED) and a "quota spent" answer mark the ledger. Other 4xx
        answers come back as they are, for the vendor module to turn into an outcome.

        Raises:
            AuthFailedError: the provider needs a key and none is configured.
            QuotaExhaustedError: the ledger has no calls left, or the vendor says so.
            RateLimitedError: still throttled after the retries, or told to wait over the cap.
            TransportError: timeouts, connection errors or 5xx after the retries; an endless body.
            ProtocolError: a body that cannot be read (too large, bad encoding).
            ConfigError: the base URL is not usable.
            ProviderUnreachableError: attempts in a row without an answer reached the limit
                (breaker.py); its NotAsked form when the breaker was already open.

        The response's `calls`, and an error's `api_calls`, count the attempts sent (x the
        request's cost), as the quota ledger does: a failed call is a call too.
        """
        what = f"{self.name} {request.endpoint} {request.path}"
        params, headers = self._with_key(request, what)
        sent = [0]
        try:
            response = self.policy.run(lambda: self._attempt(request, params, headers, classify, what, sent), attempts)
        except StockpipeError as exc:
            exc.api_calls = sent[0] * request.cost
            raise
        return replace(response, calls=sent[0] * request.cost)

    @property
    def ledger(self) -> "QuotaLedger | None":
        """The warehouse quota ledger this client spends from (None: the in-memory day)."""
        return self._ledger

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
                 classify: Callable[[Response], Outcome | Parsed] | None, what: str, sent: list[int]) -> Response:
        self.breaker.check()
        slot = self.limiter.begin()
        try:
            if self._ledger is not None and not self._ledger.try_spend(request.cost):
                raise QuotaExhaustedError(f"{what}: {self._ledger.describe()}", resets_at=self._ledger.resets_at())
            sent[0] += 1
            response = self._send(request, params, headers, what, slot)
        finally:
            slot.settle()  # at the latest: a failed attempt may still have reached the vendor
        retry_after = response.retry_after(self._now())
        if response.status >= 500:  # whatever the body says (often an HTML error page)
            raise Retryable("server", f"{what} answered {response.status}", retry_after)
        verdict = self._classify(classify, response)
        outcome = verdict.outcome if isinstance(verdict, Parsed) else verdict
        if outcome is Outcome.QUOTA_EXHAUSTED:  # e.g. Tiingo's monthly allocation, also a 429
            raise self._quota_spent(what, response)
        if retry_after is None and isinstance(verdict, Parsed):
            retry_after = verdict.retry_after
        if response.status == 429 or outcome is Outcome.RATE_LIMITED:
            raise Retryable("throttled", f"{what} answered {response.status} (rate limited)", retry_after)
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
              slot: Slot) -> Response:
        started = time.monotonic()
        failure: Exception | None = None
        try:
            response = self._receive(request, params, headers, started + self._timeout_total, slot)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            failure = ConfigError(f"{what}: the base URL is not usable ({exc}): check "
                                  f"STOCKPIPE_{self.name.upper()}_BASE_URL")
        except RedirectRefused as exc:
            failure = ProtocolError(f"{what}: redirected to another host ({exc.target}): not followed; "
                                    f"check STOCKPIPE_{self.name.upper()}_BASE_URL")
        except _Deadline:
            failure = self.breaker.failed("a body that never ends") or TransportError(
                f"{what}: the response did not finish within {self._timeout_total:g} s "
                "(a body that never ends): not retried; try again later")
        except httpx.TimeoutException as exc:
            failure = self._no_answer("timeout", what, exc)
        except httpx.TransportError as exc:
            tls = tls_failure(exc)
            failure = self._no_answer("transport", what, exc) if tls is None else CertificateError(
                f"{what}: TLS failed for {_host(self.base_url)} ({getattr(tls, 'verify_message', None) or tls.reason}): "
                "not retried; the certificate must verify (a private CA: point SSL_CERT_FILE at its bundle)")
        except httpx.DecodingError as exc:
            failure = ProtocolError(f"{what}: the body could not be decoded ({type(exc).__name__}): not retried")
        if failure is not None:
            raise failure
        self.breaker.answered()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %d (%d bytes) in %.2f s", redact(what), response.status, len(response.body),
                      time.monotonic() - started)
        return response

    def _no_answer(self, kind: str, what: str, exc: Exception) -> Exception:
        """A connection failure or timeout: retried, unless it opens the breaker."""
        detail = f"{type(exc).__name__} ({redact(str(exc)) or 'no detail'})"
        return self.breaker.failed(detail) or Retryable(kind, f"{what}: {detail}")

    def _receive(self, request: Request, params: dict[str, str], headers: dict[str, str], deadline: float,
                 slot: Slot) -> Response:
        """GET and read the whole body, cutting the socket when the total deadline passes."""
        with self._http.stream("GET", request.path, params=params, headers=headers) as reply:
            slot.settle()  # the answer has begun: the vendor has counted the request
            watch = self._watchdog.watch(reply, deadline)
            chunks, size = [], 0
            try:
                for chunk in decoded_chunks(reply):
                    size += len(chunk)
                    if time.monotonic() > deadline:
                        raise _Deadline()
                    if size > self._max_body:
                        raise ProtocolError(f"{self.name} {request.endpoint}: body larger than {self._max_body:,} "
                                            "bytes (decoded): not stored; raise STOCKPIPE_HTTP_MAX_RESPONSE_BYTES "
                                            "if the vendor really sends that much")
                    chunks.append(chunk)
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
        for form in secret_forms(self._key):
            body = body.replace(form.encode(), b"***")
        return body
