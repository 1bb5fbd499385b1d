"""The LSH model's bucket constants trained jointly over its tables: closed-form ridge or gradient descent.

docs/THEORY.md §A: the LSH model has "one trainable constant per bucket; output = sum over tables of the
constant of x's bucket". ``LSHModel.fit`` sets each table's constants to its own bucket means and averages
the tables; here every constant of every table is one readout weight of the DSM the model is
(``routed.lsh_units``: each table's fitted buckets plus an unseen-bucket unit, indicator features, one active
unit per table), fitted to minimise the squared error of the sum, as a DSM readout is:

- ``fit_ridge``: min_A (1/n) ||F A - (y - mean y)||^2 + ridge ||A||^2 in the dual, from the (n, n) Gram matrix
  F F^T (entry i, j: the number of tables in which inputs i and j share a bucket), built from the bucket
  indices with scipy.sparse instead of the (n, t) one-hot matrix (t is in the hundreds of thousands); the
  ridge is chosen per target on a validation set, as ``select_ridge`` does.
- ``train``: Adam or SGD steps on the same loss (``training.ReadoutTraining``, learning rate and epoch chosen
  per target on a validation set, as ``train_readout`` does): ``bucket_readout.train_bucket_readout`` with
  every table's units, a step gathering each input's L constants and scatter-adding the residuals back.

The training mean of y is spread over the tables (mean / L added to every unit), so an input whose buckets
are all unseen is predicted the training mean, as ``LSHModel`` predicts it. FLOPs per input: L (d D + k),
with k outputs (one addition of a constant per table and output).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from scipy import sparse

from ..validation import check_positive_float
from .bucket_readout import train_bucket_readout
from .masked import RIDGE_GRID
from .routed import RoutedDSM, lsh_as_dsm, lsh_units
from .training import ReadoutTraining, TrainedReadout, target_columns


class LSHReadout:
    """A fitted ``LSHModel``'s units with a readout (t, k) trained jointly over its tables (see module).

    model: an LSHModel already fitted (``model.fit``): its fitted buckets define the units.
    """

    def __init__(self, model):
        self.model = model
        self.total_units = lsh_units(model, torch.zeros(0, model.d))[1]
        self.readout: torch.Tensor | None = None  # (t, k) float64
        self.outputs: int | None = None

    def units(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d). Returns the (n, num_tables) int64 units x activates (``routed.lsh_units``): compute them
        once per data set and pass them to ``fit_ridge`` / ``train`` / ``predict_units``."""
        return lsh_units(self.model, x)[0]

    def _check_units(self, units: torch.Tensor, name: str) -> torch.Tensor:
        tables = self.model.num_tables
        if not isinstance(units, torch.Tensor) or units.dtype != torch.int64 or units.dim() != 2 \
                or units.shape[1] != tables or not units.shape[0]:
            raise ValueError(f"{name} must be a (n, {tables}) int64 tensor from units(x) with n >= 1, got "
                             f"{getattr(units, 'dtype', type(units).__name__)} "
                             f"{tuple(getattr(units, 'shape', ()))}")
        if bool((units < 0).any()) or bool((units >= self.total_units).any()):
            raise ValueError(f"{name} must lie in [0, {self.total_units})")
        return units

    def _sparse(self, units: torch.Tensor) -> sparse.csr_matrix:
        """(n, t) one-hot rows of the units, one per table."""
        units = units.numpy()  # (n, L)
        n, tables = units.shape
        rows = np.repeat(np.arange(n), tables)
        return sparse.csr_matrix((np.ones(n * tables), (rows, units.ravel())), shape=(n, self.total_units))

    def _set(self, weights: torch.Tensor, mean: torch.Tensor) -> None:
        """weights: (t, k) on centred targets; mean: (k,). Spreads the mean over the tables."""
        self.readout = weights + mean / self.model.num_tables
        self.outputs = weights.shape[1]

    def fit_ridge(self, units: torch.Tensor, y: torch.Tensor, val_units: torch.Tensor, y_val: torch.Tensor,
                  ridges: tuple = RIDGE_GRID) -> list[float]:
        """Joint ridge least squares on (units (n, L) of the training inputs, y (n,) or (n, k)), the ridge
        chosen per target by MSE on (val_units, y_val) from ``ridges`` (ties to the larger). Returns the
        chosen ridge per target."""
        self._check_units(units, "units")
        self._check_units(val_units, "val_units")
        if not ridges:
            raise ValueError("ridges must name at least one value")
        for r in ridges:
            check_positive_float(r, "ridges")
        y = target_columns(y, units.shape[0], "y").to(torch.float64)
        yv = target_columns(y_val, val_units.shape[0], "y_val").to(torch.float64)
        if yv.shape[1] != y.shape[1]:
            raise ValueError(f"y_val must have {y.shape[1]} columns like y, got {yv.shape[1]}")
        f, fv = self._sparse(units), self._sparse(val_units)
        gram = torch.from_numpy((f @ f.T).toarray())  # (n, n) shared buckets per pair
        cross = torch.from_numpy((fv @ f.T).toarray())  # (m, n)
        n, mean = units.shape[0], y.mean(dim=0)
        evals, evecs = torch.linalg.eigh(gram)
        rhs = evecs.T @ (y - mean)  # (n, k)
        val_basis = cross @ evecs  # (m, n)
        best_err = [math.inf] * y.shape[1]
        chosen = [ridges[0]] * y.shape[1]
        alpha = torch.zeros_like(rhs)
        for r in sorted(ridges, reverse=True):  # larger first: ties keep the larger ridge
            coef = rhs / (evals.clamp_min(0) + n * r).unsqueeze(1)  # (n, k)
            errors = ((val_basis @ coef + mean - yv) ** 2).mean(dim=0).tolist()
            for j, err in enumerate(errors):
                if err < best_err[j]:
                    best_err[j], chosen[j] = err, r
                    alpha[:, j] = evecs @ coef[:, j]
        weights = torch.from_numpy(np.asarray(f.T @ alpha.numpy()))  # (t, k): A = F^T alpha
        self._set(weights, mean)
        return chosen

    def train(self, units: torch.Tensor, y: torch.Tensor, training: ReadoutTraining,
              generator: torch.Generator, val_units: torch.Tensor, y_val: torch.Tensor,
              dtype: torch.dtype = torch.float32) -> TrainedReadout:
        """Gradient descent on the joint squared error from zero (centred targets), every learning rate of
        ``training`` side by side, the (rate, epoch) of least validation MSE kept per target
        (``bucket_readout.train_bucket_readout`` over the units of every table). units, val_units: from
        ``units(x)``; y, y_val: (n,) or (n, k)."""
        self._check_units(units, "units")
        self._check_units(val_units, "val_units")
        yc = target_columns(y, units.shape[0], "y").to(torch.float64)
        yv = target_columns(y_val, val_units.shape[0], "y_val").to(torch.float64)
        if yv.shape[1] != yc.shape[1]:
            raise ValueError(f"y_val must have {yc.shape[1]} columns like y, got {yv.shape[1]}")
        mean = yc.mean(dim=0)
        run = train_bucket_readout(units, yc - mean, self.total_units, training, generator, val_units,
                                   yv - mean, dtype)  # (t, k) weights on the centred targets
        self._set(run.weights, mean)
        return replace(run, weights=self.readout.squeeze(1) if y.dim() == 1 else self.readout)

    def predict_units(self, units: torch.Tensor) -> torch.Tensor:
        """units: (n, L) from ``units(x)``. Returns (n,) for one output, else (n, k), float64: the sum over
        tables of the constants of x's buckets."""
        if self.readout is None:
            raise RuntimeError("predict called before fit_ridge or train")
        pred = self.readout[self._check_units(units, "units")].sum(dim=1)
        return pred.squeeze(1) if self.outputs == 1 else pred

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d). Returns (n,) for one output, else (n, k), float64."""
        return self.predict_units(self.units(x))

    def as_dsm(self) -> RoutedDSM:
        """The DSM with this readout: ``lsh_as_dsm``'s units and mask, the joint readout."""
        dsm = lsh_as_dsm(self.model)
        if self.readout is None:
            raise RuntimeError("as_dsm called before fit_ridge or train")
        return RoutedDSM(dsm.d, dsm.features, dsm.mask, self.readout.squeeze(1) if self.outputs == 1
                         else self.readout, dsm.active_units)

    def flops_per_input(self) -> int:
        """Multiply-adds per input: num_tables * (d * num_hashes + outputs)."""
        return self.model.num_tables * (self.model.d * self.model.num_hashes + (self.outputs or 1))
