"""The HTTP layer against a real local server (fakevendor): limits, retries, deadlines, secrets.

Backoff never really waits: the client's `sleep` is a recorder. Only the deadline tests
and the concurrency tests take real (short) time.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, quote_plus

import httpx
import pytest

from fakevendor import Reply, endless, fixture, reset, truncated
from stockpipe import errors
from stockpipe.config import Secret
from stockpipe.errors import (AuthFailedError, NotEntitledError, ProtocolError, QuotaExhaustedError, RateLimitedError,
                              TransportError)
from stockpipe.providers.http.client import VendorClient
from stockpipe.providers.http.limiter import RateLimiter
from stockpipe.providers.wire import Outcome, Request, error_for
from stockpipe.redaction import redact, register_secret
from stockpipe.storage import warehouse
from stockpipe.storage.ledger import Ledger

KEY = "Sk3y+/SECRET=="  # "+", "/" and "=" make the URL-encoded form differ from the raw one
KEY_FORMS = (KEY, quote(KEY, safe=""), quote_plus(KEY))
NOW = dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.timezone.utc)
QUOTE = Request("/api/v1/quote", {"symbol": "AAPL"}, endpoint="quote")


class FakeClock:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client_for(fake_vendor, sleeps):
    """Build a VendorClient against the fake vendor (key as the `token` parameter by default)."""
    made = []

    def build(**options) -> VendorClient:
        options.setdefault("key", Secret(KEY))
        options.setdefault("key_param", "token")
        options.setdefault("sleep", sleeps.append)
        options.setdefault("now", lambda: NOW)
        client = VendorClient(options.pop("name", "finnhub"), options.pop("base_url", fake_vendor.url), **options)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def assert_no_key(text: str) -> None:
    for form in KEY_FORMS:
        assert form not in text


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)


def call_all(client: VendorClient, items, call, workers: int | None = None) -> list:
    """`call(item)` for every item on as many threads as the client allows (the pipeline's
    fetch loop does the same), results in order."""
    with ThreadPoolExecutor(max_workers=workers or client.concurrency) as pool:
        return list(pool.map(call, items))


def max_in_window(times: list[float], seconds: float) -> int:
    """The most events in any half-open window [t, t + seconds)."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + seconds) for i, t in enumerate(times)), default=0)


# ---------------------------------------------------------------------- rate limiter


def saturated(limits: dict, seconds: float) -> list[float]:
    """When each call began, calling as fast as a limiter with `limits` allows for `seconds`."""
    clock = FakeClock()
    limiter = RateLimiter(limits, clock=clock, sleep=clock.sleep)
    calls = []
    while clock.now < seconds:
        limiter.begin().settle()
        calls.append(clock.now)
    return [t for t in calls if t < seconds]


def test_limiter_never_exceeds_5_per_second_and_uses_the_limit_when_saturated():
    calls = saturated({"calls_per_second": 5}, 3.0)
    assert max_in_window(calls, 1.0) <= 5
    assert len(calls) >= 0.95 * 5 * 3


def test_limiter_honours_every_window_at_once():
    calls = saturated({"calls_per_second": 5, "calls_per_minute": 20, "calls_per_hour": None}, 180.0)
    assert max_in_window(calls, 1.0) <= 5
    assert max_in_window(calls, 60.0) <= 20
    assert len(calls) >= 0.95 * 20 * 3


def test_limiter_is_thread_safe_in_real_time():
    limiter = RateLimiter({"calls_per_second": 20})
    calls, lock = [], threading.Lock()

    def worker() -> None:
        for _ in range(6):
            limiter.begin().settle()
            with lock:
                calls.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 48
    assert max_in_window(calls, 0.9) <= 20  # stamps are taken just after settling: slack for scheduling
    assert max(calls) - min(calls) >= 1.9  # 48 calls at 20/s need two full windows


def test_limiter_defers_a_wait_longer_than_max_block_instead_of_sleeping():
    clock = FakeClock()
    limiter = RateLimiter({"calls_per_hour": 2}, name="tiingo", max_block=300, clock=clock, sleep=clock.sleep)
    limiter.begin().settle()
    limiter.begin().settle()
    with pytest.raises(RateLimitedError) as caught:
        limiter.begin().settle()
    assert caught.value.retry_after == pytest.approx(3600)
    assert clock.sleeps == []


