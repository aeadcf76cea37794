"""The API sensor: is a provider's server there, does it take the key, what quota is left.

Two depths:
    * `reachable` (what `run` asks before fetching): a TCP connection to the vendor's host
      within the connect timeout, and nothing sent; a vendor that refuses or does not
      accept connections is down, so the run stops early (exit 5) instead of spending
      retries on every symbol.
    * `probe` (`validate --probe`): one cheap call per provider (Vendor.probe: a quote, a
      week of daily bars, or EODHD's account), tried once: its latency, whether the key was
      accepted (a refusal is AUTH_FAILED; anything else the vendor answered means it took
      the key), and the quota left (the vendor's own words where it has them, else the
      quota ledger's count, else "not published").

Offline providers (demo, csv, a test's fake) have nothing to probe: always reachable.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ExitCode, StockpipeError, TransportError, UnavailableError
from .http_provider import HttpProvider, judged
from .wire import Outcome


@dataclass(frozen=True)
class ProbeResult:
    """What one provider's probe found. `exit_code` 0 when it answered and took the key."""

    provider: str
    ok: bool
    detail: str
    exit_code: int = ExitCode.OK
    latency: float | None = None  # seconds, for an answered call
    key: str = ""  # accepted | refused | not needed | "" (not asked)
    quota: str = ""


def reachable(provider, timeout: float) -> ProbeResult:
    """A TCP connection to the provider's host (no request sent); offline providers pass."""
    if not isinstance(provider, HttpProvider):
        return ProbeResult(provider.name, True, "offline: nothing to reach")
    host, port = _address(provider.client.base_url)
    started = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or type(exc).__name__)
        return ProbeResult(provider.name, False, f"{provider.name} unreachable at {host}:{port}: {reason} "
                           f"(connecting within {timeout:g} s): check the network or "
                           f"STOCKPIPE_{provider.name.upper()}_BASE_URL, or try later", ExitCode.UNAVAILABLE)
    return ProbeResult(provider.name, True, f"{host}:{port} accepts connections "
                       f"({(time.monotonic() - started) * 1000:.0f} ms)")


def probe(provider, symbol: str, today: dt.date) -> ProbeResult:
    """One cheap call, tried once (module docstring)."""
    if not isinstance(provider, HttpProvider):
        return ProbeResult(provider.name, True, "offline: no API to probe", key="not needed")
    try:
        check = provider.vendor.probe(provider.vendor_symbol(symbol), today)
    except ValueError:  # the vendor cannot spell that symbol: its default
        check = provider.vendor.probe(provider.vendor.vendor_symbol("AAPL"), today)
    started = time.monotonic()
    try:
        response = provider.client.call(check.request, classify=lambda r: judged(r, check.parse), attempts=1)
    except StockpipeError as exc:  # no answer (down, hanging, 5xx) is unavailable; a refusal its own code
        if isinstance(exc, (TransportError, UnavailableError)):
            host, port = _address(provider.client.base_url)
            return ProbeResult(provider.name, False, f"{provider.name} unreachable at {host}:{port}: {exc}",
                               ExitCode.UNAVAILABLE)
        return ProbeResult(provider.name, False, str(exc), exc.exit_code)
    latency = time.monotonic() - started
    verdict = judged(response, check.parse)
    refused = verdict.outcome is Outcome.AUTH_FAILED
    key = "not needed" if not provider.needs_key else "refused" if refused else "accepted"
    quota = check.quota(response) or _ledger_quota(provider) or "not published"
    said = f" ({verdict.message})" if verdict.message and verdict.outcome is not Outcome.OK else ""
    detail = f"answered HTTP {response.status} in {latency:.2f} s{said}; key {key}; quota: {quota}"
    if key == "refused":
        detail = (f"{provider.name} refused the API key{said}: check STOCKPIPE_{provider.name.upper()}_API_KEY "
                  f"(answered HTTP {response.status} in {latency:.2f} s)")
    code = ExitCode.CONFIG if key == "refused" else ExitCode.OK
    return ProbeResult(provider.name, code == ExitCode.OK, detail, code, latency, key, quota)


def _ledger_quota(provider: HttpProvider) -> str | None:
    ledger = provider.client.ledger
    return ledger.describe() if ledger is not None else None


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
