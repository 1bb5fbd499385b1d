"""Unit tests of sparse_bench.targets: closed forms, float64 loops, stated Lipschitz bounds, sampler laws."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from sparse_bench.targets import (bump_family, hypercube_function, lipschitz_constant, paper_targets,
                                  random_polynomial, random_subspace, uniform_cube, uniform_sphere,
                                  uniform_subspace_cube)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_polynomial_matches_python_loop_and_l1_norm():
    f = random_polynomial(3, 4, seed=1)
    assert f.exponents.shape[0] == math.comb(3 + 4, 4)  # all monomials of degree <= 4 in 3 variables
    assert abs(f.coefs.abs().sum().item() - 0.99) < 1e-12
    x = uniform_cube(20, 3, _gen(1))
    ref = [sum(c * np.prod([xi**e for xi, e in zip(row, exps)])
               for c, exps in zip(f.coefs.tolist(), f.exponents.tolist())) for row in x.tolist()]
    np.testing.assert_allclose(f(x).numpy(), ref, rtol=1e-12, atol=1e-14)
    assert f(x).abs().max() < 1
    assert lipschitz_constant(f, uniform_cube(2000, 3, _gen(2))) <= f.lipschitz_bound


def test_hypercube_function_interpolates_corners():
    f = hypercube_function(4, seed=3)
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4)), dtype=torch.float64)
    index = ((corners > 0).long() * (2 ** torch.arange(4))).sum(1)  # bit i set when y_i = +1
    torch.testing.assert_close(f(corners), f.corner_values[index])
    x = uniform_cube(50, 4, _gen(3))
    corners = list(itertools.product([-1, 1], repeat=4))
    ref = [sum(f.corner_values[int(sum((y > 0) << i for i, y in enumerate(c)))].item()
               * np.prod([(1 + y * xi) / 2 for y, xi in zip(c, row)]) for c in corners)
           for row in x.tolist()]
    np.testing.assert_allclose(f(x).numpy(), ref, rtol=1e-12, atol=1e-14)
    assert lipschitz_constant(f, uniform_cube(2000, 4, _gen(4))) <= f.lipschitz_bound


def test_paper_targets_are_the_degree_4_polynomial_and_the_hypercube_function():
    targets = paper_targets(8, seed=5)
    assert list(targets) == ["polynomial", "hypercube"]
    x = uniform_cube(100, 8, _gen(5))
    assert torch.equal(targets["polynomial"](x), random_polynomial(8, 4, seed=5)(x))
    assert torch.equal(targets["hypercube"](x), hypercube_function(8, seed=5)(x))
    assert not torch.equal(targets["hypercube"](x), paper_targets(8, seed=6)["hypercube"](x))


def test_bump_family_height_lipschitz_and_signs():
    f = bump_family(2, 0.5, seed=5)
    assert f.num_bumps == 16
    torch.testing.assert_close(f(f.centres).abs(), torch.full((16,), 0.25, dtype=torch.float64))
    torch.testing.assert_close(f(f.centres), f.signs * 0.25)
    est = lipschitz_constant(f, uniform_cube(4000, 2, _gen(6)))
    assert 0.99 < est <= 1.0 + 1e-12
    with pytest.raises(ValueError, match="spacing"):
        bump_family(2, 3.0)


def test_samplers_are_deterministic_and_in_range():
    a, b = uniform_cube(100, 3, _gen(7)), uniform_cube(100, 3, _gen(7))
    assert torch.equal(a, b) and a.abs().max() <= 1
    s = uniform_sphere(100, 5, _gen(8))
    torch.testing.assert_close(s.norm(dim=1), torch.ones(100, dtype=torch.float64))
    with pytest.raises(TypeError, match="generator"):
        uniform_cube(3, 2, 0)
    with pytest.raises(ValueError, match="n must be"):
        uniform_sphere(-1, 2, _gen())


def test_subspace_sampler_lies_on_subspace_and_is_uniform():
    g = _gen(9)
    basis = random_subspace(20, 2, g)
    torch.testing.assert_close(basis.T @ basis, torch.eye(2, dtype=torch.float64))
    x = uniform_subspace_cube(4000, basis, g)
    assert x.shape == (4000, 20) and x.abs().max() <= 1
    torch.testing.assert_close(x - (x @ basis) @ basis.T, torch.zeros_like(x), atol=1e-12, rtol=0)
    # uniform on the polytope: the coordinates along a fixed direction are symmetric about 0
    z = (x @ basis)[:, 0].numpy()
    assert stats.wilcoxon(z).pvalue > 1e-3
    assert uniform_subspace_cube(0, basis, g).shape == (0, 20)
    with pytest.raises(ValueError, match="orthonormal"):
        uniform_subspace_cube(5, 2 * basis, g)
    with pytest.raises(ValueError, match="k must be"):
        random_subspace(3, 4, g)


def test_subspace_sampler_on_full_space_is_uniform_cube():
    g = _gen(10)
    basis = random_subspace(2, 2, g)
    x = uniform_subspace_cube(3000, basis, g).numpy()
    for col in x.T:  # each coordinate uniform on [-1, 1]
        assert stats.kstest(col, stats.uniform(-1, 2).cdf).pvalue > 1e-3
