"""A fake market-data vendor: a real HTTP server on 127.0.0.1 with failure knobs.

Every provider test can point a real client (STOCKPIPE_<PROVIDER>_BASE_URL or the
client's base_url) at it and replay the vendors' own bodies from
tests/fixtures/providers/<vendor>/ (tests/fixtures/PROVIDERS.md), plus the failures no
fixture file can hold: latency, Retry-After, a sequence of answers per path (429, 429,
200), a daily quota (402 after N calls), a connection reset mid-response, a truncated
body, a body that never ends, a required key, and Yahoo's cookie + crumb session
(`yahoo_session`); a published rate limit it enforces (`rate_limit`: 429 past it, counted
in `throttled`), gzip bodies (`gzipped`, `gzip_bomb`), a redirect (`redirect`), and TLS
with a self-signed certificate (`FakeVendor(tls=self_signed(folder))`). The request log
says what the client sent.

    from fakevendor import FakeVendor, Reply, fixture

    def test_x(fake_vendor):
        fake_vendor.route("/query", Reply(429, "slow down", headers={"Retry-After": "2"}),
                          fixture("alphavantage", "time_series_daily_success.json"))
        ...  # call fake_vendor.url + "/query"
        assert fake_vendor.calls("/query")[0].param("apikey") == "KEY"

`fake_vendor` is a fixture of every test module (conftest.py imports it).
"""

from __future__ import annotations

import fnmatch
import gzip
import socket
import ssl
import subprocess
import zlib
from collections import deque
from pathlib import Path
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping, Union
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import fixture_path

CONTENT_TYPES = {".json": "application/json", ".csv": "text/csv", ".txt": "text/plain", ".html": "text/html"}
MAX_STREAM_SECONDS = 70.0  # an endless body stops by itself after this long


