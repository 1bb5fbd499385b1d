"""The bucket constants of LSH tables, fitted as a readout over one-hot bucket features.

A one-table LSH model predicts c[bucket(x)]: a linear readout over the one-hot feature e_{bucket(x)} (a DSM
whose B units are the buckets, one active per input, indicator activation); with L tables, the sum of the L
constants of x's buckets (L one-hot features, each table's buckets its own units). ``select_ridge`` and
``train_readout`` would fit c from the (n, B) one-hot matrix, which at 2^17 samples and 2^14 buckets is 8 GiB
of float32. Here the same fits are computed from the bucket indices alone: for one table the one-hot Gram
matrix is diagonal (the bucket counts), so ridge is closed form per bucket, and for any number of tables a
gradient step's F^T r is a scatter-add of the residuals. Same objective, same optimizer steps, same
validation rule as those two functions. (``lsh_readout.LSHReadout`` trains an ``LSHModel``'s tables jointly
with ``train_bucket_readout``.)

Bucket indices are int64 in [-1, B): -1 marks an input whose bucket holds no training sample (an all-zero
one-hot row, predicted 0); ``bucket_index`` maps hash ids to such indices.
"""

from __future__ import annotations

import torch

from ..validation import check_generator, check_int_in_range, check_positive_float
from .training import ReadoutTraining, TrainedReadout, descend, target_columns


