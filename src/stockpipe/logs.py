"""Log lines on stderr: plain text for people, one JSON object per line for journald and
log shippers (`--log-format json`, `STOCKPIPE_LOG_FORMAT=json`).

Decisions:
    * Levels. The `stockpipe` logger passes WARNING and up in text mode (a person reads the
      result on stdout; only problems belong on stderr), INFO and up in json mode (a log
      shipper wants every per-symbol outcome), DEBUG and up with `--debug` in either.
    * One line per symbol per stage. `outcomes()` logs each `SymbolOutcome` once it is
      committed next to its `run_events` row: `failed` at WARNING (so text mode shows every
      failure exactly once), every other status (ok, no_data, throttled, skipped) at INFO.
    * Context rides a contextvar: `pipeline.context.recorded` binds run_id, command and shard for
      the whole invocation, `@stage(name)` binds the stage around each stage function, so no
      function passes them along. `carry()` hands them to worker threads (a thread pool does
      not copy contextvars).
    * JSON fields: ts (UTC, ISO 8601, milliseconds), level, logger, message, the bound
      fields (run_id, command, shard, stage), the record's own fields (symbol, outcome,
      rows, api_calls, provider, and exit_code on the CLI's closing error line; a record's
      own value wins over a bound one) and, when there is a traceback (`--debug`), exc.
      None values are left out. `json.dumps` escapes quotes and newlines, so every record
      is exactly one line of valid JSON. In json mode the CLI's `error:` line is such a
      record too (render.error_line), so every line on stderr parses.
    * Secrets: the HTTP layer redacts keys from its messages; as a last guard both formats
      drop the query string of every URL in a message, so no `?apikey=...` reaches a log.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

from .models import SymbolOutcome

FORMATS = ("text", "json")
LOGGER = "stockpipe"
RECORD_FIELDS = ("command", "stage", "symbol", "outcome", "rows", "api_calls", "provider", "exit_code")

log = logging.getLogger(LOGGER)
_fields: ContextVar[Mapping[str, Any]] = ContextVar("stockpipe_log_fields", default=MappingProxyType({}))
_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s#\"'<>]*")

F = TypeVar("F", bound=Callable[..., Any])


def configure(fmt: str, debug: bool, outcomes: bool = True) -> None:
    """Send the `stockpipe` loggers to stderr in `fmt` ("text" or "json") at the level above.

    `outcomes=False` (text only): leave out the per-symbol outcome lines, because the result
    printed on the same terminal lists every failure (a failure is shown once)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if not outcomes and fmt != "json":
        handler.addFilter(lambda record: getattr(record, "outcome", None) is None)
    root = logging.getLogger(LOGGER)
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO if fmt == "json" else logging.WARNING)


def json_enabled() -> bool:
    """Whether `configure` chose JSON lines (other stderr writers follow suit)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger(LOGGER).handlers)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add `fields` to every log line emitted inside the block (in this thread)."""
    token = _fields.set(MappingProxyType({**_fields.get(), **fields}))
    try:
        yield
    finally:
        _fields.reset(token)


def stage(name: str) -> Callable[[F], F]:
    """Decorator: bind `stage=name` while the function runs."""

    def wrap(function: F) -> F:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with bind(stage=name):
                return function(*args, **kwargs)

        return run  # type: ignore[return-value] - same signature, wrapped

    return wrap


def carry(function: F) -> F:
    """`function` running with the fields bound now, whichever thread calls it later."""
    fields = _fields.get()

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = _fields.set(fields)
        try:
            return function(*args, **kwargs)
        finally:
            _fields.reset(token)

    return run  # type: ignore[return-value] - same signature, wrapped


def outcomes(items: Iterable[SymbolOutcome]) -> None:
    """One log line per symbol outcome: `failed` at WARNING, the rest at INFO."""
    for outcome in items:
        level = logging.WARNING if outcome.status == "failed" else logging.INFO
        if not log.isEnabledFor(level):
            continue
        detail = outcome.message or f"{outcome.rows} row(s)"
        log.log(level, "%s %s %s: %s", outcome.stage, outcome.symbol, outcome.status, detail,
                extra={"stage": outcome.stage, "symbol": outcome.symbol, "outcome": outcome.status,
                       "rows": outcome.rows, "api_calls": outcome.api_calls, "provider": outcome.provider or None})


def scrub(text: str) -> str:
    """`text` with the query string of every URL cut off (`https://h/p?apikey=x` -> `https://h/p?...`)."""
    return _URL_QUERY.sub(r"\1?...", text)


class TextFormatter(logging.Formatter):
    """`2026-11-23 22:41:07,120 WARNING fetch AAPL failed: ...`, URLs without query strings."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        doc.update((k, v) for k, v in _fields.get().items() if v is not None)
        doc.update((k, getattr(record, k)) for k in RECORD_FIELDS if getattr(record, k, None) is not None)
        if record.exc_info:
            doc["exc"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exc"] = scrub(record.exc_text)
        return json.dumps(doc, default=str)
