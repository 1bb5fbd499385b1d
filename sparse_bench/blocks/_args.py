"""Argument checks shared by the conv and pooling blocks: one clear error per kind of bad input."""

from __future__ import annotations

import torch

from ..validation import check_float_tensor


def pair(value, name: str, low: int) -> tuple[int, int]:
    """Normalise an int or a pair of ints to ``(h, w)``; raise naming ``name`` unless both are ``>= low``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        items = tuple(value)
    else:
        items = (value, value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if item < low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return items[0], items[1]


def check_image(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Validate a (N, C, H, W) floating tensor with finite entries and H, W >= 1 (N = 0 is an empty batch; an
    image without rows or columns has no pixels to pad or pool); return it unchanged."""
    check_float_tensor(x, 4, "(N, C, H, W)", name)
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{name} must have H, W >= 1, got shape {tuple(x.shape)}")
    return x


def output_size(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    name: str = "kernel_size",
) -> tuple[int, int]:
    """(H_out, W_out) of a sliding window over a padded (H, W) input; ValueError naming ``name`` if the
    (dilated) window is larger than the padded input."""
    out = []
    for axis in range(2):
        span = dilation[axis] * (kernel[axis] - 1) + 1  # effective window extent
        padded = size[axis] + 2 * padding[axis]
        if span > padded:
            raise ValueError(
                f"{name} {kernel} (dilated extent {span}) is larger than the padded input "
                f"({size[0] + 2 * padding[0]}, {size[1] + 2 * padding[1]})"
            )
        out.append((padded - span) // stride[axis] + 1)
    return out[0], out[1]
