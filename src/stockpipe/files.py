"""Output files the looking commands write (plot, report, export --out): checked before
any work, replaced atomically (temp file beside it, then rename), so a reader never sees
half a file and a failed write leaves the old one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import UnavailableError, UsageError


def check_output(path: Path, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse an output path whose directory does not exist, or whose suffix is not one of
    `suffixes` (when given), before any work is done.

    Raises:
        UsageError: names the option and the fix.
    """
    if suffixes and path.suffix.lower() not in suffixes:
        raise UsageError(f"{option} {path}: name it *{' or *'.join(suffixes)}")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory: name a file")


def write_atomic(path: Path, data: bytes | Iterable[bytes]) -> Path:
    """Write `data` (bytes, or pieces of it as they are produced) to `path` atomically;
    returns the path. An error while producing the pieces leaves no file behind either.

    Raises:
        UnavailableError: the file cannot be written (permissions, disk full).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            for piece in [data] if isinstance(data, bytes) else data:
                handle.write(piece)
        os.replace(tmp, path)
    except OSError as exc:
        raise UnavailableError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
