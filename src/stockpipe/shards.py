"""Shards: a stable hash slice of the universe (`--shard i/n`).

A symbol belongs to shard `blake2b(symbol) mod n + 1`. The hash is of the canonical
(upper-case) symbol only, so every machine, process and Airflow worker given the same n
agrees on the slices whatever the order or the size of the universe, the n slices cover
it exactly once, and a symbol added to the universe does not move the others. Python's
`hash()` is salted per process and would not do.

Shards of one universe must all use the same n: `--shard 1/4` and `--shard 1/8` overlap,
and their locks (storage/lock.py) do not exclude each other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

from .errors import UsageError

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_SHARDS = 4096


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def slug(self) -> str:
        """A file-name-safe spelling: `3-of-8`."""
        return f"{self.index}-of-{self.count}"

    def owns(self, symbol: str) -> bool:
        return shard_of(symbol, self.count) == self.index

    def select(self, symbols: Iterable[str]) -> list[str]:
        """The symbols of this shard, in the order given."""
        return [s for s in symbols if self.owns(s)]


def shard_of(symbol: str, count: int) -> int:
    """The 1-based shard of `symbol` among `count`."""
    digest = hashlib.blake2b(symbol.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


def parse(text: str, where: str = "--shard") -> Shard:
    """`"3/8"` -> Shard(3, 8).

    Raises:
        UsageError: not `i/n` with 1 <= i <= n <= MAX_SHARDS.
    """
    match = _SPEC.match(str(text))
    if not match:
        raise UsageError(f"{where} {text!r} is not I/N: write e.g. --shard 3/8 (shard 3 of 8, counted from 1)")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise UsageError(f"{where} {text!r}: the number of shards must be 1..{MAX_SHARDS}")
    if not 1 <= index <= count:
        raise UsageError(f"{where} {text!r}: the shard must be 1..{count} (shards are counted from 1)")
    return Shard(index, count)


def select(shard: Shard | None, symbols: Iterable[str]) -> list[str]:
    """`symbols` restricted to `shard` (all of them when there is no shard)."""
    return list(symbols) if shard is None else shard.select(symbols)
