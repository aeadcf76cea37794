"""The raw archive: every payload a provider sent, gzipped, before anything parses it.

    raw/<provider>/<UTC day of the run>/<symbol>[.<kind>].<run id>[.<n>].<json|csv|bin>.gz

One writer for every dataset (daily bars, quotes, intraday), so the rules are decided once:

* gzip level 1: a 66 kB EOD answer packs to 17 kB in 0.3 ms where level 5 gave 14 kB in
  0.8 ms, which at a thousand symbols a second was a core's worth of CPU (bench/bench_fetch.py).
* The suffix comes from the media type without its parameters: `text/csv; charset=utf-8`
  is a CSV (`.csv.gz`), anything not JSON or CSV is kept as `.bin.gz`.
* Written to a hidden temp file and renamed, so a reader never sees half a file.
* No path is built from an unchecked string: every name part must be a plain file-name
  piece (no separator, no NUL, not `.`/`..`), and the final path must lie inside the raw
  folder, else BadInputError — a symbol or run id that got past validation still cannot
  write outside the data directory.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

from ..errors import BadInputError

LEVEL = 1
_SUFFIXES = {"application/json": "json", "text/csv": "csv"}


def suffix_for(media_type: str) -> str:
    """`json`, `csv` or `bin` for a Content-Type, parameters (`; charset=`) ignored."""
    return _SUFFIXES.get(media_type.split(";")[0].strip().lower(), "bin")


def archive_path(raw_dir: Path, provider: str, day: dt.date, symbol: str, run_id: str, media_type: str,
                 kind: str | None = None, number: int | None = None) -> Path:
    """Where one payload is kept.

    Raises:
        BadInputError: a name part could leave its folder (a separator, NUL, `..`).
    """
    parts = [_piece(symbol, "symbol"), *([_piece(kind, "kind")] if kind else []), _piece(run_id, "run id"),
             *([str(number)] if number is not None else []), suffix_for(media_type), "gz"]
    folder = raw_dir / _piece(provider, "provider") / day.isoformat()
    path = folder / ".".join(parts)
    if not path.resolve().is_relative_to(raw_dir.resolve()):
        raise BadInputError(f"raw archive path for {symbol!r} leaves {raw_dir}: refusing to write it")
    return path


def write(path: Path, content: bytes) -> None:
    """Gzip `content` to `path` atomically (temp file in the same folder, then rename); a
    write that fails (a full disk) removes its temp file before the error goes on, so only a
    kill can leave one (`stockpipe verify --repair` deletes those)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    try:
        tmp.write_bytes(gzip.compress(content, compresslevel=LEVEL))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _piece(text: str, what: str) -> str:
    if not text or text in (".", "..") or any(c in text for c in "/\\\0") or not text.isprintable():
        raise BadInputError(f"{what} {text[:40]!r} cannot name a file in the raw archive: "
                            "it must not hold / \\ NUL or be . or ..")
    return text
