"""DSM(d, s, t): a frozen ReLU feature map whose last layer is masked per input to s of its t units.

See docs/THEORY.md §A.

g(x) = readout . (mask(x) * sigma(W x + b)), W: (t, d), b: (t,). The mask keeps the s units with the largest
pre-activations (s = t: no mask, the dense model). sigma is ReLU, or the indicator of being kept (k-NN).
FLOPs follow the paper's Table 1 convention, one multiply-add = one FLOP, routing not counted:
(d + 1) * s per input (d for each active unit's pre-activation, 1 for its readout term), e.g. d = 8,
s = 2048 -> 18,432. ``routing_flops_per_input`` states what choosing the top s honestly costs
(d * t when s < t).
"""

from __future__ import annotations

import torch
from torch import nn

from ..validation import (
    check_finite,
    check_finite_image,
    check_float_tensor,
    check_int_in_range,
    check_positive_float,
    check_samples,
    check_seed,
    check_tokens,
)
from .readout import ridge_readout, select_ridge

ACTIVATIONS = ("relu", "indicator")
RIDGE_GRID = tuple(10.0**e for e in range(-9, 0))  # candidate ridges of fit_validated (per-sample scale)
# predict works through at most this many (row, unit) features at once: a (4096, 4096) float64 feature matrix
# (128 MiB) is page-faulted in afresh on every call (glibc maps blocks above 32 MiB), which made predict time
# grow 12.8x from width 1024 to 4096 here (2 threads, 4096 queries), against 3.9x from 4096 to 16384.
PREDICT_CHUNK_ELEMENTS = 2**18  # 2 MiB of float64 features


