"""The formal model's cost claims: LSH model prediction flat in the number of buckets, dense linear in width."""

from __future__ import annotations

from .common import SEED, Benchmark, get_tokens, require, safe_import

LSHModel = RandomFeaturesDense = None
with safe_import():
    from sparse_bench.dsm import LSHModel, RandomFeaturesDense

D = 8  # input dimension, as in the paper's experiments
NUM_TRAIN, NUM_QUERY = 1 << 16, 4096


def _target(x):
    """A fixed smooth target: sin of a fixed projection (only a label for fitting; speed does not depend on it)."""
    import torch

    direction = torch.linspace(-1.0, 1.0, x.shape[1])
    return torch.sin(x @ direction)


class LSHPredict(Benchmark):
    """LSHModel.predict over 2^8 .. 2^16 buckets (SimHash bits): time should stay flat (within 1.3x)."""

    params = [[8, 12, 16]]
    param_names = ["log2_buckets"]

    def setup(self, log2_buckets):
        require(LSHModel=LSHModel)
        self.pin_threads()
        x_train = get_tokens(NUM_TRAIN, D, seed=SEED)
        self.x = get_tokens(NUM_QUERY, D, seed=SEED + 1)
        self.model = LSHModel(D, family="simhash", num_hashes=log2_buckets, seed=SEED).fit(x_train, _target(x_train))
        self.train_mse = float(((self.model.predict(x_train) - _target(x_train).double()) ** 2).mean())

    def time_predict(self, log2_buckets):
        self.model.predict(self.x)

    def track_train_mse(self, log2_buckets):
        """Training mean squared error of the bucket-constant fit (an approximation error; lower is better)."""
        return self.train_mse


class DensePredict(Benchmark):
    """RandomFeaturesDense.predict at widths 256 .. 4096: time should grow linearly with width."""

    params = [[256, 1024, 4096]]
    param_names = ["width"]

    def setup(self, width):
        require(RandomFeaturesDense=RandomFeaturesDense)
        self.pin_threads()
        x_train = get_tokens(8192, D, seed=SEED)
        self.x = get_tokens(NUM_QUERY, D, seed=SEED + 1)
        self.model = RandomFeaturesDense(D, width, seed=SEED).fit(x_train, _target(x_train))
        self.train_mse = float(((self.model.predict(x_train).double() - _target(x_train).double()) ** 2).mean())

    def time_predict(self, width):
        self.model.predict(self.x)

    def track_train_mse(self, width):
        """Training mean squared error of the ridge readout (lower is better)."""
        return self.train_mse
