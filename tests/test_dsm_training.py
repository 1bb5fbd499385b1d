"""sparse_bench.dsm.training: gradient-descent readouts over frozen features (Adam, SGD), deterministic."""

import math

import pytest
import torch

from sparse_bench.dsm import RandomFeaturesDense, TopKDSM, ridge_readout
from sparse_bench.dsm.training import ReadoutTraining, train_dsm_readout, train_readout
from sparse_bench.targets import hypercube_function, uniform_cube


def _problem(n=256, t=12, k=2, seed=0):
    """A well-conditioned least-squares problem with an exact solution: features (n, t), targets (n, k)."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n, t, generator=gen, dtype=torch.float64)
    truth = torch.randn(t, k, generator=gen, dtype=torch.float64)
    return features, features @ truth, truth


def _torch_optimizer_weights(features, targets, training: ReadoutTraining, lr: float, seed: int):
    """The same training written with torch.optim, for one learning rate: the reference."""
    weights = torch.zeros(features.shape[1], targets.shape[1], dtype=features.dtype, requires_grad=True)
    if training.optimizer == "adam":
        opt = torch.optim.Adam([weights], lr=lr)
    else:
        opt = torch.optim.SGD([weights], lr=lr, momentum=training.momentum)
    gen = torch.Generator().manual_seed(seed)
    n = features.shape[0]
    batch = n if training.batch_size is None else training.batch_size
    for _ in range(training.epochs):
        order = torch.arange(n) if batch == n else torch.randperm(n, generator=gen)
        for start in range(0, n, batch):
            index = order[start:start + batch]
            loss = ((features[index] @ weights - targets[index]) ** 2).mean(dim=0).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return weights.detach()


@pytest.mark.parametrize("training", [
    ReadoutTraining("adam", lrs=(0.05,), epochs=7, batch_size=32),
    ReadoutTraining("adam", lrs=(0.01,), epochs=25),
    ReadoutTraining("sgd", lrs=(0.02,), epochs=7, batch_size=50, momentum=0.9),
    ReadoutTraining("sgd", lrs=(0.05,), epochs=30),
])
def test_updates_equal_torch_optim(training):
    """The written-out Adam / SGD step is torch.optim's: same weights after the same batches (float64)."""
    features, targets, _ = _problem()
    ours = train_readout(features, targets, training, torch.Generator().manual_seed(3))
    reference = _torch_optimizer_weights(features, targets, training, training.lrs[0], seed=3)
    torch.testing.assert_close(ours.weights, reference, rtol=1e-9, atol=1e-12)


def test_converges_to_the_least_squares_solution():
    """Full-batch Adam on a consistent, well-conditioned system reaches its exact solution."""
    features, targets, truth = _problem(k=1)
    run = train_readout(features, targets[:, 0], ReadoutTraining("adam", lrs=(0.05,), epochs=3000),
                        torch.Generator().manual_seed(0))
    assert run.weights.shape == (features.shape[1],) and run.weights.dtype == torch.float64
    torch.testing.assert_close(run.weights, truth[:, 0], rtol=0, atol=1e-6)
    assert run.train_mse[0] < 1e-12


def test_targets_and_rates_train_independently():
    """Columns (targets) and learning rates share batches but nothing else: joint equals separate."""
    features, targets, _ = _problem(k=2)
    training = ReadoutTraining("adam", lrs=(0.01,), epochs=5, batch_size=64)
    joint = train_readout(features, targets, training, torch.Generator().manual_seed(1)).weights
    for j in range(2):
        alone = train_readout(features, targets[:, j], training, torch.Generator().manual_seed(1)).weights
        torch.testing.assert_close(joint[:, j], alone, rtol=1e-12, atol=1e-14)
    val_features, val_targets, _ = _problem(n=64, seed=5)
    both = train_readout(features, targets, ReadoutTraining("adam", lrs=(0.01, 0.1), epochs=5, batch_size=64),
                         torch.Generator().manual_seed(1), val_features, val_targets)
    assert len(both.val_mse) == 2 and len(both.val_mse[0]) == 5
    single = train_readout(features, targets, ReadoutTraining("adam", lrs=(0.1,), epochs=5, batch_size=64),
                           torch.Generator().manual_seed(1), val_features, val_targets)
    assert both.val_mse[1] == single.val_mse[0]


