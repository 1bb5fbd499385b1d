"""Unit tests of sparse_bench.dsm against references nobody here wrote: numpy lstsq, scikit-learn k-NN,
float64 python dict loops, and closed-form FLOP counts."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsRegressor

from sparse_bench.dsm import (DSM, LSHModel, PStableHash, RandomFeaturesDense, SimHash, TopKDSM, bucket_means,
                              knn_as_dsm, ridge_readout, select_ridge)
from sparse_bench.dsm.masked import random_relu_layer
from sparse_bench.targets import uniform_cube, uniform_sphere


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _ridge_numpy(f, y, ridge):
    """Augmented least squares [F; sqrt(n ridge) I] a = [y; 0] solved by numpy's SVD-based lstsq."""
    n, t = f.shape
    a = np.vstack([f, np.sqrt(n * ridge) * np.eye(t)])
    b = np.concatenate([y, np.zeros(t)])
    return np.linalg.lstsq(a, b, rcond=None)[0]


@pytest.mark.parametrize("n,t", [(50, 10), (10, 50)])  # primal and dual branches
def test_ridge_readout_matches_numpy_lstsq(n, t):
    g = _gen(1)
    f = torch.randn(n, t, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    got = ridge_readout(f, y, 1e-3).numpy()
    np.testing.assert_allclose(got, _ridge_numpy(f.numpy(), y.numpy(), 1e-3), rtol=1e-8, atol=1e-10)


def test_ridge_readout_rejects_bad_input():
    f = torch.ones(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="targets"):
        ridge_readout(f, torch.ones(5), 1e-3)
    with pytest.raises(ValueError, match="ridge"):
        ridge_readout(f, torch.ones(4), 0.0)
    with pytest.raises(ValueError, match="features"):
        ridge_readout(torch.ones(4), torch.ones(4), 1e-3)
    with pytest.raises(ValueError, match="NaN"):
        ridge_readout(f, torch.tensor([1.0, float("nan"), 0, 0]), 1e-3)


def test_knn_as_dsm_equals_sklearn_knn_regression():
    g = _gen(2)
    pts = uniform_cube(300, 5, g)
    vals = torch.randn(300, generator=g, dtype=torch.float64)
    query = uniform_cube(200, 5, g)
    for k in (1, 4, 17):
        ref = KNeighborsRegressor(n_neighbors=k, algorithm="brute").fit(pts.numpy(), vals.numpy())
        got = knn_as_dsm(pts, vals, k).predict(query)
        np.testing.assert_allclose(got.numpy(), ref.predict(query.numpy()), rtol=1e-12, atol=1e-12)


def test_knn_as_dsm_on_unit_sphere_and_errors():
    g = _gen(3)
    pts, vals, query = uniform_sphere(100, 4, g), torch.randn(100, generator=g), uniform_sphere(30, 4, g)
    ref = KNeighborsRegressor(n_neighbors=3).fit(pts.numpy(), vals.numpy()).predict(query.numpy())
    np.testing.assert_allclose(knn_as_dsm(pts, vals, 3).predict(query).numpy(), ref, rtol=1e-6)
    with pytest.raises(ValueError, match="k must be"):
        knn_as_dsm(pts, vals, 101)
    with pytest.raises(ValueError, match="values"):
        knn_as_dsm(pts, vals[:5], 3)
    with pytest.raises(TypeError, match="k must be an int"):
        knn_as_dsm(pts, vals, 2.0)


def test_random_relu_layer_is_the_models_units():
    weight, bias = random_relu_layer(8, 64, seed=3)
    assert weight.shape == (64, 8) and bias.shape == (64,) and weight.dtype == bias.dtype == torch.float64
    assert bool((bias.abs() <= 1).all())
    model = TopKDSM(8, 64, 16, seed=3)
    assert torch.equal(model.weight, weight) and torch.equal(model.bias, bias)
    assert torch.equal(RandomFeaturesDense(8, 64, seed=3).weight, weight)
    assert not torch.equal(random_relu_layer(8, 64, seed=4)[0], weight)
    with pytest.raises(ValueError, match="units"):
        random_relu_layer(8, 0, seed=3)
    with pytest.raises(ValueError, match="d"):
        random_relu_layer(0, 4, seed=3)


def test_topk_dsm_mask_features_and_readout():
    g = _gen(4)
    model = TopKDSM(6, total_units=40, active_units=10, seed=5)
    x = uniform_cube(120, 6, g)
    y = torch.sin(x.sum(1))
    feats = model.features(x)
    mask = model.mask(x)
    assert (mask.sum(1) == 10).all()
    pre = model.pre_activations(x)
    # a kept unit's pre-activation is >= every dropped one (per row), features = relu on kept units only
    kept_min = torch.where(mask, pre, torch.full_like(pre, np.inf)).amin(1)
    dropped_max = torch.where(mask, torch.full_like(pre, -np.inf), pre).amax(1)
    assert (kept_min >= dropped_max).all()
    torch.testing.assert_close(feats, torch.where(mask, pre.clamp_min(0), torch.zeros_like(pre)))
    model.fit(x, y)
    ref = _ridge_numpy(feats.numpy(), y.numpy(), model.ridge)
    np.testing.assert_allclose(model.readout.numpy(), ref, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.predict(x).numpy(), feats.numpy() @ ref, rtol=1e-6, atol=1e-8)


def test_flops_follow_paper_table1_convention():
    assert RandomFeaturesDense(8, 2048, seed=0).flops_per_input() == 18_432
    assert TopKDSM(8, 8192, 4096, seed=0).flops_per_input() == 36_864
    assert TopKDSM(8, 32768, 8192, seed=0).flops_per_input() == 73_728
    assert TopKDSM(8, 100, 10).routing_flops_per_input() == 800
    assert RandomFeaturesDense(8, 100).routing_flops_per_input() == 0
    dense = RandomFeaturesDense(3, 7)
    assert dense.active_units_per_input == 7 and dense.mask(torch.zeros(2, 3)).all()


def test_models_are_deterministic_and_validate():
    x = uniform_cube(64, 4, _gen(6))
    y = x[:, 0] ** 2
    a = TopKDSM(4, 30, 5, seed=9).fit(x, y).predict(x)
    b = TopKDSM(4, 30, 5, seed=9).fit(x, y).predict(x)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="active_units"):
        TopKDSM(4, 30, 31)
    with pytest.raises(ValueError, match="d must be"):
        RandomFeaturesDense(0, 5)
    with pytest.raises(ValueError, match="d_model"):
        TopKDSM(4, 30, 5).fit(torch.zeros(3, 5), torch.zeros(3))
    with pytest.raises(RuntimeError, match="before fit"):
        TopKDSM(4, 30, 5).predict(x)
    with pytest.raises(ValueError, match="activation"):
        DSM(torch.zeros(3, 2), torch.zeros(3), 1, activation="tanh")


