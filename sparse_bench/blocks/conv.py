"""Convolution as im2col + one matmul: every output is a linear classifier's score on one patch.

Convention (PyTorch's): ``conv2d`` is a cross-correlation, ``y[n, o, i, j] = b[o] + sum_{c, p, q}
w[o, c, p, q] * x_pad[n, g*C_g + c, i*s_h + p*d_h, j*s_w + q*d_w]`` with zero padding, where g is the group
of output channel o. ``conv2d_im2col`` takes the patches as rows (``patch.patch_rows_channels_last``: one row
per output pixel, flattened (kernel row, kernel column, channel)) and the kernel as a classifier with the same
column order, so the product is ``rows @ classifier.T`` (``kernels.linear``) with the rows row-major, the
layout the CPU backend's oneDNN product takes.
"""

from __future__ import annotations

import torch

from .. import kernels
from ..validation import check_finite, check_finite_image
from ._args import check_image, output_size, pair
from .patch import patch_rows_channels_last


def check_conv_args(x: torch.Tensor, weight: torch.Tensor, bias, stride, padding, dilation, groups):
    """Validate conv2d arguments; return normalised (stride, padding, dilation) pairs and (H_out, W_out)."""
    check_image(x, "x")
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError("weight must be a floating torch.Tensor")
    if weight.dim() != 4:
        raise ValueError(f"weight must have shape (C_out, C_in/groups, kH, kW), got rank {weight.dim()}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight dtype {weight.dtype} differs from x dtype {x.dtype}")
    check_finite(weight, "weight")
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
    if bias is not None:
        if bias.dtype != x.dtype:  # x + bias would promote the output to bias's dtype
            raise TypeError(f"bias dtype {bias.dtype} differs from x dtype {x.dtype}")
        check_finite(bias, "bias")
    stride, padding = pair(stride, "stride", 1), pair(padding, "padding", 0)
    dilation = pair(dilation, "dilation", 1)
    kernel = (weight.shape[2], weight.shape[3])
    out_hw = output_size((x.shape[2], x.shape[3]), kernel, stride, padding, dilation, name="weight kernel")
    return stride, padding, dilation, out_hw


def conv2d_im2col(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor:
    """2-D convolution (PyTorch semantics) as ``patch_rows @ weight_rows.T``.

    x: (N, C_in, H, W); weight: (C_out, C_in/groups, kH, kW); bias: (C_out,) or None.
    Returns (N, C_out, H_out, W_out), contiguous. Differentiable in x, weight and bias. x, weight and bias
    must be finite; an output that overflows their dtype is a ValueError naming x.
    """
    stride, padding, dilation, (h_out, w_out) = check_conv_args(
        x, weight, bias, stride, padding, dilation, groups
    )
    n = x.shape[0]
    c_out, c_g, k_h, k_w = weight.shape
    rows = patch_rows_channels_last(x, (k_h, k_w), stride, padding, dilation, (h_out, w_out))  # (N*L, K)
    # K = kH*kW*C_in; one classifier per output channel, its columns in the rows' (kH, kW, C_in) order
    if groups == 1:
        out = kernels.linear(rows, weight.permute(0, 2, 3, 1).reshape(c_out, -1))  # (N*L, C_out)
    else:  # group g reads channels g*C_g .. (g+1)*C_g - 1 of every kernel position
        num_rows, o_g = rows.shape[0], c_out // groups
        rows_g = rows.reshape(num_rows, k_h * k_w, groups, c_g).permute(2, 0, 1, 3)  # (G, N*L, kH*kW, C_g)
        rows_g = rows_g.reshape(groups, num_rows, k_h * k_w * c_g)  # explicit: num_rows may be 0
        w_g = weight.reshape(groups, o_g, c_g, k_h, k_w).permute(0, 1, 3, 4, 2).reshape(groups, o_g, -1)
        out = torch.matmul(rows_g, w_g.transpose(1, 2)).permute(1, 0, 2).reshape(num_rows, c_out)
    if bias is not None:
        out = out + bias
    check_finite_image(out, x, "x", "the convolution")
    return out.view(n, h_out, w_out, c_out).permute(0, 3, 1, 2).contiguous()


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
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in input_shape):
        raise ValueError(f"input_shape must be three ints >= 1 (C_in, H, W), got {tuple(input_shape)!r}")
    c_in, h, w = input_shape
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
