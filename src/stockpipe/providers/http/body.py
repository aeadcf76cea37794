"""Reading a response body with bounded memory, and the redirect and TLS rules.

httpx decodes `Content-Encoding: gzip` with one `decompress(chunk)` per network read, so a
64 KiB read of a gzip bomb becomes ~64 MiB in one step, before any size check can run. Here
the raw bytes are inflated at most `STEP` bytes at a time, so the client's size cap
(`max_body_bytes`, counted on the decoded bytes) stops a bomb within one step of the cap.

Redirects: followed only to the same scheme, host and port (or http -> https on the same
host): a redirect elsewhere could hand the request, key included, to a host nobody
configured. TLS: certificates are always verified (httpx's default, never switched off);
a failed verification is terminal, not retried (`tls_failure`).
"""

from __future__ import annotations

import ssl
import zlib
from collections.abc import Iterable, Iterator

import httpx

STEP = 1 << 20  # decoded bytes produced per step: the memory a bomb can take past the cap
ACCEPT_ENCODING = "gzip, deflate"  # what `decoded_chunks` inflates itself


class RedirectRefused(Exception):
    """A redirect to another host (never leaves the http package)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def decoded_chunks(reply: httpx.Response) -> Iterator[bytes]:
    """The body's bytes, decoded, in pieces of at most STEP bytes for gzip and deflate.

    Raises:
        httpx.DecodingError: the compressed stream is corrupt.
    """
    encoding = reply.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return reply.iter_raw()
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _inflate(reply.iter_raw(), deflate=encoding == "deflate")
    return reply.iter_bytes()  # an encoding not asked for (br, zstd): httpx's decoders


def _inflate(raw: Iterable[bytes], deflate: bool) -> Iterator[bytes]:
    """gzip (several members allowed, as RFC 1952 does) or deflate (zlib-wrapped or raw,
    as httpx accepts it), STEP bytes of output at a time."""
    wbits = zlib.MAX_WBITS if deflate else 16 + zlib.MAX_WBITS
    inflater, started = zlib.decompressobj(wbits), False
    for data in raw:
        while data:
            try:
                out = inflater.decompress(data, STEP)
            except zlib.error as exc:
                if deflate and not started:  # raw deflate, without the zlib header
                    wbits, inflater, started = -zlib.MAX_WBITS, zlib.decompressobj(-zlib.MAX_WBITS), True
                    continue
                raise httpx.DecodingError(f"corrupt {'deflate' if deflate else 'gzip'} body ({exc})") from None
            started = True
            if inflater.eof:  # the rest, if any, is the next gzip member
                data, inflater = inflater.unused_data, zlib.decompressobj(wbits)
            else:
                data = inflater.unconsumed_tail
            if out:
                yield out
    tail = inflater.flush()
    if tail:
        yield tail


def same_origin_only(response: httpx.Response) -> None:
    """httpx response hook: refuse to follow a redirect off the requested scheme/host/port.

    Raises:
        RedirectRefused: the Location names another host (or downgrades https to http).
    """
    if not response.has_redirect_location:
        return
    here = response.request.url
    there = here.join(response.headers["location"])
    upgrade = here.scheme == "http" and there.scheme == "https" and there.port in (None, 443)
    same = there.host == here.host and (upgrade or (there.scheme == here.scheme and there.port == here.port))
    if not same:
        raise RedirectRefused(f"{there.scheme}://{there.host}" + (f":{there.port}" if there.port else ""))


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind an httpx connection error (e.g. a self-signed certificate), if any."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short; bounded all the same
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