def _dict_loop_lsh(hashes, x_train, y_train, x_test):
    """Float64 python reference: per table, a dict bucket -> list of targets; empty bucket -> training mean.
    """
    default = float(np.mean(y_train.numpy()))
    preds = np.zeros(x_test.shape[0])
    for h in hashes:
        table = {}
        for bucket, target in zip(h.bucket(x_train).tolist(), y_train.tolist()):
            table.setdefault(bucket, []).append(target)
        for i, bucket in enumerate(h.bucket(x_test).tolist()):
            vals = table.get(bucket)
            preds[i] += (sum(vals) / len(vals) if vals else default) / len(hashes)
    return preds, sum(len(set(h.bucket(x_train).tolist())) for h in hashes)


@pytest.mark.parametrize("family,width,tables",
                         [("pstable", 0.7, 1), ("pstable", 0.4, 3), ("simhash", None, 2)])
def test_lsh_model_matches_python_dict_loop(family, width, tables):
    g = _gen(7)
    x, xt = uniform_cube(400, 3, g), uniform_cube(300, 3, g)
    y = torch.randn(400, generator=g, dtype=torch.float64)
    model = LSHModel(3, family, num_tables=tables, num_hashes=4, width=width, seed=11).fit(x, y)
    ref, nonempty = _dict_loop_lsh(model.hashes, x, y, xt)
    np.testing.assert_allclose(model.predict(xt).numpy(), ref, rtol=1e-12, atol=1e-12)
    assert model.num_nonempty_buckets == nonempty
    assert model.active_units_per_input == tables
    assert model.flops_per_input() == tables * (3 * 4 + 1)


