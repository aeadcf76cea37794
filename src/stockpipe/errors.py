"""Error tree and exit codes: the one place that says what each failure means to a shell.

Every error is either transient (the next run may succeed without anyone changing
anything) or terminal (a person must act). Each class carries the exit code the CLI
returns for it; the codes are documented in the README and never change meaning.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (sysexits-style where one exists)."""

    OK = 0
    BUG = 1
    USAGE = 2
    PARTIAL = 3
    CONFIG = 4
    UNAVAILABLE = 5
    QUALITY = 6
    BAD_INPUT = 65
    LOCKED = 75
    NOTHING_TO_DO = 99
    INTERRUPTED = 130


class HealthCode(IntEnum):
    """`health-check` speaks the monitoring (Nagios) convention instead."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class StopsProvider:
    """Marker: the provider answered something that holds for every later call of this run
    (a refused key, a spent quota, a persistent throttle, a plan that is not entitled).

    The fetch loop makes no further calls to that provider, defers the symbols not yet asked
    (they come first next run) and hands them to the next provider of a failover chain.
    """


class NotAsked:
    """Marker: refused before the vendor was asked (e.g. the quota ledger had no call left),
    so the symbol is deferred, not failed."""


class StockpipeError(Exception):
    """Base of every error stockpipe raises on purpose.

    The message says what went wrong, where, and the fix, in one line.
    """

    exit_code: ExitCode = ExitCode.BUG
    transient: bool = False


class TransientError(StockpipeError):
    """Retrying later, unchanged, may succeed."""

    transient = True


class TerminalError(StockpipeError):
    """Retrying will not help until a person changes something."""


class UsageError(TerminalError):
    """A command line that does not say what to do (beyond what the parser checks)."""

    exit_code = ExitCode.USAGE


class ConfigError(TerminalError):
    """Missing or invalid configuration or credentials."""

    exit_code = ExitCode.CONFIG


class BadInputError(TerminalError):
    """Input data or a symbol that cannot be accepted."""

    exit_code = ExitCode.BAD_INPUT


class SymbolNotFoundError(BadInputError):
    """The provider does not know the symbol (permanent for that symbol only)."""


class UnavailableError(TransientError):
    """The database or the storage is unavailable."""

    exit_code = ExitCode.UNAVAILABLE


class DatabaseUnavailableError(UnavailableError):
    """The warehouse cannot be reached or is not migrated."""


class LockedError(TransientError):
    """Another run holds the lock on this data directory."""

    exit_code = ExitCode.LOCKED


class ProviderError(TransientError):
    """A provider failed in a way the next run may not see (down, throttled)."""

    exit_code = ExitCode.PARTIAL


class Interrupted(StockpipeError):
    """SIGINT or SIGTERM arrived; the open transaction was rolled back."""

    exit_code = ExitCode.INTERRUPTED
