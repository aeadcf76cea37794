"""columns.py: which cells are plain, and their values, exactly as the per-row readers see them."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from stockpipe.providers.columns import cells, iso_days, number_columns

KEYS = ("open", "volume")


def test_plain_numbers_become_float64_columns():
    rows = [{"open": 1.5, "volume": 100}, {"open": 2, "volume": 2**53 + 1}]
    values, plain = number_columns(cells(rows, KEYS))
    assert plain.tolist() == [True, True]
    assert values.dtype == np.float64 and values.tolist() == [[1.5, 100.0], [2.0, float(2**53 + 1)]]


@pytest.mark.parametrize("cell", [None, "1.5", "NA", True, False, [1], {"v": 1}, 10**400])
def test_anything_but_a_json_number_that_fits_a_float_is_not_plain(cell):
    rows = [{"open": 1.0, "volume": 5}, {"open": cell, "volume": 5}, {"open": 3.0, "volume": 7}]
    values, plain = number_columns(cells(rows, KEYS))
    assert plain.tolist() == [True, False, True]
    assert values[[0, 2]].tolist() == [[1.0, 5.0], [3.0, 7.0]]


def test_cells_in_one_pass_or_key_by_key():
    rows = [{"open": 1, "volume": 2}, {"volume": 4, "open": 3}]
    assert [list(c) for c in cells(rows, KEYS)] == [[1, 3], [2, 4]]
    assert [list(c) for c in cells(rows + [{"open": 5}], KEYS)] == [[1, 3, 5], [2, 4, None]]
    assert [list(c) for c in cells(rows, ("open",))] == [[1, 3]]


def test_a_missing_key_is_not_plain():
    values, plain = number_columns(cells([{"open": 1.0, "volume": 5}, {"open": 2.0}], KEYS))
    assert plain.tolist() == [True, False] and values[0].tolist() == [1.0, 5.0]


def test_nan_infinity_and_zero_stay_for_the_parser_to_judge():
    values, plain = number_columns(cells([{"open": math.nan, "volume": 0}, {"open": -math.inf, "volume": -0.0}], KEYS))
    assert plain.tolist() == [True, True]
    assert math.isnan(values[0, 0]) and values[0, 1] == 0 and values[1, 0] == -math.inf


def test_integers_convert_as_python_float_does():
    big = [2**63 + 1, -(2**64) - 3, 10**300 + 7, 123456789012345678901234567890]
    values, plain = number_columns(cells([{"open": n, "volume": 1} for n in big], KEYS))
    assert plain.all() and values[:, 0].tolist() == [float(n) for n in big]


def test_no_rows():
    values, plain = number_columns(cells([], KEYS))
    assert values.shape == (0, 2) and plain.shape == (0,)


def test_iso_days_reads_real_days_only():
    texts = ["2024-05-06", "2024-02-29", "2023-02-29", "2024-13-01", "2024-00-10", "2024-01-00", "0000-01-01",
             "9999-12-31", "2024-5-06", "2024-05-06T00:00", " 2024-05-0", "2024/05/06", "２０２４-05-06", None, 20240506]
    days, plain = iso_days(texts)
    expected = [dt.date(2024, 5, 6), dt.date(2024, 2, 29)] + [None] * 5 + [dt.date(9999, 12, 31)] + [None] * 7
    assert plain.tolist() == [day is not None for day in expected]
    assert [d.item() if ok else None for d, ok in zip(days, plain)] == expected
    assert np.isnat(days[~plain]).all()


def test_iso_days_agrees_with_fromisoformat_on_every_plain_cell():
    rng = np.random.default_rng(3)
    texts = [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in zip(rng.integers(0, 3000, 400), rng.integers(0, 14, 400),
                                                          rng.integers(0, 33, 400))]
    days, plain = iso_days(texts)
    for text, day, ok in zip(texts, days, plain):
        try:
            expected = dt.date.fromisoformat(text)
        except ValueError:
            expected = None
        assert (day.item() if ok else None) == expected, text


def test_iso_days_of_nothing():
    days, plain = iso_days([])
    assert days.shape == plain.shape == (0,)
