"""Secrets out of every message: the registry of known secrets and `redact`.

A leaf module (standard library only), so errors.py can redact every error's message
however it is built, and the HTTP client can filter httpx's own loggers (httpx logs the
full URL, query string included).
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_QUERY_SECRET = re.compile(r"(?i)\b(apikey|api_key|api_token|access_token|token)=[^&\s\"'#<>]+")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s'\"]*):[^@/\s'\"]+@")
_HEADER_SECRET = re.compile(r"(?i)\b(authorization|x-[a-z-]*token|x-api-key)(['\"]?\s*[:=,]\s*['\"]?)"
                            r"(?:(?:bearer|token|basic)\s+)?[^\s'\",)]+")


def register_secret(secret: str) -> None:
    """Make `redact` remove `secret` (raw and URL-encoded) everywhere from now on."""
    if not secret:
        return
    with _SECRETS_LOCK:
        _SECRETS.update(secret_forms(secret))


def secret_forms(secret: str) -> set[str]:
    """`secret` as written and as the two URL encodings put it in a query string."""
    return {secret, quote(secret, safe=""), quote_plus(secret)}


def redact(text: str) -> str:
    """`text` without any registered secret and without the value of any key-like parameter."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    text = _QUERY_SECRET.sub(r"\1=***", text)
    return _HEADER_SECRET.sub(r"\1\2***", text)


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message (and traceback text) through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record must not leak its raw args
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text)
        return True


_FILTER = RedactingFilter()


def filter_loggers(*names: str) -> None:
    """Redact every record these loggers create. A filter on a logger sees only the records
    that logger itself creates, so each module logger of a library needs its own."""
    for name in names:
        logging.getLogger(name).addFilter(_FILTER)
