"""providers/http/body.py: bodies inflated a step at a time, same-host redirects, TLS errors."""

from __future__ import annotations

import gzip
import ssl
import zlib

import httpx
import pytest

from stockpipe.providers.http.body import (
    STEP,
    RedirectRefused,
    _inflate,
    same_origin_only,
    tls_failure,
)


def _pieces(data: bytes, size: int = 1000) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_gzip_members_are_inflated_in_turn():
    body = gzip.compress(b"first,") + gzip.compress(b"second")
    assert b"".join(_inflate(_pieces(body, 7), deflate=False)) == b"first,second"


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib-wrapped", "raw"])
def test_deflate_with_or_without_the_zlib_header(wbits):
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = packer.compress(b"x" * 10_000) + packer.flush()
    assert b"".join(_inflate(_pieces(body), deflate=True)) == b"x" * 10_000


def test_a_bomb_comes_out_one_step_at_a_time():
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    body = packer.compress(bytes(64 * STEP)) + packer.flush()  # 64 MiB from ~64 KB
    sizes = []
    for piece in _inflate([body], deflate=False):  # all of it in one network read
        sizes.append(len(piece))
        if sum(sizes) > 4 * STEP:
            break
    assert max(sizes) <= STEP and len(sizes) >= 4


def test_a_corrupt_body_is_a_decoding_error():
    with pytest.raises(httpx.DecodingError):
        list(_inflate([b"\x1f\x8b\x08\x00garbage-not-deflate"], deflate=False))


@pytest.mark.parametrize("location, followed", [
    ("/elsewhere?x=1", True),
    ("http://api.example.com/moved", True),
    ("https://api.example.com/secure", True),  # an upgrade on the same host
    ("http://evil.example.net/steal", False),
    ("http://api.example.com:8080/other-port", False),
])
def test_redirects_are_followed_only_on_the_same_host(location, followed):
    request = httpx.Request("GET", "http://api.example.com/api/eod/AAPL.US?api_token=K")
    response = httpx.Response(302, headers={"Location": location}, request=request)
    if followed:
        same_origin_only(response)
    else:
        with pytest.raises(RedirectRefused):
            same_origin_only(response)


def test_https_is_never_downgraded():
    request = httpx.Request("GET", "https://api.example.com/x")
    with pytest.raises(RedirectRefused):
        same_origin_only(httpx.Response(301, headers={"Location": "http://api.example.com/x"}, request=request))


def test_the_tls_error_behind_a_connect_error_is_found():
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
        except ssl.SSLError as inner:
            raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]") from inner
    except httpx.ConnectError as exc:
        assert isinstance(tls_failure(exc), ssl.SSLCertVerificationError)
    assert tls_failure(httpx.ConnectError("connection refused")) is None