class DSM(nn.Module):
    """Masked last layer over fixed units. weight: (t, d), bias: (t,), active_units: s in [1, t].

    readout: optional (t,) fixed last layer; otherwise ``fit`` sets it by ridge least squares (``ridge`` > 0).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, active_units: int, activation: str = "relu",
                 readout: torch.Tensor | None = None, ridge: float = 1e-6):
        super().__init__()
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
            raise ValueError("weight must be a floating (total_units, d) tensor")
        t, d = weight.shape
        if not isinstance(bias, torch.Tensor) or bias.shape != (t,):
            raise ValueError(f"bias must be a ({t},) tensor, got {getattr(bias, 'shape', type(bias))}")
        check_finite(weight, "weight")
        check_finite(bias, "bias")
        check_int_in_range(active_units, "active_units", 1, t)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.ridge = check_positive_float(ridge, "ridge")
        self.d, self.total_units, self.active_units, self.activation = d, t, active_units, activation
        self.register_buffer("weight", weight.detach().to(torch.float64))
        self.register_buffer("bias", bias.detach().to(torch.float64))
        if readout is not None and (not isinstance(readout, torch.Tensor) or readout.shape != (t,)):
            raise ValueError(f"readout must be a ({t},) tensor")
        if readout is not None:
            check_finite(readout, "readout")
        self.register_buffer("readout", None if readout is None else readout.detach().to(torch.float64))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n, t) W x + b in x's dtype, at least float32 (a float16 bias such as
        k-NN's -||b||^2 / 2 overflows above 65504). ValueError naming x where they overflow even there."""
        check_tokens(x, self.d)
        dtype = torch.promote_types(x.dtype, torch.float32)
        pre = x.to(dtype) @ self.weight.to(dtype).T + self.bias.to(dtype)
        check_finite_image(pre, x, "x", "its pre-activations W x + b")
        return pre

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n, t) bool with exactly s True per row (largest pre-activations)."""
        pre = self.pre_activations(x)  # (n, t)
        return self._mask_from(pre)

    def _mask_from(self, pre: torch.Tensor) -> torch.Tensor:
        if self.active_units == self.total_units:
            return torch.ones_like(pre, dtype=torch.bool)
        top = torch.topk(pre, self.active_units, dim=1, sorted=False).indices  # (n, s)
        return torch.zeros_like(pre, dtype=torch.bool).scatter_(1, top, True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n, t) mask(x) * sigma(W x + b), zero outside the s active units."""
        pre = self.pre_activations(x)  # (n, t)
        keep = self._mask_from(pre)
        if self.activation == "indicator":
            return keep.to(pre.dtype)
        return torch.where(keep, pre.clamp_min(0), torch.zeros_like(pre))

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> DSM:
        """Fit the readout by ridge least squares on (x: (n, d), y: (n,)), n >= 1. Returns self."""
        check_samples(x, y, self.d)
        self.readout = ridge_readout(self.features(x), y, self.ridge)
        return self

    def fit_validated(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                      ridges: tuple[float, ...] = RIDGE_GRID) -> DSM:
        """Choose ``ridge`` from ``ridges`` by error on (x_val, y_val), then fit on (x, y). Returns self."""
        check_samples(x, y, self.d)
        check_samples(x_val, y_val, self.d, "x_val", "y_val")
        self.ridge, self.readout, self.validation_errors = select_ridge(
            self.features(x), y, self.features(x_val), y_val, ridges)
        return self

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n,) float64 predictions; ValueError naming x where they overflow."""
        if self.readout is None:
            raise RuntimeError("predict called before fit (no readout)")
        check_tokens(x, self.d)
        rows = max(1, PREDICT_CHUNK_ELEMENTS // self.total_units)
        if x.shape[0] <= rows:
            features = self.features(x).to(torch.float64)  # (n, t)
            pred = (features @ self.readout.unsqueeze(1)).squeeze(1)  # (n, t) @ (t, 1)
            check_finite_image(pred, x, "x", "its prediction")
            return pred
        return torch.cat([self.predict(chunk) for chunk in x.split(rows)])

    forward = predict

    @property
    def active_units_per_input(self) -> int:
        return self.active_units

    def flops_per_input(self) -> int:
        """Multiply-adds per input of the active units (paper's convention): (d + 1) * s."""
        return (self.d + 1) * self.active_units

    def routing_flops_per_input(self) -> int:
        """Multiply-adds spent choosing the mask: d * t pre-activations when s < t, else 0."""
        return 0 if self.active_units == self.total_units else self.d * self.total_units


def random_relu_layer(d: int, units: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen random first layer every model here shares, so that equal seeds give equal units: rows of W
    ~ N(0, I_d / d), b ~ U[-1, 1]. Returns (W (units, d), b (units,)), float64, drawn on the CPU."""
    check_int_in_range(d, "d", 1)
    check_int_in_range(units, "units", 1)
    gen = torch.Generator().manual_seed(check_seed(seed))
    weight = torch.randn(units, d, generator=gen, dtype=torch.float64) / d**0.5
    bias = torch.rand(units, generator=gen, dtype=torch.float64) * 2 - 1
    return weight, bias


class TopKDSM(DSM):
    """Top-K DSM over ``total_units`` frozen random ReLU units, ``active_units`` kept per input."""

    def __init__(self, d: int, total_units: int, active_units: int, seed: int = 0, ridge: float = 1e-6):
        check_int_in_range(total_units, "total_units", 1)
        weight, bias = random_relu_layer(d, total_units, seed)
        super().__init__(weight, bias, active_units, "relu", ridge=ridge)
        self.seed = seed


class RandomFeaturesDense(DSM):
    """Dense 2-layer model: ``width`` frozen random ReLU units, all active, ridge readout."""

    def __init__(self, d: int, width: int, seed: int = 0, ridge: float = 1e-6):
        check_int_in_range(width, "width", 1)
        weight, bias = random_relu_layer(d, width, seed)
        super().__init__(weight, bias, width, "relu", ridge=ridge)
        self.seed = seed


def knn_as_dsm(points: torch.Tensor, values: torch.Tensor, k: int) -> DSM:
    """The DSM that computes k-NN regression: rows b_i = points, sigma = top-k indicator, A = values / k.

    points: (N, d) float; values: (N,) float; k in [1, N]. Pre-activation b_i . x - ||b_i||^2 / 2 ranks points
    by Euclidean distance for every x (||x - b||^2 = ||x||^2 - 2 (b . x - ||b||^2 / 2)); for unit-norm points
    the bias is a constant and this is the paper's construction. Exact up to ties in distance.
    """
    check_tokens(points, name="points")
    if not isinstance(values, torch.Tensor) or values.shape != (points.shape[0],):
        got = getattr(values, "shape", None)
        raise ValueError(f"values must be a ({points.shape[0]},) tensor, got {got}")
    check_float_tensor(values, 1, "(N,)", "values")
    check_int_in_range(k, "k", 1, points.shape[0])
    pts = points.to(torch.float64)
    bias = -0.5 * (pts * pts).sum(dim=1)  # (N,)
    if not bool(torch.isfinite(bias).all()):
        raise ValueError(f"points are too large for the construction: ||b||^2 / 2 overflows float64 (largest "
                         f"|points| {float(pts.abs().max()):.3g}, the limit is about 1e154)")
    return DSM(pts, bias, k, "indicator", readout=values.to(pts.dtype) / k)
