"""Sweep grids: parsing, cell bounds in log space, merging of near-equal values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.inputs.grids import Grid, cell_log_bounds, merge_close


def test_power_spec_gives_exact_powers_of_two():
    grid = Grid.parse("2^-12:2^-8:1")
    assert grid.values.tolist() == [2.0**-12, 2.0**-11, 2.0**-10, 2.0**-9, 2.0**-8]


def test_half_step_power_spec():
    grid = Grid.parse("2^16:2^19:0.5")
    expected = [2.0 ** (16 + 0.5 * k) for k in range(7)]
    np.testing.assert_allclose(grid.values, expected, rtol=1e-12)


def test_power_spec_never_overshoots_hi():
    # 4 / 1.5 = 2.67 steps: the grid is 2^-12, 2^-10.5, 2^-9 and must stop there (not 2^-7.5).
    grid = Grid.parse("2^-12:2^-8:1.5")
    np.testing.assert_allclose(grid.values, [2.0**-12, 2.0**-10.5, 2.0**-9], rtol=1e-12)
    assert grid.values.max() <= 2.0**-8


def test_comma_list_is_sorted_and_kept():
    grid = Grid.parse(" 4e-3, 1e-3 ,2e-3 ")
    assert grid.values.tolist() == [1e-3, 2e-3, 4e-3]


def test_single_value_grid():
    assert Grid.parse("0.5").values.tolist() == [0.5]


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("2^-12:2^-8", "BASE^LO:BASE^HI:STEP"),
        ("2^-12:2^-8:1:2", "BASE^LO:BASE^HI:STEP"),
        ("2^-12:3^-8:1", "same base"),
        ("2^-8:2^-12:1", "LO <= HI"),
        ("2^-12:2^-8:0", "positive step"),
        ("2^-12:2^-8:-1", "positive step"),
        ("2^-12:2^-8:nan", "positive step"),
        ("2^-12:2^-8:x", "step 'x' is not a number"),
        ("1e-3:1e-2:1", "write powers like 2^-12"),
        ("2..^-12:2^-8:1", "write powers like 2^-12"),
        ("2^-1.2.3:2^-8:1", "write powers like 2^-12"),
        ("1^-3:1^2:1", "base must be positive and not 1"),
        ("2^-12:2^-8:1e-9", "at most"),
        ("1e-3,abc", "separated by commas"),
        ("1e-3,-1", "positive finite"),
        ("0,1", "positive finite"),
        ("nan,1", "positive finite"),
        ("inf", "positive finite"),
        ("", "positive finite"),
        (",", "positive finite"),
    ],
)
def test_bad_specs_raise_one_line_input_error(spec, hint):
    with pytest.raises(InputError) as info:
        Grid.parse(spec)
    message = str(info.value)
    assert hint in message
    assert "\n" not in message


def test_long_bad_list_error_stays_on_one_line():
    spec = ",".join(str(0.001 * k) for k in range(-1, 60))
    with pytest.raises(InputError) as info:
        Grid.parse(spec)
    assert "\n" not in str(info.value)


def test_interior_log_bounds_are_log_midpoints():
    grid = Grid.parse("2^-12:2^-8:1")
    lo, hi = grid.log_bounds(2.0**-10)
    assert lo == pytest.approx((math.log(2.0**-11) + math.log(2.0**-10)) / 2, rel=1e-12)
    assert hi == pytest.approx((math.log(2.0**-10) + math.log(2.0**-9)) / 2, rel=1e-12)
    # i.e. half a grid step either side: log 2^-10.5 and log 2^-9.5
    assert lo == pytest.approx(-10.5 * math.log(2), rel=1e-12)
    assert hi == pytest.approx(-9.5 * math.log(2), rel=1e-12)


def test_edge_cells_are_open():
    grid = Grid.parse("2^-12:2^-8:1")
    lo, hi = grid.log_bounds(2.0**-12)
    assert lo == -math.inf
    assert hi == pytest.approx(-11.5 * math.log(2), rel=1e-12)
    lo, hi = grid.log_bounds(2.0**-8)
    assert lo == pytest.approx(-8.5 * math.log(2), rel=1e-12)
    assert hi == math.inf


def test_single_point_grid_cell_is_open_both_ways():
    assert Grid.parse("0.01").log_bounds(0.01) == (-math.inf, math.inf)


def test_log_bounds_of_printed_value_match_exact_grid_point():
    grid = Grid.parse("2^-12:2^-8:1")
    assert grid.log_bounds(0.003906) == grid.log_bounds(2.0**-8)
    assert grid.index_of(0.003906) == 4


def test_off_grid_value_is_rejected():
    grid = Grid.parse("2^-12:2^-8:1")
    assert grid.index_of(3e-3) == -1
    assert grid.index_of(2.0**-7) == -1
    with pytest.raises(InputError, match="not on the grid"):
        grid.log_bounds(3e-3)


def test_cell_log_bounds_uneven_grid():
    logs = np.log([1.0, 2.0, 8.0])
    lo, hi = cell_log_bounds(logs, 1)
    assert lo == pytest.approx(0.5 * math.log(2.0))
    assert hi == pytest.approx(0.5 * (math.log(2.0) + math.log(8.0)))


def test_merge_close_merges_printing_variants():
    merged = merge_close(np.array([0.0003453, 0.000345, 0.000488]))
    assert merged.tolist() == [0.000345, 0.000488]


def test_merge_close_keeps_a_grid_step_apart():
    values = 2.0 ** np.arange(-12, -7, 0.5)
    assert merge_close(values).tolist() == values.tolist()


def test_grid_merges_duplicates_on_construction():
    grid = Grid.parse("0.000345,0.0003453,0.000488")
    assert grid.values.size == 2
    assert grid.index_of(0.0003453) == 0
