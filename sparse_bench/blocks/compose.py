"""Chains of convolutions: their receptive field, and two linear convolutions folded into one."""

from __future__ import annotations

import torch

from ..validation import check_finite, check_int_in_range
from ._args import pair


def receptive_field(kernel_sizes, strides=None, dilations=None) -> int:
    """Receptive field (along one axis, in input pixels) of one output of a chain of convolutions.

    r = 1 + sum_l (k'_l - 1) * prod_{i<l} s_i with k'_l = d_l (k_l - 1) + 1 the dilated kernel extent.
    kernel_sizes, strides, dilations: sequences of positive ints, one per layer (strides/dilations default 1).
    """
    kernel_sizes = list(kernel_sizes)
    if not kernel_sizes:
        raise ValueError("kernel_sizes must name at least one layer")
    strides = [1] * len(kernel_sizes) if strides is None else list(strides)
    dilations = [1] * len(kernel_sizes) if dilations is None else list(dilations)
    if not len(strides) == len(dilations) == len(kernel_sizes):
        raise ValueError("kernel_sizes, strides and dilations must have one entry per layer")
    field, jump = 1, 1  # jump: input pixels between neighbouring units of the current layer
    for k, s, d in zip(kernel_sizes, strides, dilations):
        check_int_in_range(k, "kernel_sizes", 1)
        check_int_in_range(s, "strides", 1)
        check_int_in_range(d, "dilations", 1)
        field += (d * (k - 1)) * jump
        jump *= s
    return field


def compose_conv_kernels(first: torch.Tensor, second: torch.Tensor, first_stride=1) -> torch.Tensor:
    """Kernel W of the single convolution equal to ``conv2d(conv2d(x, first, stride=s1), second, stride=s2)``.

    first: (C_mid, C_in, k1h, k1w); second: (C_out, C_mid, k2h, k2w); no padding, no dilation, groups=1,
    no bias. ``W[o, i, a + s1*b] = sum_m second[o, m, b] * first[m, i, a]`` (a full convolution of the two
    kernels, with the second dilated by the first stride). The composed convolution has stride s1*s2 and
    kernel (C_out, C_in, k1h + s1h*(k2h-1), k1w + s1w*(k2w-1)).
    """
    for name, kernel in (("first", first), ("second", second)):
        if not isinstance(kernel, torch.Tensor) or kernel.dim() != 4:
            raise ValueError(f"{name} must be a 4-D kernel (C_out, C_in, kH, kW)")
    if not (first.is_floating_point() and second.dtype == first.dtype):
        raise TypeError(f"first and second must be floating kernels of one dtype, got {first.dtype} and "
                        f"{second.dtype}")
    check_finite(first, "first")
    check_finite(second, "second")
    if second.shape[1] != first.shape[0]:
        raise ValueError(
            f"second expects {second.shape[1]} input channels but first has {first.shape[0]} outputs"
        )
    s_h, s_w = pair(first_stride, "first_stride", 1)
    c_out, c_mid, k2h, k2w = second.shape
    _, c_in, k1h, k1w = first.shape
    out = first.new_zeros(c_out, c_in, k1h + s_h * (k2h - 1), k1w + s_w * (k2w - 1))
    for b_h in range(k2h):
        for b_w in range(k2w):
            block = torch.einsum("om,mihw->oihw", second[:, :, b_h, b_w], first)  # (C_out, C_in, k1h, k1w)
            out[:, :, s_h * b_h : s_h * b_h + k1h, s_w * b_w : s_w * b_w + k1w] += block
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"the composed kernel overflows {out.dtype}: first and second are too large to "
                         f"compose in this dtype")
    return out
