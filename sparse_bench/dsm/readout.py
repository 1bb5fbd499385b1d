"""Deterministic ridge least-squares readouts for the last layer of a DSM.

Solves min_a (1/n) ||F a - y||^2 + ridge * ||a||^2 in float64, in whichever of the two equivalent forms is cheaper:
primal (F^T F + n ridge I) a = F^T y when units <= samples, dual a = F^T (F F^T + n ridge I)^{-1} y otherwise.
Both are plain dense solves (no iteration, no randomness), so the same inputs give the same bits.
"""

from __future__ import annotations

import torch

from ..validation import check_finite, check_positive_float


def ridge_readout(features: torch.Tensor, targets: torch.Tensor, ridge: float) -> torch.Tensor:
    """features: (n, t) float; targets: (n,) float; ridge > 0. Returns the (t,) float64 readout weights."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise ValueError(f"features must be a (n, t) tensor, got {getattr(features, 'shape', type(features))}")
    if not isinstance(targets, torch.Tensor) or targets.dim() != 1 or targets.shape[0] != features.shape[0]:
        raise ValueError(f"targets must be a ({features.shape[0]},) tensor, got {getattr(targets, 'shape', None)}")
    if features.shape[0] == 0:
        raise ValueError("features must hold at least one sample")
    check_finite(features, "features")
    check_finite(targets, "targets")
    ridge = check_positive_float(ridge, "ridge")
    f = features.to(torch.float64)  # (n, t)
    y = targets.to(device=f.device, dtype=torch.float64)  # (n,)
    n, t = f.shape
    if t <= n:
        gram = f.T @ f  # (t, t)
        gram.diagonal().add_(n * ridge)
        return torch.linalg.solve(gram, f.T @ y)
    kernel = f @ f.T  # (n, n)
    kernel.diagonal().add_(n * ridge)
    return f.T @ torch.linalg.solve(kernel, y)
