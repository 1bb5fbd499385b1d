"""sparse_bench.dsm.bucket_readout: one-table LSH bucket constants fitted from bucket indices equal the
generic readouts (select_ridge, train_readout) on the explicit one-hot feature matrix."""

import pytest
import torch

from sparse_bench.dsm import select_ridge
from sparse_bench.dsm.bucket_readout import (bucket_index, bucket_predictions, select_bucket_ridge,
                                             train_bucket_readout)
from sparse_bench.dsm.masked import RIDGE_GRID
from sparse_bench.dsm.training import ReadoutTraining, train_readout

BUCKETS = 7


def _one_hot(index: torch.Tensor, buckets: int = BUCKETS) -> torch.Tensor:
    """(n, B) float64 one-hot rows; an index of -1 gives an all-zero row."""
    rows = torch.zeros(index.numel(), buckets, dtype=torch.float64)
    kept = index >= 0
    rows[torch.nonzero(kept).squeeze(1), index[kept]] = 1.0
    return rows


def _problem(n=90, m=40, k=2, seed=0):
    """Training indices in [0, B) (every bucket used), validation indices in [-1, B), targets with signal."""
    gen = torch.Generator().manual_seed(seed)
    index = torch.cat([torch.arange(BUCKETS), torch.randint(0, BUCKETS, (n - BUCKETS,), generator=gen)])
    val_index = torch.randint(-1, BUCKETS, (m,), generator=gen)
    level = torch.randn(BUCKETS + 1, k, generator=gen, dtype=torch.float64)  # row B: the "no bucket" inputs
    noise = lambda rows: 0.3 * torch.randn(rows, k, generator=gen, dtype=torch.float64)  # noqa: E731
    y = level[index] + noise(n)
    y_val = level[torch.where(val_index < 0, BUCKETS, val_index)] + noise(m)
    return index, y, val_index, y_val


def test_bucket_index_positions_and_unseen_ids():
    train = torch.tensor([40, 7, 7, 2**61, -5])
    buckets, index = bucket_index(train, torch.tensor([7, 8, -5, 2**61, 40, 0]))
    assert buckets.tolist() == [-5, 7, 40, 2**61]
    assert index.tolist() == [1, -1, 0, 3, 2, -1]


@pytest.mark.parametrize("bad", [torch.tensor([1.0, 2.0]), torch.tensor([[1, 2]]),
                                 torch.tensor([1, 2], dtype=torch.int32)])
def test_bucket_index_rejects_non_int64_vectors(bad):
    with pytest.raises(ValueError, match="train_ids"):
        bucket_index(bad, torch.tensor([1]))
    with pytest.raises(ValueError, match="ids"):
        bucket_index(torch.tensor([1]), bad)


def test_bucket_index_needs_training_ids():
    with pytest.raises(ValueError, match="at least one"):
        bucket_index(torch.tensor([], dtype=torch.int64), torch.tensor([1]))


def test_predictions_of_unseen_buckets_are_zero():
    constants = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    got = bucket_predictions(constants, torch.tensor([1, -1, 0]))
    assert got.tolist() == [[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]]
    assert bucket_predictions(constants[:, 0], torch.tensor([-1, 1])).tolist() == [0.0, 3.0]


def test_ridge_is_the_closed_form_per_bucket():
    """c_b = S_b / (n_b + n ridge): the one-hot Gram matrix is diagonal."""
    index, y, val_index, y_val = _problem(k=1)
    ridge = 1e-2
    _, constants, _ = select_bucket_ridge(index, y[:, 0], BUCKETS, val_index, y_val[:, 0], (ridge,))
    n = index.numel()
    for b in range(BUCKETS):
        rows = index == b
        assert constants[b].item() == pytest.approx(y[rows, 0].sum().item() / (rows.sum().item() + n * ridge),
                                                    rel=1e-12)


