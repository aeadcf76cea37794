"""Whole-column reading of JSON rows: the fast path of the vendor parsers. Pure.

A daily answer is a list of a few hundred dicts whose numbers are plain JSON numbers and
whose dates are `YYYY-MM-DD`. Read cell by cell through the careful per-value helpers it
costs ~10 µs a row, which was most of a fetch's CPU (bench/bench_fetch.py). These helpers
read a whole column at once with numpy and say which rows are *plain*:

* a number cell is plain when it holds a JSON number: `int` or `float`, never `bool`
  (a subclass of int), never text, null or a nested value, and it fits a float64;
* a date cell is plain when it is a 10-character `YYYY-MM-DD` string naming a real day
  of years 1..9999 (what `datetime.date.fromisoformat` accepts in that shape).

Decision: the helpers judge nothing else. NaN and infinities (JSON's `NaN`/`Infinity`
literals) stay in the values, zeros too: the parser applies its own rules to plain rows
vectorised and sends every other row through its per-row path, so rejects and their
reasons stay exactly what the per-row path gives (tests/providers/test_columns.py).
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import numpy as np

_PLAIN = (float, int)
_PLAIN_SET = frozenset(_PLAIN)
_DATE_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]  # positions of the digits in YYYY-MM-DD


def cells(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[Sequence[Any]]:
    """The values of each key, one sequence per key, in row order (None where a row lacks it)."""
    if len(keys) > 1:
        try:  # one pass over the rows when every row has every key (the usual answer)
            return list(zip(*map(operator.itemgetter(*keys), rows))) if rows else [() for _ in keys]
        except KeyError:
            pass
    return [[row.get(key) for row in rows] for key in keys]


def number_columns(columns: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(values, plain): float64 of shape (rows, len(columns)), and which rows hold a plain
    JSON number in every column. Cells of rows that are not plain are NaN: ignore them."""
    rows = len(columns[0]) if columns else 0
    values = np.full((rows, len(columns)), np.nan)
    plain = np.ones(rows, dtype=bool)
    for j, column in enumerate(columns):
        if set(map(type, column)) <= _PLAIN_SET:
            try:
                values[:, j] = column
                continue
            except OverflowError:  # an integer beyond float64: judged cell by cell below
                pass
        plain &= _plain_cells(column, values[:, j])
    return values, plain


def _plain_cells(column: Sequence[Any], out: np.ndarray) -> np.ndarray:
    """Fill `out` with the plain numbers of `column`; return where they are."""
    flags = np.zeros(len(column), dtype=bool)
    for i, value in enumerate(column):
        if type(value) in _PLAIN:
            try:
                out[i] = float(value)
            except OverflowError:
                continue
            flags[i] = True
    return flags


def iso_days(texts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(days, plain): datetime64[D] (NaT where not plain) and which cells are plain dates."""
    n = len(texts)
    days = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    if set(map(type, texts)) <= {str} and "".join(texts).isascii():
        shaped = np.fromiter(map(len, texts), dtype=np.int64, count=n) == 10
    else:
        shaped = np.fromiter((type(t) is str and len(t) == 10 and t.isascii() for t in texts), dtype=bool, count=n)
    if not shaped.any():
        return days, shaped
    picked = texts if shaped.all() else [t for t, ok in zip(texts, shaped) if ok]
    cells = np.frombuffer("".join(picked).encode("ascii"), dtype=np.uint8).reshape(-1, 10).astype(np.int64)
    good, dated = _calendar_days(cells - ord("0"), picked)
    plain = np.zeros(n, dtype=bool)
    plain[np.flatnonzero(shaped)[good]] = True
    days[plain] = dated[good]
    return days, plain


def _calendar_days(cells: np.ndarray, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(good, days) for `texts`, ten characters each, given as `cells` (character - "0")."""
    dash = ord("-") - ord("0")
    digits = cells[:, _DATE_DIGITS]
    good = ((digits >= 0) & (digits <= 9)).all(axis=1) & (cells[:, 4] == dash) & (cells[:, 7] == dash)
    good &= cells[:, :4].any(axis=1)  # year 0000 is no date
    if good.all():
        try:  # numpy's own parser, safe on this exact shape; it refuses 2024-02-30 and 2024-13-01
            return good, np.array(texts, dtype="datetime64[D]")
        except ValueError:
            pass
    year = cells[:, 0] * 1000 + cells[:, 1] * 100 + cells[:, 2] * 10 + cells[:, 3]
    month = cells[:, 5] * 10 + cells[:, 6]
    day = cells[:, 8] * 10 + cells[:, 9]
    good &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
    months = np.where(good, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + np.where(good, day - 1, 0).astype("timedelta64[D]")
    good &= days.astype("datetime64[M]") == months  # 2024-02-30 rolls into March: not a day
    return good, days
