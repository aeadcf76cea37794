"""SIGINT/SIGTERM that cannot be lost.

The signal handler raises KeyboardInterrupt wherever the main thread happens to be; when
that is inside a finalizer or a weakref callback (SQLAlchemy and pandas run some during
garbage collection), Python prints "Exception ignored" and carries on, and the run would
finish with exit 0 after systemd or Airflow asked it to stop. So the handler also records
the request, and the pipeline checks it at safe points (every progress report, and
before recording a run as finished), raising KeyboardInterrupt again there.
"""

from __future__ import annotations

import signal

_requested: list[int] = []


def install() -> None:
    """Handle SIGINT and SIGTERM (systemd stop, Airflow kill) like Ctrl-C: transactions roll back."""
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)


def _handle(signum, frame) -> None:
    _requested.append(signum)
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested (even one whose first raise was lost)."""
    if _requested:
        raise KeyboardInterrupt


def reset() -> None:
    _requested.clear()