def test_ridge_equals_select_ridge_on_one_hot_features():
    """The one-hot Gram matrix is diagonal with entries n_b + n ridge >= 1: both solutions are exact to a few
    float64 ulps of the constants (|c| <= max |y|, about 3 here), far inside 1e-10."""
    index, y, val_index, y_val = _problem(k=1)
    ours = select_bucket_ridge(index, y[:, 0], BUCKETS, val_index, y_val[:, 0], RIDGE_GRID)
    reference = select_ridge(_one_hot(index), y[:, 0], _one_hot(val_index), y_val[:, 0], RIDGE_GRID)
    assert ours[0] == reference[0]
    torch.testing.assert_close(ours[1], reference[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.tensor(ours[2]), torch.tensor(reference[2]), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("training", [
    ReadoutTraining("adam", lrs=(0.01, 0.1), epochs=9, batch_size=8),
    ReadoutTraining("adam", lrs=(0.05,), epochs=30),
    ReadoutTraining("sgd", lrs=(0.05, 0.5), epochs=6, batch_size=16, momentum=0.9),
])
def test_training_equals_train_readout_on_one_hot_features(training):
    """Same steps, batches, learning-rate and epoch choice as train_readout on the (n, B) one-hot matrix."""
    index, y, val_index, y_val = _problem()
    validated = len(training.lrs) > 1
    val = (val_index, y_val) if validated else (None, None)
    ours = train_bucket_readout(index, y, BUCKETS, training, torch.Generator().manual_seed(3), *val,
                                dtype=torch.float64)
    ref_val = (_one_hot(val_index), y_val) if validated else (None, None)
    reference = train_readout(_one_hot(index), y, training, torch.Generator().manual_seed(3), *ref_val)
    torch.testing.assert_close(ours.weights, reference.weights, rtol=1e-12, atol=1e-12)
    assert (ours.lr, ours.epoch) == (reference.lr, reference.epoch)
    torch.testing.assert_close(torch.tensor(ours.epoch_loss), torch.tensor(reference.epoch_loss), rtol=1e-10,
                               atol=1e-14)
    torch.testing.assert_close(torch.tensor(ours.train_mse), torch.tensor(reference.train_mse), rtol=1e-10,
                               atol=1e-14)


def test_several_tables_train_like_train_readout_on_their_summed_one_hot_features():
    """(n, L) indices, each table's buckets numbered apart: the prediction sums the L constants, the gradient
    reaches each; the same run as train_readout on the (n, B) matrix with L ones per row."""
    index, y, val_index, y_val = _problem()
    gen = torch.Generator().manual_seed(7)
    second = torch.randint(-1, 4, (index.numel(),), generator=gen)  # table 2: buckets 7..10, or none
    second_val = torch.randint(-1, 4, (val_index.numel(),), generator=gen)
    shift = lambda i: torch.where(i < 0, i, i + BUCKETS)  # noqa: E731
    tables = torch.stack([index, shift(second)], dim=1)
    val_tables = torch.stack([val_index, shift(second_val)], dim=1)
    training = ReadoutTraining("adam", lrs=(0.01, 0.1), epochs=6, batch_size=16)
    ours = train_bucket_readout(tables, y, BUCKETS + 4, training, torch.Generator().manual_seed(3),
                                val_tables, y_val, dtype=torch.float64)
    summed = lambda t: _one_hot(t[:, 0], BUCKETS + 4) + _one_hot(t[:, 1], BUCKETS + 4)  # noqa: E731
    reference = train_readout(summed(tables), y, training, torch.Generator().manual_seed(3),
                              summed(val_tables), y_val)
    torch.testing.assert_close(ours.weights, reference.weights, rtol=1e-12, atol=1e-12)
    assert (ours.lr, ours.epoch) == (reference.lr, reference.epoch)
    torch.testing.assert_close(torch.tensor(ours.train_mse), torch.tensor(reference.train_mse), rtol=1e-10,
                               atol=1e-14)
    with pytest.raises(ValueError, match="as many tables"):
        train_bucket_readout(tables, y, BUCKETS + 4, training, gen, val_index, y_val)


def test_training_reaches_the_bucket_means():
    """Full-batch Adam for long enough converges to the least-squares constants, the bucket means."""
    index, y, _, _ = _problem(k=1)
    run = train_bucket_readout(index, y[:, 0], BUCKETS, ReadoutTraining("adam", lrs=(0.05,), epochs=3000),
                               torch.Generator().manual_seed(0), dtype=torch.float64)
    means = torch.stack([y[index == b, 0].mean() for b in range(BUCKETS)])
    torch.testing.assert_close(run.weights, means, rtol=1e-6, atol=1e-8)


def test_training_is_deterministic():
    index, y, val_index, y_val = _problem()
    training = ReadoutTraining("adam", lrs=(0.01, 0.1), epochs=4, batch_size=8)
    runs = [train_bucket_readout(index, y, BUCKETS, training, torch.Generator().manual_seed(5), val_index,
                                 y_val) for _ in range(2)]
    assert torch.equal(runs[0].weights, runs[1].weights)


def test_bad_input_is_refused_by_name():
    index, y, val_index, y_val = _problem(k=1)
    one = ReadoutTraining("adam", lrs=(0.1,), epochs=1)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="index must lie in"):
        select_bucket_ridge(index + 1, y[:, 0], BUCKETS, val_index, y_val[:, 0], RIDGE_GRID)
    with pytest.raises(ValueError, match="val_index must lie in"):
        select_bucket_ridge(index, y[:, 0], BUCKETS, val_index - 1, y_val[:, 0], RIDGE_GRID)
    with pytest.raises(ValueError, match="targets must be"):
        select_bucket_ridge(index, y, BUCKETS, val_index, y_val[:, 0], RIDGE_GRID)  # (n, 2): ridge takes (n,)
    with pytest.raises(ValueError, match="val_targets must be"):
        select_bucket_ridge(index, y[:, 0], BUCKETS, val_index, y_val[:-1, 0], RIDGE_GRID)
    with pytest.raises(ValueError, match="ridges"):
        select_bucket_ridge(index, y[:, 0], BUCKETS, val_index, y_val[:, 0], (-1.0,))
    with pytest.raises(ValueError, match="num_buckets"):
        train_bucket_readout(index, y, 0, one, gen)
    with pytest.raises(ValueError, match="targets"):
        train_bucket_readout(index, y[:5], BUCKETS, one, gen)
    with pytest.raises(ValueError, match="targets"):
        train_bucket_readout(index, torch.full_like(y, float("nan")), BUCKETS, one, gen)
    with pytest.raises(ValueError, match="together"):
        train_bucket_readout(index, y, BUCKETS, one, gen, val_index=val_index)
    with pytest.raises(ValueError, match="several learning rates"):
        train_bucket_readout(index, y, BUCKETS, ReadoutTraining("adam", lrs=(0.1, 0.2)), gen)
    with pytest.raises(TypeError, match="ReadoutTraining"):
        train_bucket_readout(index, y, BUCKETS, "adam", gen)
    with pytest.raises(ValueError, match="index"):
        train_bucket_readout(index.float(), y, BUCKETS, one, gen)
