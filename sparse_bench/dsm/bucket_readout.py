"""The bucket constants of a one-table LSH model, fitted as a readout over one-hot bucket features.

A one-table LSH model predicts c[bucket(x)]: a linear readout over the one-hot feature e_{bucket(x)} (a DSM
whose B units are the buckets, one active per input, indicator activation). ``select_ridge`` and
``train_readout`` would fit c from the (n, B) one-hot matrix, which at 2^17 samples and 2^14 buckets is 8 GiB
of float32. Here the same fits are computed from the bucket indices alone: the one-hot Gram matrix is diagonal
(the bucket counts), so ridge is closed form per bucket, and a gradient step's F^T r is a scatter-add of the
residuals. Same objective, same optimizer steps, same validation rule as those two functions.

Bucket indices are int64 in [-1, B): -1 marks an input whose bucket holds no training sample (an all-zero
one-hot row, predicted 0); ``bucket_index`` maps hash ids to such indices.
"""

from __future__ import annotations

import math

import torch

from ..validation import check_finite, check_generator, check_int_in_range, check_positive_float
from .training import ReadoutTraining, TrainedReadout, _Optimizer


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


def _check_index(index: torch.Tensor, num_buckets: int, name: str) -> torch.Tensor:
    if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype != torch.int64:
        raise ValueError(f"{name} must be a 1-D int64 tensor of bucket indices, got "
                         f"{getattr(index, 'dtype', type(index))} {tuple(getattr(index, 'shape', ()))}")
    if index.numel() == 0:
        raise ValueError(f"{name} must hold at least one sample")
    if bool((index < -1).any()) or bool((index >= num_buckets).any()):
        raise ValueError(f"{name} must lie in [-1, {num_buckets}) (-1: no bucket), got "
                         f"[{int(index.min())}, {int(index.max())}]")
    return index


def _check_targets(targets: torch.Tensor, n: int, name: str, rank: tuple = (1, 2)) -> torch.Tensor:
    """targets: (n,) or, where rank allows, (n, k) float; returned as (n, k)."""
    if not isinstance(targets, torch.Tensor) or targets.dim() not in rank or targets.shape[0] != n \
            or not targets.is_floating_point():
        shape = f"({n},)" if rank == (1,) else f"({n},) or ({n}, k)"
        raise ValueError(f"{name} must be a floating {shape} tensor, "
                         f"got {getattr(targets, 'shape', type(targets).__name__)}")
    check_finite(targets, name)
    return targets.unsqueeze(1) if targets.dim() == 1 else targets


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
    y = _check_targets(targets, n, "targets", rank=(1,))[:, 0]
    m = _check_index(val_index, num_buckets, "val_index").shape[0]
    yv = _check_targets(val_targets, m, "val_targets", rank=(1,))[:, 0].to(torch.float64)
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

    index: (n,) int64 in [-1, B); targets: (n,) or (n, k) float; val_index / val_targets: the same for the
    validation set (both or neither; several learning rates need them); dtype: the arithmetic's precision.
    Returns ``TrainedReadout`` with (B,) or (B, k) float64 weights: the bucket constants.
    """
    if not isinstance(training, ReadoutTraining):
        raise TypeError(f"training must be a ReadoutTraining, got {type(training).__name__}")
    check_generator(generator)
    check_int_in_range(num_buckets, "num_buckets", 1)
    n = _check_index(index, num_buckets, "index").shape[0]
    y = _check_targets(targets, n, "targets").to(dtype)  # (n, k)
    k, rates = y.shape[1], len(training.lrs)
    validated = val_index is not None or val_targets is not None
    if validated:
        if val_index is None or val_targets is None:
            raise ValueError("val_index and val_targets must be given together")
        m = _check_index(val_index, num_buckets, "val_index").shape[0]
        yv = _check_targets(val_targets, m, "val_targets").to(dtype)
        if yv.shape[1] != k:
            raise ValueError(f"val_targets must have {k} columns like targets, got {yv.shape[1]}")
    elif rates > 1:
        raise ValueError("several learning rates need val_index and val_targets to choose among them")
    sink = num_buckets  # row of the one-hot matrix's all-zero rows (index -1): its weight stays 0
    rows_of = lambda i: torch.where(i < 0, sink, i)  # noqa: E731
    train_rows = rows_of(index)
    # every (learning rate, target) pair is one column of a single (B + 1, rates * k) readout, rate-major
    weights = torch.zeros(num_buckets + 1, rates * k, dtype=dtype)
    step = _Optimizer(training, torch.tensor(training.lrs, dtype=dtype).repeat_interleave(k), weights)
    batch = n if training.batch_size is None else min(training.batch_size, n)
    y_all = y.repeat(1, rates)  # (n, rates * k)
    best = torch.zeros(num_buckets + 1, k, dtype=dtype)
    best_err = [math.inf] * k
    chosen = [(rates - 1, training.epochs)] * k
    epoch_loss = [[] for _ in training.lrs]
    val_mse = [[] for _ in training.lrs] if validated else None
    grad = torch.zeros_like(weights)
    for epoch in range(1, training.epochs + 1):
        order = torch.arange(n) if batch == n else torch.randperm(n, generator=generator)
        epoch_rows, epoch_y = train_rows[order], y_all[order]  # gathered once: each batch is then a view
        sums = torch.zeros(rates * k, dtype=torch.float64)
        for start in range(0, n, batch):
            rows = epoch_rows[start:start + batch]  # (b,)
            residual = weights.index_select(0, rows).sub_(epoch_y[start:start + batch])  # (b, rates * k)
            sums += (residual * residual).mean(dim=0).double()
            grad.zero_().index_add_(0, rows, residual).mul_(2.0 / residual.shape[0])
            grad[sink] = 0  # an all-zero feature row contributes no gradient
            step(weights, grad)
        steps = math.ceil(n / batch)
        for r, loss in enumerate(sums.reshape(rates, k).mean(dim=1).tolist()):
            epoch_loss[r].append(loss / steps)
        if validated:
            errors = ((weights[rows_of(val_index)] - yv.repeat(1, rates)) ** 2).mean(dim=0)
            errors = errors.reshape(rates, k).tolist()
            for r in range(rates):
                val_mse[r].append(errors[r])
                for j in range(k):
                    if math.isfinite(errors[r][j]) and errors[r][j] < best_err[j]:
                        best_err[j], chosen[j] = errors[r][j], (r, epoch)
                        best[:, j] = weights[:, r * k + j]
    if not validated:
        best = weights.clone()
    if not bool(torch.isfinite(best).all()):
        raise ValueError(f"training diverged (non-finite weights) at every learning rate of {training.lrs}")
    train_mse = ((best[train_rows] - y) ** 2).mean(dim=0).tolist()  # (k,)
    out = best[:num_buckets].detach().to(torch.float64)
    return TrainedReadout(out.squeeze(1) if targets.dim() == 1 else out,
                          [training.lrs[r] for r, _ in chosen], [e for _, e in chosen],
                          epoch_loss, val_mse, train_mse)