def bucket_index(train_ids: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense bucket indices of hash ids.

    train_ids: (n,) int64 hash ids of the training inputs; ids: (m,) int64 hash ids of any inputs. Returns
    (buckets (B,) the sorted distinct training ids, index (m,) int64 in [-1, B): the position of each id among
    them, -1 where no training input has it).
    """
    for name, v in (("train_ids", train_ids), ("ids", ids)):
        if not isinstance(v, torch.Tensor) or v.dim() != 1 or v.dtype != torch.int64:
            raise ValueError(f"{name} must be a 1-D int64 tensor, got {getattr(v, 'dtype', type(v))} "
                             f"{tuple(getattr(v, 'shape', ()))}")
    if train_ids.numel() == 0:
        raise ValueError("train_ids must hold at least one id")
    buckets = torch.unique(train_ids, sorted=True)  # (B,)
    pos = torch.searchsorted(buckets, ids).clamp_max(buckets.numel() - 1)  # (m,)
    return buckets, torch.where(buckets[pos] == ids, pos, torch.full_like(pos, -1))


def _check_index(index: torch.Tensor, num_buckets: int, name: str, tables: bool = False) -> torch.Tensor:
    """index: (n,) int64 in [-1, num_buckets), or (n, L) where ``tables``."""
    if not isinstance(index, torch.Tensor) or index.dim() not in ((1, 2) if tables else (1,)) \
            or index.dtype != torch.int64:
        shape = "a (n,) or (n, tables)" if tables else "a 1-D"
        raise ValueError(f"{name} must be {shape} int64 tensor of bucket indices, got "
                         f"{getattr(index, 'dtype', type(index))} {tuple(getattr(index, 'shape', ()))}")
    if index.numel() == 0:
        raise ValueError(f"{name} must hold at least one sample")
    if bool((index < -1).any()) or bool((index >= num_buckets).any()):
        raise ValueError(f"{name} must lie in [-1, {num_buckets}) (-1: no bucket), got "
                         f"[{int(index.min())}, {int(index.max())}]")
    return index


def bucket_predictions(constants: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """constants: (B,) or (B, k) float; index: (n,) int64 in [-1, B). Returns (n,) or (n, k): each input's
    bucket constant, 0 where the index is -1."""
    if not isinstance(constants, torch.Tensor) or constants.dim() not in (1, 2):
        raise ValueError(f"constants must be a (B,) or (B, k) tensor, got "
                         f"{getattr(constants, 'shape', type(constants).__name__)}")
    _check_index(index, constants.shape[0], "index")
    padded = torch.cat([constants, constants.new_zeros((1,) + constants.shape[1:])])  # row B: no bucket
    return padded[torch.where(index < 0, constants.shape[0], index)]


def _counts_and_sums(index: torch.Tensor, y: torch.Tensor, num_buckets: int):
    """Per bucket: training count (B,) and target sum (B,), float64; rows with index -1 are dropped."""
    kept = index >= 0
    idx, values = index[kept], y.to(torch.float64)[kept]
    counts = torch.zeros(num_buckets, dtype=torch.float64).index_add_(0, idx, torch.ones_like(values))
    return counts, torch.zeros(num_buckets, dtype=torch.float64).index_add_(0, idx, values)


def select_bucket_ridge(index: torch.Tensor, targets: torch.Tensor, num_buckets: int, val_index: torch.Tensor,
                        val_targets: torch.Tensor, ridges: tuple[float, ...]
                        ) -> tuple[float, torch.Tensor, list[float]]:
    """``select_ridge`` over one-hot bucket features, in closed form.

    Minimises (1/n) ||F c - y||^2 + ridge ||c||^2 for every ridge (F: the (n, B) one-hot rows of ``index``):
    c_b = S_b / (n_b + n * ridge), S_b and n_b the bucket's target sum and count; keeps the ridge of least MSE
    on (val_index, val_targets) (ties to the larger ridge). index: (n,) int64 in [-1, B); targets: (n,) float.
    Returns (ridge, (B,) float64 constants, validation MSE per ridge).
    """
    check_int_in_range(num_buckets, "num_buckets", 1)
    n = _check_index(index, num_buckets, "index").shape[0]
    y = target_columns(targets, n, "targets", columns=False)[:, 0]
    m = _check_index(val_index, num_buckets, "val_index").shape[0]
    yv = target_columns(val_targets, m, "val_targets", columns=False)[:, 0].to(torch.float64)
    if not ridges:
        raise ValueError("ridges must name at least one value")
    for r in ridges:
        check_positive_float(r, "ridges")
    counts, sums = _counts_and_sums(index, y, num_buckets)
    errors, fits = [], []
    for r in ridges:
        constants = sums / (counts + n * r)  # (B,)
        errors.append(float(((bucket_predictions(constants, val_index) - yv) ** 2).mean()))
        fits.append(constants)
    best = min(range(len(ridges)), key=lambda i: (errors[i], -ridges[i]))
    return float(ridges[best]), fits[best], errors


def train_bucket_readout(index: torch.Tensor, targets: torch.Tensor, num_buckets: int,
                         training: ReadoutTraining, generator: torch.Generator,
                         val_index: torch.Tensor | None = None, val_targets: torch.Tensor | None = None,
                         dtype: torch.dtype = torch.float32) -> TrainedReadout:
    """``train_readout`` over one-hot bucket features: the same steps, batches and choice of learning rate and
    epoch on validation data, from bucket indices instead of the (n, B) one-hot matrix.

    index: (n,) int64 in [-1, B), one table; or (n, L), one bucket per table, the prediction the sum of the L
    constants (the tables' buckets numbered apart within [0, B)). targets: (n,) or (n, k) float; val_index /
    val_targets: the same for the validation set (both or neither; several learning rates need them); dtype:
    the arithmetic's precision. Returns ``TrainedReadout`` with (B,) or (B, k) float64 weights: the bucket
    constants.
    """
    if not isinstance(training, ReadoutTraining):
        raise TypeError(f"training must be a ReadoutTraining, got {type(training).__name__}")
    check_generator(generator)
    check_int_in_range(num_buckets, "num_buckets", 1)
    n = _check_index(index, num_buckets, "index", tables=True).shape[0]
    y = target_columns(targets, n, "targets").to(dtype)  # (n, k)
    k = y.shape[1]
    sink = num_buckets  # row of the one-hot matrix's all-zero entries (index -1): its weight stays 0
    rows_of = lambda i: torch.where(i < 0, sink, i).reshape(i.shape[0], -1)  # noqa: E731  (n, L)
    val_predict = yv = None
    if val_index is not None or val_targets is not None:
        if val_index is None or val_targets is None:
            raise ValueError("val_index and val_targets must be given together")
        m = _check_index(val_index, num_buckets, "val_index", tables=True).shape[0]
        yv = target_columns(val_targets, m, "val_targets").to(dtype)
        if yv.shape[1] != k:
            raise ValueError(f"val_targets must have {k} columns like targets, got {yv.shape[1]}")
        if rows_of(val_index).shape[1] != rows_of(index).shape[1]:
            raise ValueError("val_index must have as many tables as index")
        val_rows = rows_of(val_index)
        val_predict = lambda weights: weights[val_rows].sum(dim=1)  # noqa: E731
    elif len(training.lrs) > 1:
        raise ValueError("several learning rates need val_index and val_targets to choose among them")
    train_rows = rows_of(index)  # (n, L)
    tables = train_rows.shape[1]
    grad = torch.zeros(num_buckets + 1, len(training.lrs) * k, dtype=dtype)

    def batch_step(weights, batch, target):
        rows = train_rows if batch is None else train_rows[batch]  # (b, L)
        if tables == 1:  # gather and scatter the rows themselves: no per-table copies
            rows = rows[:, 0]
            residual = weights[rows].sub_(target)  # (b, rates * k)
            spread = residual
        else:
            residual = weights[rows].sum(dim=1).sub_(target)
            spread, rows = residual.repeat_interleave(tables, dim=0), rows.reshape(-1)  # (b L, rates * k)
        grad.zero_().index_add_(0, rows, spread).mul_(2.0 / residual.shape[0])
        grad[sink] = 0  # an all-zero feature row contributes no gradient
        return residual, grad

    run = descend(training, generator, num_buckets + 1, y, batch_step, val_predict, yv)
    train_mse = ((run.weights[train_rows].sum(dim=1) - y) ** 2).mean(dim=0).tolist()  # (k,)
    return run.readout(training, run.weights[:num_buckets].to(torch.float64), train_mse, targets.dim() == 1)
