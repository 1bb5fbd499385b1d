"""Convolution as unfold + one matmul: every output is a linear classifier's score on one patch.

The patch matrix is ``F.unfold``'s, built by ``patch.patch_columns`` (one strided copy, faster than unfold here).

Convention (PyTorch's): ``conv2d`` is a cross-correlation, ``y[n, o, i, j] = b[o] + sum_{c, p, q}
w[o, c, p, q] * x_pad[n, g*C_g + c, i*s_h + p*d_h, j*s_w + q*d_w]`` with zero padding, where g is the group
of output channel o. Patches are flattened in the order (channel, kernel row, kernel column), the order of
``torch.nn.functional.unfold`` and of ``weight.reshape(C_out, -1)``.
"""

from __future__ import annotations

import torch

from ._args import check_image, output_size, pair
from .patch import patch_columns


def check_conv_args(x: torch.Tensor, weight: torch.Tensor, bias, stride, padding, dilation, groups):
    """Validate conv2d arguments; return normalised (stride, padding, dilation) pairs and (H_out, W_out)."""
    check_image(x, "x")
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError("weight must be a floating torch.Tensor")
    if weight.dim() != 4:
        raise ValueError(f"weight must have shape (C_out, C_in/groups, kH, kW), got rank {weight.dim()}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight dtype {weight.dtype} differs from x dtype {x.dtype}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    c_out, c_per_group = weight.shape[:2]
    if c_out % groups:
        raise ValueError(f"groups={groups} does not divide the weight's C_out={c_out}")
    if x.shape[1] != c_per_group * groups:
        raise ValueError(
            f"x has {x.shape[1]} channels but weight expects C_in = {c_per_group} * groups({groups}) "
            f"= {c_per_group * groups}"
        )
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (c_out,)):
        raise ValueError(f"bias must be a tensor of shape ({c_out},), got {getattr(bias, 'shape', bias)!r}")
    stride, padding = pair(stride, "stride", 1), pair(padding, "padding", 0)
    dilation = pair(dilation, "dilation", 1)
    kernel = (weight.shape[2], weight.shape[3])
    out_hw = output_size((x.shape[2], x.shape[3]), kernel, stride, padding, dilation, name="weight kernel")
    return stride, padding, dilation, out_hw


def conv2d_im2col(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor:
    """2-D convolution (PyTorch semantics) as ``weight @ unfold(x)``.

    x: (N, C_in, H, W); weight: (C_out, C_in/groups, kH, kW); bias: (C_out,) or None.
    Returns (N, C_out, H_out, W_out). Differentiable in x, weight and bias.
    """
    stride, padding, dilation, (h_out, w_out) = check_conv_args(
        x, weight, bias, stride, padding, dilation, groups
    )
    n = x.shape[0]
    c_out = weight.shape[0]
    kernel = (weight.shape[2], weight.shape[3])
    cols = patch_columns(x, kernel, stride, padding, dilation, (h_out, w_out))  # (N, C_in*kH*kW, L)
    cols = cols.reshape(n, groups, -1, h_out * w_out)  # (N, G, C_g*kH*kW, L): channels are the slowest axis
    w = weight.reshape(groups, c_out // groups, -1)  # (G, C_out/G, C_g*kH*kW)
    out = torch.matmul(w, cols)  # (N, G, C_out/G, L): one linear classifier per output channel, every patch
    out = out.reshape(n, c_out, h_out, w_out)
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out


def conv2d_toeplitz_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor:
    """The dense matrix T of conv2d on one image, so that ``T @ x.reshape(-1) == conv2d(x).reshape(-1)``.

    weight: (C_out, C_in/groups, kH, kW); input_shape: (C_in, H, W). Returns T of shape
    (C_out*H_out*W_out, C_in*H*W) in weight's dtype and device (row-major vec, zero padding folded in).
    Built by index arithmetic, not by calling a convolution; for small sizes only (T is dense).
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ValueError("weight must be a tensor of shape (C_out, C_in/groups, kH, kW)")
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"input_shape must be (C_in, H, W), got {tuple(input_shape)!r}")
    c_in, h, w = (int(v) for v in input_shape)
    probe = weight.new_zeros(1, c_in, h, w)
    stride, padding, dilation, (h_out, w_out) = check_conv_args(
        probe, weight, None, stride, padding, dilation, groups
    )
    c_out, c_g, k_h, k_w = weight.shape
    dev = weight.device
    o, c, p, q, i, j = torch.meshgrid(
        *(torch.arange(size, device=dev) for size in (c_out, c_g, k_h, k_w, h_out, w_out)), indexing="ij"
    )  # each (C_out, C_g, kH, kW, H_out, W_out)
    row_in = i * stride[0] - padding[0] + p * dilation[0]  # input row touched by this product
    col_in = j * stride[1] - padding[1] + q * dilation[1]
    channel_in = (o // (c_out // groups)) * c_g + c  # input channel of this product
    inside = (row_in >= 0) & (row_in < h) & (col_in >= 0) & (col_in < w)  # zero padding contributes nothing
    rows = ((o * h_out + i) * w_out + j)[inside]
    cols = ((channel_in * h + row_in) * w + col_in)[inside]
    values = weight[o, c, p, q][inside]
    matrix = weight.new_zeros(c_out * h_out * w_out, c_in * h * w)
    return matrix.index_put((rows, cols), values)  # (row, col) pairs are distinct: no accumulation needed
