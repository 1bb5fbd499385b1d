"""The constructions the theorem findings' measurements and planted settings rest on, each against what it
must do (so that a planted setting holds or fails for the reason its docstring gives)."""

import pytest
import torch

from sparse_bench.targets import BumpFamily, random_subspace, uniform_cube
from theory_checks.findings.lemma42_geometry import nested_hashes
from theory_checks.findings.lsh_common import dimension_band, lifted_pstable, slope
from theory_checks.findings.theorem41_rates import GridHash, lattice_inputs, triangle_wave
from theory_checks.findings.theorem43_separation import bump_units, oracle_unit
from theory_checks.paper.geometry import unit_ball_points


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_dimension_band_holds_k_and_excludes_its_neighbours(k):
    low, high = dimension_band(k)
    assert low < -1 / k < high
    assert not low < -1 / (k + 1) < high and (k == 1 or not low < -1 / (k - 1) < high)


def test_slope_of_a_power_law_is_its_exponent():
    x = [1.0, 2.0, 5.0, 11.0]
    assert slope(x, [3 * v**-0.7 for v in x]) == pytest.approx(-0.7, abs=1e-12)


def test_lifted_hash_has_the_same_cells_on_the_subspace_for_every_d():
    z = unit_ball_points(500, 2, _gen(1))
    codes = []
    for d in (3, 40):
        basis = random_subspace(d, 2, _gen(d))
        codes.append(lifted_pstable(basis, 6, 0.3, seed=9).codes(z @ basis.T))
    assert torch.equal(codes[0], codes[1])


def test_grid_lattice_puts_the_same_points_in_every_cube():
    basis = random_subspace(5, 2, _gen(2))
    z, x = lattice_inputs(basis, 4)
    _, counts = torch.unique(GridHash(basis, 4, seed=3).bucket(x), return_counts=True)
    assert counts.numel() == 16 and bool((counts == 4).all())  # 2 x 2 lattice points in each of 4 x 4 cubes
    assert float(z.abs().max()) < 0.5


def test_triangle_wave_has_unit_slope_and_range():
    s = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    v = triangle_wave(s)
    assert float(v.min()) >= 0 and float(v.max()) <= 1
    steps = (v[1:] - v[:-1]).abs() / (s[1] - s[0])
    assert float(torch.quantile(steps, 0.99)) == pytest.approx(1.0, abs=1e-9)


def test_nested_hashes_refine_as_more_are_taken():
    x = uniform_cube(2000, 16, _gen(4))
    small, large = nested_hashes(16, 4, 0.25, seed=5), nested_hashes(16, 8, 0.25, seed=5)
    assert torch.equal(large.codes(x)[:, :4], small.codes(x))  # a bucket of 8 hashes lies in one of 4


@pytest.mark.parametrize("k, spacing", [(1, 0.25), (2, 0.5)])
def test_bump_units_fit_only_with_a_unit_per_bump(k, spacing):
    f = BumpFamily(k, spacing, seed=6)
    x, xv, grid = uniform_cube(1024, k, _gen(7)), uniform_cube(256, k, _gen(8)), uniform_cube(512, k, _gen(9))
    errors = {}
    for width in (f.num_bumps - 1, f.num_bumps):
        model = bump_units(f, k, width, seed=0).fit_validated(x, f(x), xv, f(xv))
        errors[width] = float((model.predict(grid) - f(grid)).abs().max())
    assert errors[f.num_bumps] < 1e-3 * f.radius < errors[f.num_bumps - 1]


def test_oracle_unit_fits_at_any_width():
    f = BumpFamily(2, 0.5, seed=10)
    x, xv = uniform_cube(512, 2, _gen(11)), uniform_cube(128, 2, _gen(12))
    model = oracle_unit(f, 2, 1, seed=0).fit_validated(x, f(x), xv, f(xv))
    grid = uniform_cube(256, 2, _gen(13))
    assert float((model.predict(grid) - f(grid)).abs().max()) < 1e-3 * f.radius
    assert model.flops_per_input() == 3  # (d + 1) x width