def test_lsh_model_tables_use_the_hashing_module():
    model = LSHModel(5, "pstable", num_tables=2, num_hashes=3, width=0.5, seed=1)
    assert all(isinstance(h, PStableHash) for h in model.hashes)
    assert model.hashes[0].seed != model.hashes[1].seed
    assert isinstance(LSHModel(5, "simhash", num_hashes=3).hashes[0], SimHash)


def test_lsh_model_rejects_bad_config():
    with pytest.raises(ValueError, match="width is required"):
        LSHModel(3, "pstable", num_hashes=2)
    with pytest.raises(ValueError, match="width must be None"):
        LSHModel(3, "simhash", num_hashes=2, width=1.0)
    with pytest.raises(ValueError, match="family"):
        LSHModel(3, "e2lsh", num_hashes=2, width=1.0)
    with pytest.raises(ValueError, match="num_tables"):
        LSHModel(3, "simhash", num_tables=0)
    with pytest.raises(ValueError, match="width must be a finite"):
        LSHModel(3, "pstable", width=-1.0)
    model = LSHModel(3, "simhash", num_hashes=2)
    with pytest.raises(RuntimeError, match="before fit"):
        model.predict(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="y must be"):
        model.fit(torch.zeros(4, 3), torch.zeros(3))
    with pytest.raises(TypeError, match="bucket"):
        LSHModel.from_hashes(3, [object()], num_hashes=1)


def test_bucket_means_segment_sums():
    ids = torch.tensor([5, 2, 5, 9, 2, 2])
    y = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    uniq, means, counts = bucket_means(ids, y)
    assert uniq.tolist() == [2, 5, 9] and counts.tolist() == [3, 2, 1]
    torch.testing.assert_close(means, torch.tensor([13 / 3, 2.0, 4.0], dtype=torch.float64))


def test_lsh_model_float32_input_and_default():
    g = _gen(8)
    x = uniform_cube(50, 2, g)
    model = LSHModel(2, "pstable", num_hashes=2, width=0.3, seed=0).fit(x, torch.ones(50), default=-7.0)
    far = torch.full((1, 2), 50.0, dtype=torch.float32)
    assert model.predict(far).item() == -7.0
    assert model.predict(x.float()).allclose(torch.ones(50, dtype=torch.float64))


def test_select_ridge_matches_ridge_readout_per_ridge():
    g = _gen(12)
    for n, t in ((60, 20), (20, 60)):
        f, fv = (torch.randn(m, t, generator=g, dtype=torch.float64) for m in (n, 30))
        y, yv = (torch.randn(m, generator=g, dtype=torch.float64) for m in (n, 30))
        ridges = (1e-4, 1e-2, 1.0)
        best, weights, errors = select_ridge(f, y, fv, yv, ridges)
        ref = [float(((fv @ ridge_readout(f, y, r) - yv) ** 2).mean()) for r in ridges]
        np.testing.assert_allclose(errors, ref, rtol=1e-8)
        assert best == ridges[int(np.argmin(ref))]
        np.testing.assert_allclose(weights.numpy(), ridge_readout(f, y, best).numpy(), rtol=1e-7, atol=1e-10)
    with pytest.raises(ValueError, match="val_features"):
        select_ridge(f, y, fv[:, :3], yv, ridges)
    with pytest.raises(ValueError, match="ridges"):
        select_ridge(f, y, fv, yv, ())


def test_fit_validated_picks_a_grid_ridge():
    g = _gen(13)
    x, xv = uniform_cube(300, 3, g), uniform_cube(100, 3, g)
    model = TopKDSM(3, 64, 16, seed=1).fit_validated(x, x.sum(1), xv, xv.sum(1))
    assert model.ridge in [10.0**e for e in range(-9, 0)] and len(model.validation_errors) == 9
