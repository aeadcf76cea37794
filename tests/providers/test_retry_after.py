"""Retry-After, as each vendor module reads it and as the client waits for it.

Two levels, pinned apart on purpose:
    * `test_each_vendor_reads_retry_after`: the `retry_after` a vendor module's parse puts in
      its `Parsed` for a 429 answer, per header form;
    * `test_the_client_waits_the_same_for_every_vendor`: what the HTTP client then does
      (sleeps, or defers over its cap) with that vendor's parse as its classifier. The
      client reads the header itself first and uses the vendor's reading only when the
      header says nothing it can read, so only the vendor's default (Polygon 60 s, Tiingo
      an hour) shows through.

Every vendor reads the header with the one parser, `wire.Response.retry_after`. Before it
(issue 13) Alpha Vantage, Stooq and Tiingo read plain digits only, and Finnhub and Polygon
no negative or infinite value; the client test, unchanged by the merge, shows that no
wait changed with it.
"""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from fakevendor import Reply
from stockpipe.config import Secret
from stockpipe.errors import RateLimitedError
from stockpipe.providers import alphavantage, eodhd, finnhub, polygon, stooq, tiingo, yahoo
from stockpipe.providers.http.client import VendorClient
from stockpipe.providers.wire import Outcome, Request, Response

KEY = "K3Y-retry-after-5d1e"  # registered for redaction for the rest of the session: nothing else says it
DAY = dt.date(2024, 6, 3)
SENT = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.timezone.utc)
LATER = email.utils.format_datetime(SENT + dt.timedelta(seconds=30), usegmt=True)
MODULES = {m.NAME: m for m in (alphavantage, eodhd, finnhub, polygon, stooq, tiingo, yahoo)}
BODIES = {  # each vendor's throttling answer (a 429 with this body)
    "alphavantage": b"", "eodhd": b"", "stooq": b"", "yahoo": b"Too Many Requests\r\n",
    "finnhub": b'{"error": "API limit reached. Please try again later."}',
    "polygon": b'{"status": "ERROR", "error": "You\'ve exceeded the maximum requests per minute"}',
    "tiingo": b'{"detail": "Error: You have run over your hourly request allocation."}',
}
HEADERS = {  # header form -> the headers of the 429 (names lower-cased, as the client hands them on)
    "absent": {}, "seconds": {"retry-after": "7"}, "fraction": {"retry-after": "2.5"},
    "negative": {"retry-after": "-3"}, "date with Date": {"retry-after": LATER, "date": email.utils.format_datetime(
        SENT, usegmt=True)}, "date alone": {"retry-after": LATER}, "junk": {"retry-after": "soon"},
    "infinite": {"retry-after": "inf"},
}
DEFAULT = {"polygon": 60.0, "tiingo": 3600.0}  # what a vendor assumes when the header says nothing
READ = {  # header form -> what every vendor module reads (then its default for None)
    "absent": None, "seconds": 7.0, "fraction": 2.5, "negative": 0.0, "date with Date": 30.0, "date alone": None,
    "junk": None, "infinite": float("inf"),
}


@pytest.mark.parametrize("form", list(HEADERS))
@pytest.mark.parametrize("vendor", list(MODULES))
def test_each_vendor_reads_retry_after(vendor, form):
    parsed = MODULES[vendor].parse_daily(Response(429, HEADERS[form], BODIES[vendor]), DAY, DAY)
    assert parsed.outcome is Outcome.RATE_LIMITED
    read = READ[form] or (None if vendor == "tiingo" else READ[form])  # tiingo: `retry_after or an hour`
    expected = read if read is not None else DEFAULT.get(vendor)
    assert parsed.retry_after == expected


def test_the_header_name_is_read_in_any_case():
    assert Response(429, {"Retry-After": "7"}, b"").retry_after() == 7.0


def test_an_http_date_is_measured_from_now_when_given_else_from_the_date_header():
    headers = HEADERS["date with Date"]
    assert Response(429, headers, b"").retry_after() == 30.0
    assert Response(429, headers, b"").retry_after(SENT + dt.timedelta(seconds=10)) == 20.0
    assert Response(429, HEADERS["date alone"], b"").retry_after(SENT) == 30.0
    assert Response(429, {"retry-after": LATER}, b"").retry_after(SENT + dt.timedelta(minutes=5)) == 0.0


# The client: header form -> seconds slept before the second attempt, "backoff" (no wait
# named: jittered exponential backoff, 1-2 s), or "defer" (over the 120 s cap: no retry).
WAITS = {"seconds": 7.0, "fraction": 2.5, "negative": 0.0, "date alone": 30.0, "infinite": "defer"}


@pytest.mark.parametrize("form", ["absent", "seconds", "fraction", "negative", "date alone", "junk", "infinite"])
@pytest.mark.parametrize("vendor", list(MODULES))
def test_the_client_waits_the_same_for_every_vendor(fake_vendor, vendor, form):
    headers = {"Retry-After": HEADERS[form]["retry-after"]} if form in WAITS or form == "junk" else {}
    fake_vendor.route("/daily", Reply(429, BODIES[vendor], headers=headers, content_type="text/plain"),
                      Reply(200, "[]"))
    sleeps: list[float] = []
    module = MODULES[vendor]
    with VendorClient(vendor, fake_vendor.url, key=Secret(KEY), key_param="token", sleep=sleeps.append,
                      now=lambda: SENT) as client:
        call = lambda: client.call(Request("/daily"), lambda r: module.parse_daily(r, DAY, DAY))  # noqa: E731
        wait = WAITS.get(form, DEFAULT.get(vendor, "backoff"))
        if wait == "defer" or wait == 3600.0:
            with pytest.raises(RateLimitedError):
                call()
            assert sleeps == [] and len(fake_vendor.calls()) == 1
            return
        assert call().status == 200
    if wait == "backoff":
        assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 2.0
    else:
        assert sleeps == [wait]
