"""Error tree and exit codes: the one place that says what each failure means to a shell.

Every error is either transient (`TransientError`: the next run may succeed without anyone
changing anything) or terminal (`TerminalError`: a person must act). Each class carries the
exit code the CLI returns for it; the codes are documented in the README and never change
meaning. Two marker mixins say what the fetch loop must do beyond that (the way dlt marks
its exceptions): `StopsProvider` and `NotAsked`; it tests them with isinstance.

Every message passes through `redaction.redact` however the error is built, so no
registered key, crumb or key-like query parameter reaches a message, a log or a stored row.
"""

from __future__ import annotations

import datetime as dt
import errno
from enum import IntEnum

from .redaction import redact


class ExitCode(IntEnum):
    """Process exit codes (sysexits-style where one exists)."""

    OK = 0
    BUG = 1
    USAGE = 2
    PARTIAL = 3
    CONFIG = 4
    UNAVAILABLE = 5
    QUALITY = 6
    INCONSISTENT = 7
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

    The message says what went wrong, where, and the fix, in one line; it is redacted.
    """

    exit_code: ExitCode = ExitCode.BUG
    api_calls: int = 0  # calls a provider spent before failing (the quota ledger counts them too)

    def __init_subclass__(cls, exit_code: ExitCode | None = None, **kwargs: object) -> None:
        """`class XError(Base, exit_code=ExitCode.X)` sets the code; without it, the base's holds."""
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(redact(message) if isinstance(message, str) else message, *args)


class TransientError(StockpipeError):
    """Retrying later, unchanged, may succeed."""


class TerminalError(StockpipeError):
    """Retrying will not help until a person changes something."""


class UsageError(TerminalError, exit_code=ExitCode.USAGE):
    """A command line that does not say what to do (beyond what the parser checks)."""


class ConfigError(TerminalError, exit_code=ExitCode.CONFIG):
    """Missing or invalid configuration or credentials."""


class BadInputError(TerminalError, exit_code=ExitCode.BAD_INPUT):
    """Input data or a symbol that cannot be accepted."""


class SymbolNotFoundError(BadInputError):
    """The provider does not know the symbol (permanent for that symbol only)."""


class NoDataError(BadInputError):
    """The warehouse holds nothing for what was asked (a symbol never loaded, a window or a
    run without rows): the looking commands (show, plot, report, export) say so and exit 65."""


class UnavailableError(TransientError, exit_code=ExitCode.UNAVAILABLE):
    """The database, the storage or a provider's server is unavailable."""


class DatabaseUnavailableError(UnavailableError):
    """The warehouse cannot be reached or is not migrated."""


class LakeDamagedError(UnavailableError):
    """A lake file the Delta log references is gone, cut short, not Parquet or modified
    after its commit: nothing reads the table until `stockpipe verify --repair` moves the
    file aside (exit 5, like any storage that cannot be read)."""


class LockedError(TransientError, exit_code=ExitCode.LOCKED):
    """Another run holds the lock on this data directory."""


# ------------------------------------------------------------------ provider errors
# A provider's failure fails its symbols, not the run: exit 3 (partial), except a refused
# key (exit 4, a configuration a person must fix).


class ProviderError(TransientError, exit_code=ExitCode.PARTIAL):
    """A provider failed in a way the next run may not see (down, throttled)."""


class TransportError(ProviderError):
    """Timeouts, connection errors, truncated or endless bodies, 5xx: after the retries."""


class ProtocolError(ProviderError):
    """A body that makes no sense (or is too large): log it, store nothing."""


class AuthFailedError(StopsProvider, ConfigError):
    """The provider refused the key (or the session), or none is set: stop the provider."""


class CertificateError(StopsProvider, ConfigError):
    """The vendor's TLS certificate did not verify (self-signed, wrong host, expired): never
    retried, never worked around; the provider is stopped for the run (exit 4)."""


class NotEntitledError(StopsProvider, TerminalError, exit_code=ExitCode.PARTIAL):
    """The plan does not cover this endpoint/parameter: terminal for that combination.

    It stops the provider's calls to that endpoint for the run (a fetch uses one endpoint,
    so: the provider); with failover the next provider serves the rest. Exit 3: the other
    symbols are committed, and another provider or plan serves these.
    """


class QuotaExhaustedError(StopsProvider, ProviderError):
    """The daily/plan quota is spent: stop the provider until `resets_at`."""

    def __init__(self, message: str, resets_at: dt.datetime | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at

    def not_asked(self) -> "QuotaExhaustedError":
        """The same refusal, made before the vendor was asked (the ledger's, not the vendor's)."""
        return QuotaNotAskedError(str(self), self.resets_at)


class QuotaNotAskedError(NotAsked, QuotaExhaustedError):
    """The quota ledger had no call left: refused before the vendor was asked."""


class RateLimitedError(StopsProvider, ProviderError):
    """Still throttled after the retries, or asked to wait longer than the cap.

    It stops the provider for the run: a throttle that outlasts the retries is an IP block
    or an hourly allocation in practice (PROVIDERS.md); the next run takes the rest.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def not_asked(self) -> "RateLimitedError":
        """The same refusal, made before the vendor was asked (by the client's own limiter)."""
        return RateLimitNotAskedError(str(self), self.retry_after)


class ProviderUnreachableError(StopsProvider, UnavailableError):
    """Consecutive connection failures or timeouts, across symbols, reached the limit
    (`unreachable_after`): the vendor is down or hangs, so the provider is stopped for the
    run (exit 5, unavailable) and the rest is deferred or fails over."""


class RateLimitNotAskedError(NotAsked, RateLimitedError):
    """The client's own rate limit would wait past its cap: refused before the vendor was asked."""


# ------------------------------------------------------------------ the system's own failures

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_PATH = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENOENT)


def from_os_error(exc: BaseException) -> StockpipeError | None:
    """The StockpipeError an OSError that reached no handler stands for, or None.

    A full disk (or quota) is exit 5: the storage is unavailable until space is freed. A path
    that cannot be written (read-only file system, no permission, a file where a directory
    should be, a directory that cannot be created) is exit 4: the configuration points at it.
    """
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    where = exc.filename if exc.filename is not None else "the data directory"
    if exc.errno in _FULL:
        return UnavailableError(f"no space left writing {where} ({exc.strerror}): free space on that file system "
                                "or move the data directory, then run again")
    if exc.errno in _PATH:
        return ConfigError(f"cannot write {where} ({exc.strerror}): point STOCKPIPE_DATA_DIR / --data-dir at a "
                           "writable directory, or fix its permissions")
    return None