def test_limiter_margin_keeps_clear_of_the_window_edge():
    clock = FakeClock()
    limiter = RateLimiter({"calls_per_second": 1}, margin=0.05, clock=clock, sleep=clock.sleep)
    limiter.begin().settle()
    limiter.begin().settle()
    assert clock.now == pytest.approx(1.05)


def test_limiter_rejects_unknown_or_zero_limits():
    with pytest.raises(errors.ConfigError):
        RateLimiter({"calls_per_fortnight": 3})
    with pytest.raises(errors.ConfigError):
        RateLimiter({"calls_per_minute": 0.5})


class RecordingTransport(httpx.HTTPTransport):
    """httpx's own transport, noting when each request really leaves the client."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(time.monotonic())
        return super().handle_request(request)


def test_concurrent_calls_through_the_client_never_exceed_the_limit(fake_vendor, client_for):
    fake_vendor.route("/api/v1/quote", Reply(200, "{}", latency=0.05))
    transport = RecordingTransport()
    client = client_for(limits={"calls_per_second": 10}, sleep=time.sleep, transport=transport)
    assert client.concurrency == 8
    started = time.monotonic()
    results = call_all(client, range(25), lambda i: client.call(QUOTE))
    assert [r.status for r in results] == [200] * 25
    assert len(fake_vendor.calls()) == 25
    # A slot is held until the answer begins, so sends are a full window apart; 0.1 s of
    # slack covers thread scheduling on a busy machine.
    assert max_in_window(transport.sent, 0.9) <= 10
    assert time.monotonic() - started >= 2.0


def test_a_call_holds_its_slot_until_it_settles_and_counts_from_then():
    clock = FakeClock()
    limiter = RateLimiter({"calls_per_second": 2}, clock=clock, sleep=clock.sleep)
    first, second = limiter.begin(), limiter.begin()  # both in flight at t=0
    began = []
    third = threading.Thread(target=lambda: began.append((limiter.begin(), clock.now)), daemon=True)
    third.start()
    third.join(0.3)
    assert third.is_alive() and began == []  # no window can expire while both are in flight
    clock.now = 0.4
    first.settle()  # its answer began at 0.4: it counts until 1.4
    first.settle()  # idempotent
    third.join(5)
    assert not third.is_alive() and began[0][1] == pytest.approx(1.4)
    second.settle()
    began[0][0].settle()


def test_the_vendor_never_sees_more_than_the_limit_in_any_window(fake_vendor, client_for):
    """Measured where it matters: the server's own arrival stamps, in full 1 s windows."""
    fake_vendor.route("/api/v1/quote", Reply(200, "{}", latency=0.02))
    client = client_for(limits={"calls_per_second": 10}, sleep=time.sleep)
    results = call_all(client, range(35), lambda i: client.call(QUOTE))
    assert [r.status for r in results] == [200] * 35
    arrivals = [call.at for call in fake_vendor.calls()]
    assert len(arrivals) == 35 and max_in_window(arrivals, 1.0) <= 10


def test_a_failed_attempt_frees_its_slot(client_for):
    clock = FakeClock()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: every attempt fails to connect
    client = client_for(base_url=f"http://127.0.0.1:{port}", limits={"calls_per_second": 1}, clock=clock,
                        sleep=clock.sleep, max_attempts=1)
    with pytest.raises(TransportError):
        client.call(QUOTE)
    freed = threading.Thread(target=lambda: client.limiter.begin().settle(), daemon=True)  # never hangs the suite
    freed.start()
    freed.join(5)
    assert not freed.is_alive()  # a slot left in flight would block it for ever


