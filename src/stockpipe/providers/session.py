"""Yahoo's session: a cookie and a crumb, fetched once a request is refused (I/O).

The chart endpoint answers without a session, so none is fetched up front. When Yahoo
refuses one (401 "Invalid Crumb"/"Invalid Cookie", PROVIDERS.md unauthorized_crumb.json),
`HttpProvider` asks `CrumbSession.refresh` for a new one and sends the request once more,
signed with it; a second refusal is AUTH_FAILED and stops Yahoo for the run.

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
    * The crumb is a session credential: registered with http.register_secret, so logs
      (httpx logs URLs, query included) and messages show *** instead.
"""

from __future__ import annotations

import threading
from types import ModuleType

from . import http
from .wire import Request, Response


class CrumbSession:
    """The current cookie (in the client's jar) and crumb of one provider; thread-safe."""

    def __init__(self, module: ModuleType, client: http.VendorClient, base_url: str) -> None:
        self._module, self._client, self._base_url = module, client, base_url
        self._lock = threading.Lock()
        self._current: tuple[int, str | None] = (0, None)  # (generation, crumb): read without the lock
        self._refused: str | None = None

    def sign(self, request: Request) -> tuple[Request, int]:
        """`request` with the current crumb (as it is, before any handshake), and the
        generation it carries, for `refresh`."""
        generation, crumb = self._current
        return (self._module.with_crumb(request, crumb) if crumb else request), generation

    def refresh(self, seen: int, what: str) -> None:
        """A new cookie and crumb, unless another worker got them since generation `seen`.

        Raises:
            http.AuthFailedError: Yahoo handed out no crumb (now or in an earlier handshake).
            http.RateLimitedError, http.QuotaExhaustedError, http.TransportError: from the
                handshake's own calls.
        """
        with self._lock:
            if self._refused is not None:
                raise http.AuthFailedError(self._refused)
            if self._current[0] != seen:
                return  # refreshed meanwhile: the caller retries with the newer crumb
            self._client.call(self._module.cookie_request(self._base_url))
            answer: Response = self._client.call(self._module.crumb_request())
            crumb = self._module.parse_crumb(answer)
            if crumb is None:
                self._refused = self._module.session_refused_message(
                    what, f"{self._module.CRUMB_PATH} answered HTTP {answer.status} without a crumb")
                raise http.AuthFailedError(self._refused)
            http.register_secret(crumb)
            self._current = (seen + 1, crumb)