def test_validation_chooses_rate_and_epoch():
    """With validation data each target keeps the (rate, epoch) of least validation error, and the returned
    weights are those weights: their validation error is that minimum."""
    features, targets, _ = _problem(n=200, k=2)
    val_features, val_targets, _ = _problem(n=80, seed=4)
    val_targets = val_features @ torch.linalg.lstsq(features, targets).solution  # same truth as training
    training = ReadoutTraining("adam", lrs=(1e-4, 0.05), epochs=40, batch_size=50)
    run = train_readout(features, targets, training, torch.Generator().manual_seed(2), val_features,
                        val_targets)
    for j in range(2):
        errors = [(run.val_mse[r][e][j], training.lrs[r], e + 1) for r in range(2) for e in range(40)]
        best, lr, epoch = min(errors)
        assert (run.lr[j], run.epoch[j]) == (lr, epoch)
        got = float(((val_features @ run.weights[:, j] - val_targets[:, j]) ** 2).mean())
        assert math.isclose(got, best, rel_tol=1e-9)
    assert run.lr == [0.05, 0.05]  # lr 1e-4 moves each weight by at most 40 * 4 * 1e-4 in 160 steps


def test_deterministic_and_generator_matters():
    features, targets, _ = _problem()
    training = ReadoutTraining("adam", lrs=(0.01,), epochs=3, batch_size=16)
    a = train_readout(features, targets, training, torch.Generator().manual_seed(7)).weights
    b = train_readout(features, targets, training, torch.Generator().manual_seed(7)).weights
    c = train_readout(features, targets, training, torch.Generator().manual_seed(8)).weights
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_dsm_readout_trains_a_masked_model():
    """train_dsm_readout sets the readout; on a DSM it approaches the ridge fit's training error."""
    gen = torch.Generator().manual_seed(0)
    x, x_val = uniform_cube(1024, 4, gen), uniform_cube(256, 4, gen)
    f = hypercube_function(4, seed=1)
    model = TopKDSM(4, 64, 16, seed=2)
    training = ReadoutTraining("adam", lrs=(1e-3, 1e-2), epochs=60, batch_size=64)
    run = train_dsm_readout(model, x, f(x), training, torch.Generator().manual_seed(0), x_val, f(x_val))
    assert torch.equal(model.readout, run.weights)
    trained = float(((model.predict(x) - f(x)) ** 2).mean())
    ridge = ridge_readout(model.features(x), f(x), 1e-9)
    best = float(((model.features(x) @ ridge - f(x)) ** 2).mean())
    baseline = float(f(x).var())
    assert trained < 0.2 * baseline and trained < 3 * best
    dense = RandomFeaturesDense(4, 16, seed=2)
    train_dsm_readout(dense, x, f(x), ReadoutTraining("sgd", lrs=(0.05,), epochs=5), torch.Generator())
    assert dense.readout.shape == (16,)


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(lrs=0.1), "lrs"),
    (dict(lrs=()), "lrs"),
    (dict(lrs=(0.0,)), "lrs"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(momentum=1.0, optimizer="sgd"), "momentum"),
    (dict(momentum=0.9), "momentum"),
])
def test_bad_training_config(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ReadoutTraining(**kwargs)


def test_bad_inputs_name_the_argument():
    features, targets, _ = _problem()
    ok = ReadoutTraining("adam", lrs=(0.01,), epochs=1)
    gen = torch.Generator()
    with pytest.raises(ValueError, match="features"):
        train_readout(features[0], targets, ok, gen)
    with pytest.raises(ValueError, match="features"):
        train_readout(features.masked_fill(features > 2, float("nan")), targets, ok, gen)
    with pytest.raises(ValueError, match="targets"):
        train_readout(features, targets[:-1], ok, gen)
    with pytest.raises(TypeError, match="generator"):
        train_readout(features, targets, ok, 0)
    with pytest.raises(TypeError, match="training"):
        train_readout(features, targets, {"lr": 0.1}, gen)
    with pytest.raises(ValueError, match="val_features"):
        train_readout(features, targets, ok, gen, features[:, :3], targets)
    with pytest.raises(ValueError, match="val_targets"):
        train_readout(features, targets, ok, gen, features, targets[:, :1])
    with pytest.raises(ValueError, match="learning rates need val"):
        train_readout(features, targets, ReadoutTraining("adam", lrs=(0.1, 0.01), epochs=1), gen)
    with pytest.raises(ValueError, match="diverged"):
        train_readout(features * 1e200, targets, ReadoutTraining("sgd", lrs=(1e10,), epochs=3), gen)
    with pytest.raises(TypeError, match="DSM"):
        train_dsm_readout(torch.nn.Linear(2, 1), features, targets[:, 0], ok, gen)
