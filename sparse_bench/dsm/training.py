"""Readouts trained by gradient descent (Adam or SGD) over frozen features: the paper's way of training a DSM.

``DSM.fit`` solves for the readout in closed form (ridge); the paper trains it by gradient descent instead.
``train_readout`` minimises the mean squared error sum_j (1/n) ||F a_j - y_j||^2 over a (t, k) readout from
zero, with torch's Adam or SGD, full-batch or in minibatches drawn from an explicit ``torch.Generator``, for a
stated number of epochs, at one or several learning rates side by side. Given a validation set it keeps, per
target, the learning rate and epoch with the least validation error (early stopping: the counterpart of the
ridge chosen on a validation set by ``DSM.fit_validated``). Nothing else is random, so the same inputs give
the same bits. Each target column and each learning rate has its own loss term, and Adam and SGD update
coordinates one by one, so training them together gives what training each alone gives; one pass over a
batch's features serves all of them.

Steps multiply dense (batch, t) feature rows: gathering a masked DSM's s active entries per row instead was
not faster on a CPU once the second top-k pass that finds them was counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..validation import (check_finite, check_generator, check_int_in_range, check_positive_float,
                          check_samples)
from .masked import DSM

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class ReadoutTraining:
    """How a readout is trained: optimizer ("adam" or "sgd"), learning rates, epochs, minibatch size.

    lrs: the learning rates trained side by side (one, unless a validation set chooses among them).
    batch_size None trains full-batch (one step per epoch); otherwise each epoch visits the samples in a
    fresh random order in batches of ``batch_size`` (the last one may be smaller). momentum: SGD only.
    """

    optimizer: str = "adam"
    lrs: tuple = (1e-3,)
    epochs: int = 100
    batch_size: int | None = None
    momentum: float = 0.0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not isinstance(self.lrs, tuple) or not self.lrs:
            raise ValueError(f"lrs must be a non-empty tuple of learning rates, got {self.lrs!r}")
        for lr in self.lrs:
            check_positive_float(lr, "lrs")
        check_int_in_range(self.epochs, "epochs", 1)
        if self.batch_size is not None:
            check_int_in_range(self.batch_size, "batch_size", 1)
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, (int, float)) \
                or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be a number in [0, 1), got {self.momentum!r}")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError("momentum applies to optimizer='sgd' only")

    def steps(self, samples: int) -> int:
        """Optimizer updates over ``samples`` training rows: epochs * ceil(samples / batch)."""
        check_int_in_range(samples, "samples", 1)
        batch = samples if self.batch_size is None else min(self.batch_size, samples)
        return self.epochs * math.ceil(samples / batch)

    def describe(self, samples: int | None = None) -> str:
        """One line: optimizer, learning rates, batch, epochs (and steps, given the training sample count)."""
        batch = "full batch" if self.batch_size is None else f"batches of {self.batch_size}"
        extra = f", momentum {self.momentum}" if self.momentum else ""
        steps = "" if samples is None else f" ({self.steps(samples)} steps)"
        lrs = ", ".join(f"{lr:g}" for lr in self.lrs)
        return (f"{self.optimizer} on the readout from zero, lr {{{lrs}}}{extra}, {batch}, up to "
                f"{self.epochs} epochs{steps}, loss: mean squared error")


@dataclass(frozen=True)
class TrainedReadout:
    """What ``train_readout`` returns.

    weights: (t,) or (t, k) float64, per target the chosen learning rate's weights at the chosen epoch. lr,
    epoch: per target, the chosen learning rate and epoch (1-based; the last epoch without validation data).
    epoch_loss: per learning rate, per epoch, the mean of the epoch's minibatch losses (mean over targets of
    the batch MSE before each step; free to record). val_mse: per learning rate, per epoch, per target, the
    validation MSE after the epoch (None without validation data). train_mse: per target, the training MSE of
    the returned weights on every training row.
    """

    weights: torch.Tensor
    lr: list
    epoch: list
    epoch_loss: list
    val_mse: list | None
    train_mse: list


def _check_features(features: torch.Tensor, name: str) -> int:
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or not features.is_floating_point():
        got = getattr(features, "shape", type(features).__name__)
        raise ValueError(f"{name} must be a floating (n, t) tensor, got {got}")
    check_finite(features, name)
    if features.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample")
    return features.shape[0]


def target_columns(targets: torch.Tensor, n: int, name: str, columns: bool = True) -> torch.Tensor:
    """targets: (n,) float, or (n, k) where ``columns``, finite; returned as (n, k). ValueError naming
    ``name`` otherwise."""
    ranks = (1, 2) if columns else (1,)
    if not isinstance(targets, torch.Tensor) or targets.dim() not in ranks or targets.shape[0] != n \
            or not targets.is_floating_point():
        shape = f"({n},) or ({n}, k)" if columns else f"({n},)"
        raise ValueError(f"{name} must be a floating {shape} tensor, "
                         f"got {getattr(targets, 'shape', type(targets).__name__)}")
    check_finite(targets, name)
    return targets.unsqueeze(1) if targets.dim() == 1 else targets


class _Optimizer:
    """Adam (Kingma & Ba, as ``torch.optim.Adam`` with its defaults) or SGD with momentum (as
    ``torch.optim.SGD``), with a learning rate per column of one (t, columns) parameter, updated in place.

    Written out because torch's optimizers take one learning rate per tensor: a tensor per rate cost three
    optimizer calls per step, and at small widths that Python overhead was most of the training time.
    """

    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(self, training: ReadoutTraining, lrs: torch.Tensor, weights: torch.Tensor):
        self.kind, self.momentum, self.lrs, self.steps = training.optimizer, training.momentum, lrs, 0
        self.first = torch.zeros_like(weights)  # Adam's first moment, or SGD's momentum buffer
        self.second = torch.zeros_like(weights) if self.kind == "adam" else None

    def __call__(self, weights: torch.Tensor, grad: torch.Tensor) -> None:
        self.steps += 1
        if self.kind == "sgd":
            if self.momentum and self.steps == 1:
                grad = self.first.copy_(grad)
            elif self.momentum:
                grad = self.first.mul_(self.momentum).add_(grad)
            weights.sub_(grad * self.lrs)
            return
        beta1, beta2 = self.BETAS
        self.first.lerp_(grad, 1 - beta1)
        self.second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = self.lrs / (1 - beta1**self.steps)  # (columns,)
        denom = (self.second.sqrt() / math.sqrt(1 - beta2**self.steps)).add_(self.EPS)
        weights.sub_(self.first / denom * step_size)


@dataclass(frozen=True)
class Descent:
    """What ``descend`` returns. weights: (t, k) per target the weights of its chosen (learning rate, epoch),
    in the arithmetic's dtype; rate, epoch: per target the chosen learning rate's index in ``training.lrs``
    and the epoch (1-based); epoch_loss, val_mse: as in ``TrainedReadout``."""

    weights: torch.Tensor
    rate: list
    epoch: list
    epoch_loss: list
    val_mse: list | None

    def readout(self, training: ReadoutTraining, weights: torch.Tensor, train_mse: list,
                one_target: bool) -> TrainedReadout:
        """The ``TrainedReadout`` of this run whose final weights are ``weights`` (t, k) float64 ((t,) for
        ``one_target``) with training MSE ``train_mse`` per target."""
        return TrainedReadout(weights.squeeze(1) if one_target else weights,
                              [training.lrs[r] for r in self.rate], self.epoch, self.epoch_loss, self.val_mse,
                              train_mse)


# (weights (t, rates * k), rows (b,) int64 or None for every row in order, targets of the rows (b, rates * k))
# -> (residual prediction - target (b, rates * k), gradient of the batch loss with respect to weights)
BatchStep = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def descend(training: ReadoutTraining, generator: torch.Generator, units: int, targets: torch.Tensor,
            batch_step: BatchStep, val_predict: Callable[[torch.Tensor], torch.Tensor] | None = None,
            val_targets: torch.Tensor | None = None) -> Descent:
    """The loop of every readout trained here: ``training``'s optimizer on the mean squared error from a zero
    (t, k) readout, each learning rate side by side as its own k columns of one (t, rates * k) parameter
    (rate-major), minibatches in a fresh order from ``generator`` each epoch.

    units: t; targets: (n, k), in the arithmetic's dtype; batch_step: the residual and gradient of a batch
    (``BatchStep``), computed however the features are held. val_predict: weights -> (m, rates * k)
    predictions on the validation set, val_targets: its (m, k) targets; with them each target keeps its
    (learning rate, epoch) of least validation MSE, without them the last epoch's weights (one learning rate).
    ValueError where training diverged at every learning rate.
    """
    n, k = targets.shape
    rates, dtype = len(training.lrs), targets.dtype
    weights = torch.zeros(units, rates * k, dtype=dtype)
    step = _Optimizer(training, torch.tensor(training.lrs, dtype=dtype).repeat_interleave(k), weights)
    batch = n if training.batch_size is None else min(training.batch_size, n)
    y_all = targets.repeat(1, rates)  # (n, rates * k)
    validated = val_predict is not None
    yv_all = val_targets.repeat(1, rates) if validated else None
    best = torch.zeros(units, k, dtype=dtype)
    best_err = [math.inf] * k
    chosen = [(rates - 1, training.epochs)] * k
    epoch_loss = [[] for _ in training.lrs]
    val_mse = [[] for _ in training.lrs] if validated else None
    for epoch in range(1, training.epochs + 1):
        order = None if batch == n else torch.randperm(n, generator=generator)
        sums = torch.zeros(rates * k, dtype=torch.float64)
        for start in range(0, n, batch):
            index = None if order is None else order[start:start + batch]
            residual, grad = batch_step(weights, index, y_all if index is None else y_all[index])
            sums += (residual * residual).mean(dim=0).double()
            step(weights, grad)
        steps = math.ceil(n / batch)
        for r, loss in enumerate(sums.reshape(rates, k).mean(dim=1).tolist()):
            epoch_loss[r].append(loss / steps)
        if validated:
            errors = ((val_predict(weights) - yv_all) ** 2).mean(dim=0).reshape(rates, k).tolist()
            for r in range(rates):
                val_mse[r].append(errors[r])
                for j in range(k):
                    if math.isfinite(errors[r][j]) and errors[r][j] < best_err[j]:
                        best_err[j], chosen[j] = errors[r][j], (r, epoch)
                        best[:, j] = weights[:, r * k + j]
    if not validated:
        best = weights.clone()
        if not bool(torch.isfinite(best).all()):
            raise ValueError(f"training diverged (non-finite weights) at every learning rate of "
                             f"{training.lrs}")
    elif not all(math.isfinite(e) for e in best_err):
        raise ValueError(f"training diverged (non-finite validation error) at every learning rate of "
                         f"{training.lrs}")
    return Descent(best, [r for r, _ in chosen], [e for _, e in chosen], epoch_loss, val_mse)


def train_readout(features: torch.Tensor, targets: torch.Tensor, training: ReadoutTraining,
                  generator: torch.Generator, val_features: torch.Tensor | None = None,
                  val_targets: torch.Tensor | None = None) -> TrainedReadout:
    """Train a readout on frozen features by gradient descent.

    features: (n, t) float; targets: (n,) or (n, k) float; training: optimizer, learning rates, schedule;
    generator: draws the minibatch order (unused full-batch, but still required, so every call states its
    randomness). val_features: (m, t), val_targets: like targets with m rows; with them, each target keeps the
    (learning rate, epoch) of least validation MSE; without them ``training`` must name one learning rate and
    the last epoch's weights are returned. Arithmetic runs in the features' dtype (float32 halves the memory
    traffic); weights are returned as float64, (t,) for (n,) targets and (t, k) for (n, k).
    """
    if not isinstance(training, ReadoutTraining):
        raise TypeError(f"training must be a ReadoutTraining, got {type(training).__name__}")
    check_generator(generator)
    n = _check_features(features, "features")
    dtype, units = features.dtype, features.shape[1]
    y = target_columns(targets, n, "targets").to(dtype)  # (n, k)
    k = y.shape[1]
    val_predict = yv = None
    if val_features is not None or val_targets is not None:
        _check_features(val_features, "val_features")
        if val_features.shape[1] != units:
            raise ValueError(f"val_features must have {units} columns like features, "
                             f"got {val_features.shape[1]}")
        yv = target_columns(val_targets, val_features.shape[0], "val_targets").to(dtype)
        if yv.shape[1] != k:
            raise ValueError(f"val_targets must have {k} columns like targets, got {yv.shape[1]}")
        val_features = val_features.to(dtype)
        val_predict = lambda weights: val_features @ weights  # noqa: E731
    elif len(training.lrs) > 1:
        raise ValueError("several learning rates need val_features and val_targets to choose among them")

    def batch_step(weights, index, target):
        rows = features if index is None else features[index]  # (b, t)
        residual = rows @ weights - target  # (b, rates * k)
        return residual, (rows.T @ residual).mul_(2.0 / residual.shape[0])  # gradient (t, rates * k)

    run = descend(training, generator, units, y, batch_step, val_predict, yv)
    train_mse = ((features @ run.weights - y) ** 2).mean(dim=0).tolist()  # (k,)
    return run.readout(training, run.weights.to(torch.float64), train_mse, targets.dim() == 1)


def train_dsm_readout(model: DSM, x: torch.Tensor, y: torch.Tensor, training: ReadoutTraining,
                      generator: torch.Generator, x_val: torch.Tensor | None = None,
                      y_val: torch.Tensor | None = None, dtype: torch.dtype = torch.float32
                      ) -> TrainedReadout:
    """Train ``model``'s readout on (x: (n, d), y: (n,)) with ``training``, set it, and return the run.

    x_val, y_val: optional validation set choosing the learning rate and epoch; dtype: the arithmetic's
    precision. Afterwards ``model.predict`` uses the trained readout.
    """
    if not isinstance(model, DSM):
        raise TypeError(f"model must be a DSM, got {type(model).__name__}")
    check_samples(x, y, model.d)
    val = None, None
    if x_val is not None or y_val is not None:
        check_samples(x_val, y_val, model.d, "x_val", "y_val")
        val = model.features(x_val).to(dtype), y_val
    run = train_readout(model.features(x).to(dtype), y, training, generator, *val)
    model.readout = run.weights
    return run
