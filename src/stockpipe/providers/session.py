"""Yahoo's session: a cookie and a crumb, fetched once a request is refused (I/O).

The chart endpoint answers without a session, so none is fetched up front. When Yahoo
refuses one (401 "Invalid Crumb"/"Invalid Cookie", PROVIDERS.md unauthorized_crumb.json),
`CrumbSession.call` fetches a new one (`refresh`) and sends the request once more, signed
with it; a second refusal is AUTH_FAILED and stops Yahoo for the run. Yahoo's VENDOR
hands a CrumbSession to HttpProvider (vendor.Vendor.session); the pure parts of the
handshake (its requests, reading the crumb, the refusal's words) are yahoo.py's.

Decisions:
    * The handshake is PROVIDERS.md's: GET fc.yahoo.com (yahoo.cookie_request; it answers
      404 with the A3 cookie, which the client's cookie jar keeps and sends from then on),
      then /v1/test/getcrumb with that cookie; the crumb goes into every later request as
      `crumb=` (yahoo.with_crumb). Both calls go through the client (rate limits, ledger,
      retries), so they count like any other call.
    * Retry once per request, never a loop: a request is sent at most twice. Concurrent
      refusals share one handshake: each signed request remembers the session generation
      it carried, and `refresh(seen)` fetches a new session only when no other worker has
      done so since `seen`; the others retry with the newer crumb. A crumb that expires
      later in a long run gets a new handshake the same way (one per expiry).
    * No crumb from getcrumb (a refusal, an HTML consent page, an empty body) is AUTH_FAILED
      at once; it is remembered, so the workers still in flight do not repeat the handshake.
    * The crumb is a session credential: registered with redaction.register_secret, so logs
      (httpx logs URLs, query included) and messages show *** instead.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Protocol

from ..errors import AuthFailedError
from ..redaction import register_secret
from .wire import Outcome, Parsed, Request, Response

if TYPE_CHECKING:
    from .http.client import VendorClient


class Handshake(Protocol):
    """The pure parts of a cookie-and-crumb session (yahoo.py)."""

    def cookie_request(self, base_url: str) -> Request: ...

    def crumb_request(self) -> Request: ...

    def parse_crumb(self, response: Response) -> str | None: ...

    def with_crumb(self, request: Request, crumb: str) -> Request: ...

    def refused(self, what: str, said: str) -> str:
        """The AUTH_FAILED message: the session, not a key, was refused."""


class CrumbSession:
    """The current cookie (in the client's jar) and crumb of one provider; thread-safe."""

    def __init__(self, handshake: Handshake, client: "VendorClient", base_url: str) -> None:
        self._handshake, self._client, self._base_url = handshake, client, base_url
        self._lock = threading.Lock()
        self._current: tuple[int, str | None] = (0, None)  # (generation, crumb): read without the lock
        self._refused: str | None = None

    def call(self, request: Request, send: Callable[[Request], tuple[Response, Parsed]],
             what: str) -> tuple[Response, Parsed]:
        """`send(request)` signed with the current crumb; after a refused session, once more
        with a new cookie and crumb (shared with the concurrent refusals).

        Raises:
            AuthFailedError: the second answer refuses the session too, or no crumb came.
        """
        signed, generation = self.sign(request)
        response, verdict = send(signed)
        if verdict.outcome is not Outcome.AUTH_FAILED:
            return response, verdict
        self.refresh(generation, what)
        response, verdict = send(self.sign(request)[0])
        if verdict.outcome is Outcome.AUTH_FAILED:
            raise AuthFailedError(self._handshake.refused(what, f"{verdict.message}, again with a new cookie and crumb"))
        return response, verdict

    def sign(self, request: Request) -> tuple[Request, int]:
        """`request` with the current crumb (as it is, before any handshake), and the
        generation it carries, for `refresh`."""
        generation, crumb = self._current
        return (self._handshake.with_crumb(request, crumb) if crumb else request), generation

    def refresh(self, seen: int, what: str) -> None:
        """A new cookie and crumb, unless another worker got them since generation `seen`.

        Raises:
            AuthFailedError: Yahoo handed out no crumb (now or in an earlier handshake).
            RateLimitedError, QuotaExhaustedError, TransportError: from the handshake's own calls.
        """
        with self._lock:
            if self._refused is not None:
                raise AuthFailedError(self._refused)
            if self._current[0] != seen:
                return  # refreshed meanwhile: the caller retries with the newer crumb
            self._client.call(self._handshake.cookie_request(self._base_url))
            asked = self._handshake.crumb_request()
            answer = self._client.call(asked)
            crumb = self._handshake.parse_crumb(answer)
            if crumb is None:
                self._refused = self._handshake.refused(
                    what, f"{asked.path} answered HTTP {answer.status} without a crumb")
                raise AuthFailedError(self._refused)
            register_secret(crumb)
            self._current = (seen + 1, crumb)