def test_one_deadline_watchdog_thread_per_client(fake_vendor, client_for):
    fake_vendor.route("/api/v1/quote", fixture("finnhub", "quote_success.json"))
    client = client_for(name="finnhub")

    def watchdogs() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "deadline-finnhub" and t.is_alive()]

    for _ in range(5):
        assert client.call(QUOTE).status == 200
    assert len(watchdogs()) == 1
    client.close()
    for thread in watchdogs():
        thread.join(5)
    assert watchdogs() == []


# ------------------------------------------------------------------------- retries


def test_429_twice_then_success_is_retried_with_backoff(fake_vendor, client_for, sleeps):
    fake_vendor.route("/api/v1/quote", fixture("finnhub", "rate_limited.json", status=429),
                      fixture("finnhub", "rate_limited.json", status=429), fixture("finnhub", "quote_success.json"))
    response = client_for().call(QUOTE)
    assert response.status == 200 and b'"c"' in response.body
    assert len(fake_vendor.calls()) == 3
    assert len(sleeps) == 2
    assert 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 3.0  # 2**n plus up to 1 s of jitter


def test_retry_after_seconds_is_honoured(fake_vendor, client_for, sleeps):
    fake_vendor.route("/api/v1/quote", Reply(429, "{}", headers={"Retry-After": "7"}), Reply(200, "{}"))
    assert client_for().call(QUOTE).status == 200
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured(fake_vendor, client_for, sleeps):
    when = email.utils.format_datetime(NOW + dt.timedelta(seconds=30), usegmt=True)
    fake_vendor.route("/api/v1/quote", Reply(503, "down", headers={"Retry-After": when}), Reply(200, "{}"))
    assert client_for().call(QUOTE).status == 200
    assert sleeps == [30.0]