@dataclass(frozen=True)
class Reply:
    """One answer. mode: "normal", "reset" (RST mid-body), "truncate" (Content-Length
    larger than the body, then close), "endless" (chunked bytes every `interval` s)."""

    status: int = 200
    body: Union[bytes, str] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"
    latency: float = 0.0
    mode: str = "normal"
    interval: float = 0.05

    @property
    def data(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


def fixture(vendor: str, name: str, status: int = 200, **knobs) -> Reply:
    """A reply whose body is a fixture file, content type from its extension unless given."""
    path = fixture_path(vendor, name)
    knobs.setdefault("content_type", CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
    return Reply(status=status, body=path.read_bytes(), **knobs)


def reset(body: Union[bytes, str] = b'{"partial": "', **knobs) -> Reply:
    """Headers and part of the body, then a TCP reset."""
    return Reply(body=body, mode="reset", **knobs)


def truncated(body: Union[bytes, str] = b'{"Time Series (Daily)": {', **knobs) -> Reply:
    """Content-Length promises more than is sent, then the server closes."""
    return Reply(body=body, mode="truncate", **knobs)


def endless(interval: float = 0.05, body: Union[bytes, str] = b'{"data": [', **knobs) -> Reply:
    """A chunked 200 that trickles a byte every `interval` s until the client gives up."""
    return Reply(body=body, mode="endless", interval=interval, **knobs)


def gzipped(body: Union[bytes, str], **knobs) -> Reply:
    """`body` sent with Content-Encoding: gzip."""
    data = body.encode() if isinstance(body, str) else body
    return Reply(body=gzip.compress(data, 1), headers={"Content-Encoding": "gzip", **knobs.pop("headers", {})},
                 **knobs)


def gzip_bomb(expanded: int = 1 << 30) -> Reply:
    """A small gzip body (~1 KB per MB) that expands to `expanded` zero bytes: gzip members of
    64 MiB each, concatenated (RFC 1952 allows several), so building it costs one compression."""
    member_size = 64 << 20
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    member = packer.compress(bytes(member_size)) + packer.flush()
    return Reply(body=member * max(1, expanded // member_size), headers={"Content-Encoding": "gzip"})


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status, b"", headers={"Location": location}, content_type=None)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by nobody (openssl), and its key, in `folder`."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


YAHOO_COOKIE = "A3=d=AQABBFAKEv3&S=AQAAAFAKEsig"
YAHOO_CRUMB = "Fq1mQ2x3yZ0"


def yahoo_refusal(description: str = "Invalid Crumb") -> Reply:
    """Yahoo's 401 for a refused session (the `finance` envelope of unauthorized_crumb.json)."""
    text = fixture_path("yahoo", "unauthorized_crumb.json").read_text().replace("Invalid Crumb", description)
    return Reply(401, text)


@dataclass(frozen=True)
class Call:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float  # time.monotonic() when it arrived
    peer: tuple[str, int]  # the client's address: one per connection (keep-alive)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def cookie(self, name: str) -> str | None:
        """The value of cookie `name` in the Cookie header, if sent."""
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    @property
    def has_yahoo_session(self) -> bool:
        """Whether the call carries the cookie and the crumb `yahoo_session` handed out."""
        return (self.param("crumb") == YAHOO_CRUMB
                and f"A3={self.cookie('A3')}" == YAHOO_COOKIE)


Handler = Union[Reply, Callable[[Call], Reply]]


class FakeVendor:
    """The server. Use as a context manager (or the `fake_vendor` fixture)."""

    def __init__(self, default: Reply = Reply(404, "no route", content_type="text/plain"),
                 tls: tuple[Path, Path] | None = None) -> None:
        self.default = default
        self.tls = tls
        self._window: tuple[int, float, deque] | None = None
        self.throttled = 0  # answers of 429 that `rate_limit` gave
        self._routes: list[tuple[str, list[Handler]]] = []
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._served = 0
        self._quota: tuple[int, Reply] | None = None
        self._key: tuple[str, str | None, str | None, Reply] | None = None
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- configuration

    def route(self, pattern: str, *answers: Handler) -> "FakeVendor":
        """Answer requests whose path matches `pattern` (fnmatch: "/api/eod/*") with `answers`
        in turn; the last one repeats. An answer is a Reply or a function Call -> Reply."""
        if not answers:
            raise ValueError("route() needs at least one answer")
        with self._lock:
            self._routes = [(p, a) for p, a in self._routes if p != pattern] + [(pattern, list(answers))]
        return self

    def quota(self, limit: int, reply: Reply | None = None) -> "FakeVendor":
        """After `limit` served calls (any path), answer `reply` (default: EODHD's 402)."""
        self._quota = (limit, reply or Reply(402, "You exceeded your daily API requests limit.",
                                             content_type="text/plain"))
        return self

    def rate_limit(self, limit: int, seconds: float, reply: Reply | None = None) -> "FakeVendor":
        """Answer `reply` (default 429 with Retry-After) to a request arriving when `limit`
        requests already arrived in the last `seconds` (a sliding window, as vendors count);
        a throttled request does not count."""
        self._window = (limit, seconds, deque())
        self._window_reply = reply or Reply(429, '{"error": "Too Many Requests"}', headers={"Retry-After": "1"})
        return self

    def yahoo_session(self, crumb: Reply | None = None) -> "FakeVendor":
        """Yahoo's handshake (PROVIDERS.md unauthorized_crumb.json): "/" stands in for
        fc.yahoo.com (404 with the A3 cookie), /v1/test/getcrumb hands out YAHOO_CRUMB
        (or `crumb`) to a call carrying that cookie, and refuses one without it."""
        self.route("/", Reply(404, "<html><body>404 Not Found</body></html>", content_type="text/html",
                              headers={"Set-Cookie": f"{YAHOO_COOKIE}; Path=/; HttpOnly"}))
        handed = crumb or Reply(200, YAHOO_CRUMB, content_type="text/plain")
        self.route("/v1/test/getcrumb", lambda call: handed if f"A3={call.cookie('A3')}" == YAHOO_COOKIE
                   else yahoo_refusal("Invalid Cookie"))
        return self

    def require_key(self, value: str, param: str | None = None, header: str | None = None,
                    reply: Reply | None = None) -> "FakeVendor":
        """Answer `reply` (default 401) unless the key is in query `param` or `header`
        (a header value may carry a prefix, e.g. "Token KEY")."""
        self._key = (value, param, header and header.lower(), reply or Reply(401, '{"error":"Invalid API key."}'))
        return self

    # -- inspection

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def requests(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls(self, path: str | None = None) -> list[Call]:
        """Requests seen, optionally only those to `path` (fnmatch)."""
        return [c for c in self.requests if path is None or fnmatch.fnmatchcase(c.path, path)]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- lifecycle

    def start(self) -> "FakeVendor":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.vendor = self  # type: ignore[attr-defined] - the handler finds its vendor here
        self._server.handle_error = lambda request, address: None  # clients hang up on purpose
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*map(str, self.tls))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="fakevendor", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeVendor":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- serving

    def _answer(self, call: Call) -> Reply:
        with self._lock:
            self._calls.append(call)
            if self._key is not None and not self._has_key(call):
                return self._key[3]
            if self._window is not None:
                limit, seconds, seen = self._window
                now = time.monotonic()  # under the lock: arrivals in the order they are counted
                while seen and seen[0] <= now - seconds:
                    seen.popleft()
                if len(seen) >= limit:
                    self.throttled += 1
                    return self._window_reply
                seen.append(now)
            if self._quota is not None:
                self._served += 1
                if self._served > self._quota[0]:
                    return self._quota[1]
            for pattern, answers in reversed(self._routes):
                if fnmatch.fnmatchcase(call.path, pattern):
                    answer = answers.pop(0) if len(answers) > 1 else answers[0]
                    break
            else:
                return self.default
        return answer(call) if callable(answer) else answer

    def _has_key(self, call: Call) -> bool:
        value, param, header, _ = self._key
        if param and call.param(param) == value:
            return True
        sent = call.headers.get(header or "", "")
        return bool(header) and (sent == value or sent.endswith(" " + value))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies
    timeout = 30  # idle keep-alive connections end

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        vendor: FakeVendor = self.server.vendor
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        call = Call(self.command, parts.path, parts.query, parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()}, time.monotonic(),
                    self.client_address[:2])
        reply = vendor._answer(call)
        if reply.latency and vendor.stopping.wait(reply.latency):
            self.close_connection = True
            return
        getattr(self, f"_send_{reply.mode}")(reply)

    do_POST = do_HEAD = do_GET

    def _head(self, reply: Reply, length: int | None) -> None:
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_normal(self, reply: Reply) -> None:
        self._head(reply, len(reply.data))
        if self.command != "HEAD":
            self.wfile.write(reply.data)

    def _send_truncate(self, reply: Reply) -> None:
        self._head(reply, len(reply.data) + 1000)
        self.wfile.write(reply.data)
        self.wfile.flush()
        self.close_connection = True

    def _send_reset(self, reply: Reply) -> None:
        self._head(reply, len(reply.data) * 2 + 10)
        self.wfile.write(reply.data)
        self.wfile.flush()
        time.sleep(0.05)  # let the client start reading the body
        # SO_LINGER 0: close() sends RST instead of FIN. The socket closes only once its
        # file objects are closed too.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.wfile.close()
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def _send_endless(self, reply: Reply) -> None:
        vendor: FakeVendor = self.server.vendor
        self._head(reply, None)
        started = time.monotonic()
        try:
            self._chunk(reply.data or b" ")
            while not vendor.stopping.wait(reply.interval) and time.monotonic() - started < MAX_STREAM_SECONDS:
                self._chunk(b" ")
        except OSError:  # the client gave up: that is the point
            pass
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


@pytest.fixture
def fake_vendor():
    """A started FakeVendor, stopped after the test."""
    with FakeVendor() as server:
        yield server


# ------------------------------------------------------------- a synthetic EODHD exchange


def eodhd_bar(code: str, day) -> dict:
    """A deterministic EODHD bar of ticker `code` on `day` (a datetime.date): prices from the
    code and the day, never zero, high >= open/close >= low."""
    import zlib

    seed = zlib.crc32(code.encode()) % 9000 + 100
    base = seed / 10 + (day.toordinal() % 37) / 10
    return {"date": day.isoformat(), "open": round(base, 2), "high": round(base * 1.02, 2),
            "low": round(base * 0.98, 2), "close": round(base * 1.01, 2), "adjusted_close": round(base * 1.01, 2),
            "volume": 1000 + seed}


class EodhdExchange:
    """EODHD for whole exchanges, synthetic and deterministic (PROVIDERS.md's EODHD shapes):
    every ticker has a bar (`eodhd_bar`) on every session (`sessions(lo, hi)`, default:
    weekdays). `/api/eod/{TICKER}.{EX}` answers `from`..`to`; `/api/eod-bulk-last-day/{EX}`
    answers the `date=` day for every listed ticker of EX (`code` without suffix and
    `exchange_short_name`), except the `missing` codes, with the `stale` codes' bar of the
    session before (a carried-forward bar), and `type=splits`/`type=dividends` from
    `splits` (code -> "new/old") and `dividends` (code -> cash) on that day.

        EodhdExchange(fake_vendor, {"US": ["AAPL", "BRK-B"]}, missing={"BRK-B"}).install()
    """

    def __init__(self, vendor: FakeVendor, tickers: Mapping[str, list[str]], missing=(), stale=(),
                 splits: Mapping[str, str] | None = None, dividends: Mapping[str, float] | None = None,
                 sessions: Callable | None = None) -> None:
        self.vendor, self.tickers = vendor, {ex: list(codes) for ex, codes in tickers.items()}
        self.missing, self.stale = set(missing), set(stale)
        self.splits, self.dividends = dict(splits or {}), dict(dividends or {})
        self.sessions = sessions or self._weekdays

    @staticmethod
    def _weekdays(lo, hi) -> list:
        import datetime as dt

        days = [lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1)]
        return [d for d in days if d.weekday() < 5]

    def install(self) -> "EodhdExchange":
        self.vendor.route("/api/eod/*", self._eod)
        self.vendor.route("/api/eod-bulk-last-day/*", self._bulk)
        return self

    def _eod(self, call: Call) -> Reply:
        import datetime as dt
        import json

        code, _, exchange = call.path.rsplit("/", 1)[1].rpartition(".")
        if code not in self.tickers.get(exchange, ()):
            return Reply(404, "Ticker Not Found.", content_type="text/plain")
        lo, hi = (dt.date.fromisoformat(call.param(k)) for k in ("from", "to"))
        return Reply(body=json.dumps([eodhd_bar(code, d) for d in self.sessions(lo, hi)]))

    def _bulk(self, call: Call) -> Reply:
        import datetime as dt
        import json

        exchange = call.path.rsplit("/", 1)[1]
        day = dt.date.fromisoformat(call.param("date")) if call.param("date") else None
        if day is None or exchange not in self.tickers:
            return Reply(404, "no such exchange or no date", content_type="text/plain")
        kind, codes = call.param("type"), self.tickers[exchange]
        if kind == "splits":
            rows = [{"code": c, "exchange": exchange, "date": day.isoformat(), "split": r}
                    for c, r in self.splits.items() if c in codes]
        elif kind == "dividends":
            rows = [{"code": c, "exchange": exchange, "date": day.isoformat(), "dividend": str(v),
                     "unadjustedValue": str(v), "currency": "USD"} for c, v in self.dividends.items() if c in codes]
        else:
            before = self.sessions(day - dt.timedelta(days=7), day - dt.timedelta(days=1))[-1]
            rows = [{"code": c, "exchange_short_name": exchange, **eodhd_bar(c, before if c in self.stale else day)}
                    for c in codes if c not in self.missing]
        return Reply(body=json.dumps(rows))
