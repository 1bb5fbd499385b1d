"""Deterministic ridge least-squares readouts for the last layer of a DSM.

Solves min_a (1/n) ||F a - y||^2 + ridge * ||a||^2 in float64, in whichever of the two equivalent forms is
cheaper: primal (F^T F + n ridge I) a = F^T y when units <= samples, dual a = F^T (F F^T + n ridge I)^{-1} y
otherwise.
Both are plain dense solves (no iteration, no randomness), so the same inputs give the same bits.
"""

from __future__ import annotations

import torch

from ..validation import check_finite, check_positive_float


def _as_float64(features, targets, device=None):
    """Validate features: (n, t), n >= 1, and targets: (n,); return both as float64 on features' device."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        got = getattr(features, "shape", type(features))
        raise ValueError(f"features must be a (n, t) tensor, got {got}")
    if not isinstance(targets, torch.Tensor) or targets.dim() != 1 or targets.shape[0] != features.shape[0]:
        got = getattr(targets, "shape", None)
        raise ValueError(f"targets must be a ({features.shape[0]},) tensor, got {got}")
    if features.shape[0] == 0:
        raise ValueError("features must hold at least one sample")
    check_finite(features, "features")
    check_finite(targets, "targets")
    f = features.to(device=device, dtype=torch.float64)  # (n, t)
    return f, targets.to(device=f.device, dtype=torch.float64)


def ridge_readout(features: torch.Tensor, targets: torch.Tensor, ridge: float) -> torch.Tensor:
    """features: (n, t) float; targets: (n,) float; ridge > 0. Returns the (t,) float64 readout weights.

    ValueError naming the ridge where the system is singular or its solution not finite in float64: a ridge
    lost in the rounding of much larger features (n * ridge below float64's resolution of the Gram matrix)."""
    ridge = check_positive_float(ridge, "ridge")
    f, y = _as_float64(features, targets)
    n, t = f.shape
    primal = t <= n
    system = f.T @ f if primal else f @ f.T  # (t, t) or (n, n)
    system.diagonal().add_(n * ridge)
    solution, info = torch.linalg.solve_ex(system, f.T @ y if primal else y)
    weights = solution if primal else f.T @ solution
    if int(info) != 0 or not bool(torch.isfinite(weights).all()):
        raise ValueError(f"the ridge system is singular or overflows in float64 at ridge={ridge!r} (largest "
                         f"|feature| {float(f.abs().max()):.3g}): scale the inputs down or raise the ridge")
    return weights


def select_ridge(features: torch.Tensor, targets: torch.Tensor, val_features: torch.Tensor,
                 val_targets: torch.Tensor, ridges: tuple[float, ...],
                 ) -> tuple[float, torch.Tensor, list[float]]:
    """Fit a readout for every ridge in ``ridges`` (features: (n, t), targets: (n,)) and keep the one with the
    least mean squared error on (val_features: (m, t), val_targets: (m,)); ties go to the larger ridge.
    One symmetric eigendecomposition serves every ridge.
    Returns (ridge, (t,) float64 weights, validation MSE per ridge)."""
    if not ridges:
        raise ValueError("ridges must name at least one value")
    for r in ridges:
        check_positive_float(r, "ridges")
    f, y = _as_float64(features, targets)
    if not isinstance(val_features, torch.Tensor) or val_features.dim() != 2 \
            or val_features.shape[1] != f.shape[1]:
        raise ValueError(f"val_features must be a (m, {f.shape[1]}) tensor")
    fv, yv = _as_float64(val_features, val_targets, f.device)
    n, t = f.shape
    if t <= n:
        evals, evecs = torch.linalg.eigh(f.T @ f)  # (t,), (t, t)
        rhs = evecs.T @ (f.T @ y)  # (t,)
        val_basis = fv @ evecs  # (m, t)
    else:  # dual: the (t, n) map f.T @ evecs is never formed, only (m, n) and (n, n) products
        evals, evecs = torch.linalg.eigh(f @ f.T)  # (n,), (n, n)
        rhs = evecs.T @ y  # (n,)
        val_basis = (fv @ f.T) @ evecs  # (m, n)
    errors, coefs = [], []
    for r in ridges:
        coef = rhs / (evals.clamp_min(0) + n * r)
        errors.append(float(((val_basis @ coef - yv) ** 2).mean()))
        coefs.append(coef)
    best = min(range(len(ridges)), key=lambda i: (errors[i], -ridges[i]))
    weights = evecs @ coefs[best] if t <= n else f.T @ (evecs @ coefs[best])
    return float(ridges[best]), weights, errors
