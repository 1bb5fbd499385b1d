"""sparse_bench.dsm.random_hash: DSMs whose active block of units a fixed hash of the input chooses."""

import math

import pytest
import torch
from scipy import stats

from sparse_bench.dsm import RandomFeaturesDense, select_ridge
from sparse_bench.dsm.masked import RIDGE_GRID
from sparse_bench.dsm import LSHModel
from sparse_bench.dsm.random_hash import (HashRoutedDSM, RandomBucketHash, lsh_routed_dsm, random_hash_dsm,
                                         select_routed_ridge)
from sparse_bench.routing.hash_router import HashRouter
from sparse_bench.routing.lsh import LSHRouter
from sparse_bench.targets import hypercube_function, uniform_cube

D, S, BLOCKS = 8, 6, 4
MAKERS = (random_hash_dsm, lsh_routed_dsm)


def _x(n, seed=0):
    return uniform_cube(n, D, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make", MAKERS)
def test_features_live_on_the_routed_block(make):
    model = make(D, BLOCKS * S, S, seed=1)
    x = _x(50)
    block, mask, feats = model.block(x), model.mask(x), model.features(x)
    assert block.shape == (50,) and block.dtype == torch.int64 and 0 <= block.min() and block.max() < BLOCKS
    assert mask.shape == feats.shape == (50, BLOCKS * S)
    assert (mask.sum(dim=1) == S).all()
    assert (feats[~mask] == 0).all()
    expected = torch.relu(x @ model.weight.T + model.bias)  # every unit's activation, float64
    torch.testing.assert_close(feats[mask], expected[mask])
    units = torch.arange(BLOCKS * S) // S
    assert (mask == (units.unsqueeze(0) == block.unsqueeze(1))).all()


@pytest.mark.parametrize("make", MAKERS)
def test_routing_is_per_input(make):
    """A row's block depends on that row alone, not on the batch around it."""
    model, x = make(D, BLOCKS * S, S, seed=2), _x(40)
    alone = torch.cat([model.block(x[i:i + 1]) for i in range(40)])
    assert torch.equal(alone, model.block(x))


def test_random_hash_ignores_geometry_and_lsh_does_not():
    """Pairs of inputs 1e-9 apart share a random-hash block with probability 1/E (binomial test at 1e-3), an
    LSH block almost always (a SimHash bit flips only for pairs straddling a hyperplane); the random hash's
    blocks are uniform (chi-square at 1e-3)."""
    x = _x(4000, seed=3)
    near = x + 1e-9 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    random, lsh = random_hash_dsm(D, BLOCKS * S, S, seed=5), lsh_routed_dsm(D, BLOCKS * S, S, seed=5)
    shared = int((random.block(x) == random.block(near)).sum())
    assert stats.binomtest(shared, 4000, 1 / BLOCKS).pvalue > 1e-3
    assert (lsh.block(x) == lsh.block(near)).float().mean() > 0.99
    counts = torch.bincount(random.block(x), minlength=BLOCKS)
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_units_share_the_dense_models_directions():
    """One seed draws the units like TopKDSM's: the first s directions are the dense model's of width s."""
    dense, routed = RandomFeaturesDense(D, S, seed=7), random_hash_dsm(D, BLOCKS * S, S, seed=7)
    assert torch.equal(routed.weight[:S], dense.weight)


def _rounding_bound(features: torch.Tensor, ridge: float, weights: torch.Tensor) -> float:
    """What two float64 solvers of (F^T F + n ridge I) a = F^T y may differ by: the system's condition number
    times float64's epsilon times the solution's size, with a factor 10 for the solvers' own constants."""
    n = features.shape[0]
    largest = float(torch.linalg.eigvalsh(features.T @ features).max())
    condition = (largest + n * ridge) / (n * ridge)
    return 10 * condition * torch.finfo(torch.float64).eps * float(weights.abs().max())


@pytest.mark.parametrize("make", MAKERS)
def test_block_ridge_equals_select_ridge_on_masked_features(make):
    """The block-by-block solution is select_ridge's on the (n, E s) masked features (float64)."""
    model = make(D, BLOCKS * S, S, seed=8)
    x, x_val = _x(120, seed=9), _x(40, seed=10)
    f = hypercube_function(D, seed=11)
    ours = select_routed_ridge(model.features(x), model.block(x), f(x), model.features(x_val),
                               model.block(x_val), f(x_val), S, RIDGE_GRID)
    reference = select_ridge(model.features(x), f(x), model.features(x_val), f(x_val), RIDGE_GRID)
    assert ours[0] == reference[0]
    tol = _rounding_bound(model.features(x), ours[0], reference[1])
    torch.testing.assert_close(ours[1], reference[1], rtol=0, atol=tol)
    torch.testing.assert_close(torch.tensor(ours[2]), torch.tensor(reference[2]), rtol=1e-8, atol=1e-14)
    model.fit_validated(x, f(x), x_val, f(x_val))
    torch.testing.assert_close(model.predict(x_val), model.features(x_val) @ ours[1])


def test_block_ridge_with_an_unused_block_keeps_it_zero():
    """A block no training row reaches contributes a zero readout; its validation rows are predicted 0."""
    gen = torch.Generator().manual_seed(12)
    feats = torch.zeros(30, 2 * S, dtype=torch.float64)
    feats[:, :S] = torch.rand(30, S, generator=gen, dtype=torch.float64)  # every training row in block 0
    val = torch.zeros(10, 2 * S, dtype=torch.float64)
    val[:5, :S] = torch.rand(5, S, generator=gen, dtype=torch.float64)
    val[5:, S:] = torch.rand(5, S, generator=gen, dtype=torch.float64)
    block, val_block = torch.zeros(30, dtype=torch.int64), torch.tensor([0] * 5 + [1] * 5)
    y, y_val = torch.randn(30, generator=gen, dtype=torch.float64), torch.randn(10, generator=gen,
                                                                             dtype=torch.float64)
    ours = select_routed_ridge(feats, block, y, val, val_block, y_val, S, RIDGE_GRID)
    reference = select_ridge(feats, y, val, y_val, RIDGE_GRID)
    assert (ours[1][S:] == 0).all()
    tol = _rounding_bound(feats, ours[0], reference[1])
    torch.testing.assert_close(ours[1], reference[1], rtol=0, atol=tol)


def test_random_bucket_hash_is_the_input_hash_router_uniform_and_deterministic():
    x = uniform_cube(40_000, 3, torch.Generator().manual_seed(6))
    table = RandomBucketHash(8, seed=1)
    b = table.bucket(x)
    assert b.dtype == torch.int64 and b.shape == (40_000,)
    assert torch.equal(b, RandomBucketHash(8, seed=1).bucket(x))
    plan = HashRouter(8, key="input", seed=1)(x)
    assert torch.equal(b[plan.token_index], plan.expert_index)
    assert stats.chisquare(torch.bincount(b, minlength=8).numpy()).pvalue > 1e-3
    assert not torch.equal(b, RandomBucketHash(8, seed=2).bucket(x))
    assert torch.equal(table.bucket(x.float()), table.bucket(x.float().double()))  # the value picks the bucket
    model = LSHModel.from_hashes(3, [table], num_hashes=1).fit(x, x.sum(dim=1))
    assert model.num_nonempty_buckets == 8
    with pytest.raises(ValueError, match="num_buckets"):
        RandomBucketHash(0)


def test_flops():
    random, lsh = random_hash_dsm(D, BLOCKS * S, S), lsh_routed_dsm(D, BLOCKS * S, S)
    assert random.flops_per_input() == lsh.flops_per_input() == (D + 1) * S
    assert lsh.routing_flops_per_input() == D * int(math.log2(BLOCKS))
    assert random.routing_flops_per_input() == 0


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="multiple of active_units"):
        random_hash_dsm(D, 10, 4)
    with pytest.raises(ValueError, match="power of two"):
        lsh_routed_dsm(D, 3 * S, S)
    with pytest.raises(ValueError, match="active_units"):
        random_hash_dsm(D, S, 2 * S)
    with pytest.raises(ValueError, match="key='input'"):
        HashRoutedDSM(D, S, HashRouter(BLOCKS, key="token_id"))
    with pytest.raises(ValueError, match="one table"):
        HashRoutedDSM(D, S, LSHRouter(D, BLOCKS, num_tables=2))
    with pytest.raises(ValueError, match="d_model"):
        HashRoutedDSM(D, S, LSHRouter(D + 1, BLOCKS))
    with pytest.raises(TypeError, match="router"):
        HashRoutedDSM(D, S, object())
    model = random_hash_dsm(D, BLOCKS * S, S)
    with pytest.raises(ValueError, match="d_model"):
        model.features(torch.zeros(3, D + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="x"):
        model.features(torch.full((3, D), float("nan"), dtype=torch.float64))
    x = _x(20)
    feats, block, y = model.features(x), model.block(x), torch.zeros(20, dtype=torch.float64)
    with pytest.raises(ValueError, match="block must lie in"):
        select_routed_ridge(feats, block + BLOCKS, y, feats, block, y, S)
    with pytest.raises(ValueError, match="val_block"):
        select_routed_ridge(feats, block, y, feats, block[:5], y, S)
    with pytest.raises(ValueError, match="features"):
        select_routed_ridge(feats[:, :-1], block, y, feats, block, y, S)
    with pytest.raises(ValueError, match="ridges"):
        select_routed_ridge(feats, block, y, feats, block, y, S, ())
