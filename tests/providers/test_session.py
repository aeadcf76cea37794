"""Yahoo's cookie + crumb session (providers/session.py) against the fake server's handshake."""

from __future__ import annotations

import pytest

from fakevendor import YAHOO_CRUMB, FakeVendor, Reply, yahoo_refusal
from stockpipe.errors import AuthFailedError
from stockpipe.providers import yahoo
from stockpipe.providers.http.client import VendorClient
from stockpipe.providers.session import CrumbSession


@pytest.fixture
def server():
    with FakeVendor() as fake:
        yield fake


@pytest.fixture
def client(server):
    with VendorClient("yahoo", server.url, default_headers=yahoo.DEFAULT_HEADERS,
                           limits={"calls_per_second": 100}) as vendor_client:
        yield vendor_client


def test_one_handshake_per_generation_and_the_cookie_goes_along(server, client):
    server.yahoo_session()
    session = CrumbSession(yahoo.VENDOR, client, server.url)
    unsigned, generation = session.sign(yahoo.crumb_request())
    assert generation == 0 and "crumb" not in unsigned.params  # no session before a refusal

    session.refresh(0, "AAPL daily")
    signed, generation = session.sign(yahoo.crumb_request())
    assert generation == 1 and signed.params["crumb"] == YAHOO_CRUMB
    session.refresh(0, "MSFT daily")  # a refusal of a request sent before that handshake: no new one
    assert len(server.calls("/")) == len(server.calls("/v1/test/getcrumb")) == 1
    session.refresh(1, "IBM daily")  # the crumb expired later: one more handshake
    assert session.sign(yahoo.crumb_request())[1] == 2
    assert len(server.calls("/v1/test/getcrumb")) == 2
    assert server.calls("/v1/test/getcrumb")[0].cookie("A3")  # the jar sent fc.yahoo.com's cookie


@pytest.mark.parametrize("crumb", [yahoo_refusal("Invalid Cookie"), Reply(200, "<html>consent</html>",
                                                                           content_type="text/html")])
def test_no_crumb_is_auth_failed_and_remembered(server, client, crumb):
    server.yahoo_session(crumb=crumb)
    session = CrumbSession(yahoo.VENDOR, client, server.url)
    for what in ("AAPL daily", "MSFT daily"):
        with pytest.raises(AuthFailedError, match="yahoo refused the session .* for AAPL daily: "
                                                       "/v1/test/getcrumb answered HTTP"):
            session.refresh(0, what)
    assert len(server.calls("/v1/test/getcrumb")) == 1  # the workers still in flight do not repeat it
    assert session.sign(yahoo.crumb_request())[1] == 0