def test_retry_after_at_the_cap_is_slept_and_over_the_cap_defers_without_retrying(fake_vendor, client_for, sleeps):
    fake_vendor.route("/api/v1/quote", Reply(429, "{}", headers={"Retry-After": "60"}), Reply(200, "{}"))
    assert client_for(max_wait=60).call(QUOTE).status == 200
    assert sleeps == [60.0]

    fake_vendor.clear()
    sleeps.clear()
    fake_vendor.route("/api/v1/quote", Reply(429, "{}", headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimitedError) as caught:
        client_for(max_wait=120).call(QUOTE)
    assert caught.value.retry_after == 3600
    assert "3600 s" in str(caught.value) and "120 s cap" in str(caught.value)
    assert sleeps == [] and len(fake_vendor.calls()) == 1


def test_backoff_without_retry_after_is_capped(fake_vendor, client_for, sleeps):
    fake_vendor.route("/api/v1/quote", Reply(503, "down"))
    with pytest.raises(TransportError):
        client_for(max_attempts=8, max_wait=5).call(QUOTE)
    assert len(sleeps) == 7 and max(sleeps) <= 5.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_then_transport_error_after_max_attempts(fake_vendor, client_for, sleeps, status):
    fake_vendor.route("/api/v1/quote", Reply(status, "<html>bad gateway</html>", content_type="text/html"))
    with pytest.raises(TransportError) as caught:
        client_for(max_attempts=3).call(QUOTE)
    assert len(fake_vendor.calls()) == 3 and len(sleeps) == 2
    assert f"answered {status}" in str(caught.value) and "after 3 attempts" in str(caught.value)
    assert isinstance(caught.value, errors.TransientError) and caught.value.exit_code == errors.ExitCode.PARTIAL


def test_429_that_never_ends_is_rate_limited_error(fake_vendor, client_for):
    fake_vendor.route("/api/v1/quote", fixture("yahoo", "rate_limited.txt", status=429))
    with pytest.raises(RateLimitedError):
        client_for(max_attempts=4).call(QUOTE)
    assert len(fake_vendor.calls()) == 4


@pytest.mark.parametrize("vendor,name,status", [
    ("finnhub", "bad_key.json", 401),
    ("finnhub", "no_access.json", 403),
    ("yahoo", "unknown_symbol.json", 404),
    ("eodhd", "quota_exhausted.txt", 402),
    ("tiingo", "unknown_symbol.json", 404),
    ("polygon", "not_authorized.json", 403),
])
def test_permanent_4xx_is_returned_after_exactly_one_request(fake_vendor, client_for, sleeps, vendor, name, status):
    fake_vendor.route("/api/v1/quote", fixture(vendor, name, status=status))
    response = client_for().call(QUOTE)
    assert response.status == status
    assert response.body == fixture(vendor, name).data
    assert len(fake_vendor.calls()) == 1 and sleeps == []


@pytest.mark.parametrize("broken", [reset(), truncated()], ids=["connection-reset", "truncated-body"])
def test_broken_responses_are_retried(fake_vendor, client_for, sleeps, broken):
    fake_vendor.route("/api/v1/quote", broken, fixture("finnhub", "quote_success.json"))
    response = client_for().call(QUOTE)
    assert response.status == 200 and response.body == fixture("finnhub", "quote_success.json").data
    assert len(fake_vendor.calls()) == 2 and len(sleeps) == 1


def test_connection_reset_every_time_is_transport_error(fake_vendor, client_for):
    fake_vendor.route("/api/v1/quote", reset())
    with pytest.raises(TransportError) as caught:
        client_for(max_attempts=3, unreachable_after=10).call(QUOTE)  # the breaker: test_unreachable.py
    assert len(fake_vendor.calls()) == 3
    assert "after 3 attempts" in str(caught.value)


def test_read_timeout_is_retried(fake_vendor, client_for):
    fake_vendor.route("/api/v1/quote", Reply(200, "{}", latency=1.0), Reply(200, '{"ok": 1}'))
    response = client_for(timeout_read=0.2).call(QUOTE)
    assert response.body == b'{"ok": 1}' and len(fake_vendor.calls()) == 2


def test_connection_refused_is_retried_then_transport_error(client_for, sleeps):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        client_for(base_url=f"http://127.0.0.1:{port}", max_attempts=3, unreachable_after=10).call(QUOTE)
    assert "ConnectError" in str(caught.value) and len(sleeps) == 2


def test_unusable_base_url_is_a_config_error_not_retried(client_for, sleeps):
    with pytest.raises(errors.ConfigError) as caught:
        client_for(base_url="ftp://example.invalid").call(QUOTE)
    assert "STOCKPIPE_FINNHUB_BASE_URL" in str(caught.value) and sleeps == []


def test_classify_retries_a_200_that_means_rate_limited(fake_vendor, client_for, sleeps):
    fake_vendor.route("/query", fixture("alphavantage", "rate_limited.json"),
                      fixture("alphavantage", "time_series_daily_success.json"))

    def classify(response):
        return Outcome.RATE_LIMITED if b"spreading out your free API requests" in response.body else Outcome.OK

    client = client_for(name="alphavantage", key_param="apikey")
    response = client.call(Request("/query", {"function": "TIME_SERIES_DAILY", "symbol": "IBM"}), classify)
    assert b"Time Series (Daily)" in response.body
    assert len(fake_vendor.calls()) == 2 and len(sleeps) == 1


def test_a_parse_error_in_classify_is_not_retried(fake_vendor, client_for, sleeps):
    fake_vendor.route("/api/v1/quote", Reply(200, "not json"))

    def classify(response):
        raise ProtocolError("finnhub sent an unreadable quote")

    with pytest.raises(ProtocolError):
        client_for().call(QUOTE, classify)
    assert len(fake_vendor.calls()) == 1 and sleeps == []


def test_classify_is_not_asked_about_5xx_and_a_429_it_cannot_read_is_still_throttling(fake_vendor, client_for,
                                                                                      sleeps):
    fake_vendor.route("/v8/finance/chart/AAPL", Reply(502, "<html>Bad Gateway</html>", content_type="text/html"),
                      fixture("yahoo", "rate_limited.txt", status=429), fixture("yahoo", "success.json"))
    seen = []

    def classify(response):
        seen.append(response.status)
        if not response.body.startswith(b"{"):
            raise ProtocolError("yahoo sent something that is not JSON")
        return Outcome.OK

    response = client_for(name="yahoo", key=None, key_param=None).call(Request("/v8/finance/chart/AAPL"), classify)
    assert response.status == 200
    assert seen == [429, 200] and len(sleeps) == 2


def test_a_429_that_classify_calls_quota_exhausted_is_not_retried(fake_vendor, client_for, sleeps):
    fake_vendor.route("/tiingo/daily/aapl/prices",
                      Reply(429, '{"detail": "Error: You have run over your monthly unique symbol request allocation."}'))

    def classify(response):
        return Outcome.QUOTA_EXHAUSTED if b"monthly" in response.body else Outcome.RATE_LIMITED

    with pytest.raises(QuotaExhaustedError):
        client_for(name="tiingo").call(Request("/tiingo/daily/aapl/prices"), classify)
    assert len(fake_vendor.calls()) == 1 and sleeps == []


# ------------------------------------------------------------------------ deadline


def test_a_body_that_never_ends_is_cut_at_the_total_deadline(fake_vendor, client_for):
    fake_vendor.route("/api/v1/quote", endless(interval=0.05))
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        client_for(timeout_total=1.0).call(QUOTE)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 4.0  # far below the 30 s read timeout; slack for a busy machine
    assert "never ends" in str(caught.value)
    assert len(fake_vendor.calls()) == 1  # not retried: it would only cost another deadline


def test_a_stalled_body_is_cut_at_the_deadline_even_before_the_read_timeout(fake_vendor, client_for):
    fake_vendor.route("/api/v1/quote", endless(interval=20.0))  # one chunk, then silence
    started = time.monotonic()
    with pytest.raises(TransportError):
        client_for(timeout_total=1.0, timeout_read=30.0).call(QUOTE)
    assert time.monotonic() - started < 4.0  # the next byte comes after 20 s, the read timeout after 30 s


# -------------------------------------------------------------------------- secrets


def test_key_as_query_parameter(fake_vendor, client_for):
    fake_vendor.require_key(KEY, param="token").route("/api/v1/quote", fixture("finnhub", "quote_success.json"))
    assert client_for().call(QUOTE).status == 200
    (call,) = fake_vendor.calls()
    assert call.param("token") == KEY and call.param("symbol") == "AAPL"
    assert "x-finnhub-token" not in call.headers


def test_key_as_header(fake_vendor, client_for):
    fake_vendor.require_key(KEY, header="Authorization").route("/tiingo/daily/aapl/prices",
                                                               fixture("tiingo", "daily_prices_success.json"))
    client = client_for(name="tiingo", key_param=None, key_header=("Authorization", "Token {key}"))
    assert client.call(Request("/tiingo/daily/aapl/prices", {"startDate": "2024-06-03"})).status == 200
    (call,) = fake_vendor.calls()
    assert call.headers["authorization"] == f"Token {KEY}"
    assert_no_key(call.raw_query)


def test_the_fake_vendor_refuses_a_missing_key(fake_vendor, client_for):
    fake_vendor.require_key(KEY, param="token", reply=fixture("finnhub", "bad_key.json", status=401))
    response = client_for(key=Secret("wrong-key")).call(QUOTE)
    assert response.status == 401


def test_a_missing_key_fails_before_any_request(fake_vendor, client_for):
    with pytest.raises(AuthFailedError) as caught:
        client_for(key=None).call(QUOTE)
    assert caught.value.exit_code == errors.ExitCode.CONFIG
    assert "STOCKPIPE_FINNHUB_API_KEY" in str(caught.value)
    assert fake_vendor.calls() == []


@pytest.mark.parametrize("placement", ["param", "header"])
def test_the_key_never_appears_in_exceptions_or_any_log_record(fake_vendor, client_for, caplog, placement):
    caplog.set_level(logging.DEBUG)
    options = {"key_param": "apikey"} if placement == "param" else \
        {"key_param": None, "key_header": ("Authorization", "Bearer {key}")}
    fake_vendor.route("/ok", Reply(200, '{"ok": true}'))
    fake_vendor.route("/echo", lambda call: Reply(400, f'{{"error": "bad request {call.raw_query} '
                                                     f'{call.headers.get("authorization")}"}}'))
    fake_vendor.route("/throttled", Reply(429, "{}"))
    fake_vendor.route("/down", Reply(503, "down"))
    fake_vendor.route("/reset", reset())
    fake_vendor.route("/endless", endless(interval=0.05))
    client = client_for(max_attempts=2, timeout_total=0.5, **options)

    assert client.call(Request("/ok", {"symbol": "AAPL"})).status == 200
    echoed = client.call(Request("/echo"))
    assert b"***" in echoed.body  # a vendor that echoes the key must not put it in the archive
    assert_no_key(echoed.body.decode())
    failures = []
    for path in ("/throttled", "/down", "/reset", "/endless"):
        with pytest.raises(errors.StockpipeError) as caught:
            client.call(Request(path, {"symbol": "AAPL"}))
        failures.append(caught.value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        client_for(base_url=f"http://127.0.0.1:{port}", max_attempts=2, **options).call(QUOTE)
    failures.append(caught.value)

    for exc in failures:
        assert exc.__cause__ is None and exc.__context__ is None
        assert_no_key(full_text(exc))
    loggers = {record.name for record in caplog.records}
    assert {"httpx", "httpcore.http11", "httpcore.connection", "stockpipe.providers.http"} <= loggers
    assert_no_key(caplog.text)
    if placement == "param":
        assert "apikey=***" in caplog.text  # httpx's own request line, redacted by the filter
    for record in caplog.records:
        assert_no_key(record.getMessage())


def test_redact_removes_registered_keys_and_key_like_parameters():
    register_secret("registered-key-123")
    text = ("GET https://x/q?function=A&apikey=abc123&symbol=IBM&token=t0k&api_token=xyz&apiKey=Q "
            "Authorization: Token registered-key-123 X-Finnhub-Token: zzz9 'authorization': 'Bearer qqq'")
    clean = redact(text)
    for secret in ("abc123", "t0k", "xyz", "=Q ", "registered-key-123", "zzz9", "qqq"):
        assert secret not in clean
    assert "function=A" in clean and "symbol=IBM" in clean
    register_secret("p+q/r=s")
    assert redact(f"url?k={quote('p+q/r=s', safe='')}&x={quote_plus('p+q/r=s')}&y=p+q/r=s") == "url?k=***&x=***&y=***"


def test_secret_repr_never_shows_the_key():
    assert KEY not in repr(Secret(KEY))


# ------------------------------------------------------------------- quota ledger


@pytest.fixture
def ledger_engine(tmp_path):
    engine = warehouse.create(f"sqlite:///{tmp_path / 'w.db'}")
    warehouse.upgrade(engine)
    yield engine
    engine.dispose()


def test_the_ledger_spends_each_attempt_and_stops_before_sending(fake_vendor, client_for, ledger_engine):
    fake_vendor.route("/api/v1/quote", Reply(429, "{}"), Reply(200, "{}"))
    ledger = Ledger(ledger_engine, "finnhub", calls_per_day=3, clock=lambda: NOW)
    client = client_for(ledger=ledger)
    client.call(QUOTE)  # two attempts, two calls
    client.call(QUOTE)
    assert ledger.remaining() == 0
    with pytest.raises(QuotaExhaustedError) as caught:
        client.call(QUOTE)
    assert len(fake_vendor.calls()) == 3
    assert "quota spent (3 of 3 calls); resets at 00:00 UTC (in 1 h)" in str(caught.value)
    assert caught.value.resets_at == NOW.replace(hour=0) + dt.timedelta(days=1)


def test_a_vendor_quota_answer_marks_the_ledger_and_stops_later_calls(fake_vendor, client_for, ledger_engine):
    fake_vendor.route("/query", fixture("alphavantage", "quota_exhausted.json"))
    ledger = Ledger(ledger_engine, "alphavantage", calls_per_day=25, clock=lambda: NOW)
    client = client_for(name="alphavantage", key_param="apikey", ledger=ledger)

    def classify(response):
        return Outcome.QUOTA_EXHAUSTED if b"requests per day" in response.body else Outcome.OK

    with pytest.raises(QuotaExhaustedError):
        client.call(Request("/query", {"function": "TIME_SERIES_DAILY"}), classify)
    assert ledger.remaining() == 0
    with pytest.raises(QuotaExhaustedError):
        client.call(Request("/query", {"function": "TIME_SERIES_DAILY"}), classify)
    assert len(fake_vendor.calls()) == 1


def test_the_fake_vendors_daily_quota_answers_402_and_classify_stops_the_provider(fake_vendor, client_for, sleeps):
    fake_vendor.quota(2, fixture("eodhd", "quota_exhausted.txt", status=402))
    fake_vendor.route("/api/eod/*", fixture("eodhd", "eod_success.json"))
    client = client_for(name="eodhd", key_param="api_token")

    def classify(response):
        return Outcome.QUOTA_EXHAUSTED if response.status == 402 else Outcome.OK

    for _ in range(2):
        assert client.call(Request("/api/eod/AAPL.US", {"fmt": "json"}), classify).status == 200
    with pytest.raises(QuotaExhaustedError) as caught:
        client.call(Request("/api/eod/AAPL.US", {"fmt": "json"}), classify)
    assert "answered 402" in str(caught.value)
    assert len(fake_vendor.calls("/api/eod/*")) == 3 and sleeps == []
    assert fake_vendor.calls()[0].param("api_token") == KEY


def test_concurrent_calls_share_keep_alive_connections_and_the_ledger_refuses_past_its_quota(
        fake_vendor, client_for, ledger_engine):
    fake_vendor.route("/api/v1/quote", Reply(200, "{}", latency=0.5))
    client = client_for(limits={"calls_per_second": 4})
    started = time.monotonic()
    results = call_all(client, ["A", "B", "C", "D"], lambda s: client.call(Request("/api/v1/quote", {"symbol": s})))
    assert time.monotonic() - started < 1.5  # four at once, not 2 s one after another
    assert all(r.status == 200 for r in results)
    peers = {c.peer for c in fake_vendor.calls()}
    call_all(client, ["A", "B", "C", "D"], lambda s: client.call(QUOTE))
    assert {c.peer for c in fake_vendor.calls()} == peers  # keep-alive: the same connections again

    fake_vendor.clear()
    ledger = Ledger(ledger_engine, "finnhub", calls_per_day=2, clock=lambda: NOW)
    limited = client_for(ledger=ledger)
    for _ in range(2):
        assert limited.call(QUOTE).status == 200
    for _ in range(3):
        with pytest.raises(QuotaExhaustedError):
            limited.call(QUOTE)
    assert len(fake_vendor.calls()) == 2


def test_error_for_maps_outcomes_to_error_classes():
    assert error_for(Outcome.OK, "finnhub", "AAPL quote") is None
    assert error_for(Outcome.EMPTY, "finnhub", "AAPL quote") is None
    assert isinstance(error_for(Outcome.AUTH_FAILED, "finnhub", "AAPL"), AuthFailedError)
    assert isinstance(error_for(Outcome.NOT_ENTITLED, "finnhub", "AAPL"), NotEntitledError)
    assert isinstance(error_for(Outcome.QUOTA_EXHAUSTED, "eodhd", "AAPL.US"), QuotaExhaustedError)
    assert isinstance(error_for(Outcome.RATE_LIMITED, "eodhd", "AAPL.US"), RateLimitedError)
    assert isinstance(error_for(Outcome.SYMBOL_NOT_FOUND, "eodhd", "XXXX.US"), errors.SymbolNotFoundError)
    assert isinstance(error_for(Outcome.PROTOCOL_ERROR, "eodhd", "AAPL.US"), ProtocolError)
    auth = error_for(Outcome.AUTH_FAILED, "finnhub", "AAPL quote", "Invalid API key.")
    assert str(auth) == "finnhub refused the API key for AAPL quote (Invalid API key.): check STOCKPIPE_FINNHUB_API_KEY"
    assert isinstance(NotEntitledError("x"), (errors.TerminalError, errors.StopsProvider))
    assert not isinstance(NotEntitledError("x"), errors.TransientError)
    assert isinstance(QuotaExhaustedError("x"), errors.StopsProvider)
