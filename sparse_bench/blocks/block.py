"""ConvPoolBlock: convolution -> ReLU -> pooling, with a fast native path and an explanatory im2col path."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..validation import check_finite_image, check_float_dtype, check_positive_float
from ._args import output_size, pair
from .conv import check_conv_args, conv2d_im2col
from .pooling import avgpool_plan, lse_pool, maxpool_plan, pool_from_plan

POOLS = ("max", "avg", "lse")
IMPLS = ("native", "im2col")


class ConvPoolBlock(nn.Module):
    """y = pool(relu(conv2d(x))). x: (N, in_ch, H, W) -> (N, out_ch, H_pool, W_pool).

    pool: "max" | "avg" | "lse" (log-mean-exp with ``temperature``), over ``pool_size`` windows with stride
    ``pool_size``. impl: "native" (torch.nn.functional, the fast default) or "im2col" (conv as unfold +
    matmul, max/avg pooling through their RoutingPlan); both give the same outputs. Parameters are drawn as in
    ``nn.Conv2d`` (uniform in +-1/sqrt(fan_in)) from ``generator`` when one is given.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size,
        pool: str = "max",
        impl: str = "native",
        pool_size=2,
        stride=1,
        padding=0,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        for name, value in (("in_ch", in_ch), ("out_ch", out_ch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride, self.padding = pair(stride, "stride", 1), pair(padding, "padding", 0)
        self.pool_size = pair(pool_size, "pool_size", 1)
        self.pool, self.impl = pool, impl
        self.temperature = check_positive_float(temperature, "temperature")
        check_float_dtype(dtype)
        fan_in = in_ch * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)  # nn.Conv2d's default range
        weight = torch.rand(out_ch, in_ch, *self.kernel_size, generator=generator, dtype=dtype) * 2 - 1
        bias = torch.rand(out_ch, generator=generator, dtype=dtype) * 2 - 1
        self.weight = nn.Parameter(weight * bound)
        self.bias = nn.Parameter(bias * bound)

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """relu(conv2d(x)): (N, out_ch, H_conv, W_conv), computed by the chosen impl."""
        if self.impl == "im2col":
            z = conv2d_im2col(x, self.weight, self.bias, self.stride, self.padding)
        else:
            check_conv_args(x, self.weight, self.bias, self.stride, self.padding, 1, 1)
            z = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
            check_finite_image(z, x, "x", "the convolution")  # as conv2d_im2col does
        return F.relu(z)

    def routing_plan(self, x: torch.Tensor):
        """The pooling layer's RoutingPlan over the activations (tokens = activation positions); max/avg."""
        if self.pool == "lse":
            raise ValueError("routing_plan needs pool='max' or 'avg'; log-sum-exp pooling is not sparse")
        z = self.activations(x)
        build = maxpool_plan if self.pool == "max" else avgpool_plan
        return build(z, self.pool_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.activations(x)
        if self.pool == "lse":
            return lse_pool(z, self.pool_size, self.temperature)
        if self.impl == "im2col":
            build = maxpool_plan if self.pool == "max" else avgpool_plan
            return pool_from_plan(z, build(z, self.pool_size))
        # a window larger than the map: our clear error, not torch's
        output_size(tuple(z.shape[2:]), self.pool_size, self.pool_size, (0, 0), name="pool_size")
        if self.pool == "max":
            return F.max_pool2d(z, self.pool_size)
        return F.avg_pool2d(z, self.pool_size)

    def extra_repr(self) -> str:
        c_out, c_in = self.weight.shape[:2]
        return f"{c_in}, {c_out}, kernel_size={self.kernel_size}, pool={self.pool!r}, impl={self.impl!r}"
