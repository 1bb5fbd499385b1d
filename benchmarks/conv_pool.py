"""Convolution as im2col against native conv2d (target within 2x); pooling as a RoutingPlan against native
pooling."""

from __future__ import annotations

from .common import SEED, AreaRatios, Benchmark, relative_error, require, safe_import

conv2d_im2col = maxpool_plan = avgpool_plan = pool_from_plan = None
with safe_import():
    from sparse_bench.blocks import avgpool_plan, conv2d_im2col, maxpool_plan, pool_from_plan


def _images(batch, channels, size, seed=SEED):
    import torch

    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


class Conv2d(Benchmark):
    """3x3 convolution, stride 1, padding 1, on (8, C, 32, 32) images: native vs im2col."""

    params = [[16, 64], ["native", "im2col"]]
    param_names = ["channels", "impl"]

    def setup(self, channels, impl):
        import torch
        import torch.nn.functional as F

        require(conv2d_im2col=conv2d_im2col)
        self.prepare_process()
        self.x = _images(8, channels, 32)
        self.w = torch.randn(channels, channels, 3, 3, generator=torch.Generator().manual_seed(SEED + 1)) / 9
        self.fn = F.conv2d if impl == "native" else conv2d_im2col
        ours, native = conv2d_im2col(self.x, self.w, padding=1), F.conv2d(self.x, self.w, padding=1)
        if relative_error(ours, native) > 1e-4:
            raise AssertionError("conv2d_im2col disagrees with F.conv2d")

    def time_conv(self, channels, impl):
        self.fn(self.x, self.w, padding=1)


class Pooling(Benchmark):
    """2x2 max / avg pooling of (8, 64, 32, 32): native vs plan-then-pool (plan built inside the clock)."""

    params = [["max", "avg"], ["native", "plan"]]
    param_names = ["kind", "impl"]

    def setup(self, kind, impl):
        import torch.nn.functional as F

        require(maxpool_plan=maxpool_plan, avgpool_plan=avgpool_plan, pool_from_plan=pool_from_plan)
        self.prepare_process()
        self.x = _images(8, 64, 32)
        native = F.max_pool2d if kind == "max" else F.avg_pool2d
        make_plan = maxpool_plan if kind == "max" else avgpool_plan
        if impl == "native":
            self.fn = lambda: native(self.x, 2)
        else:
            self.fn = lambda: pool_from_plan(self.x, make_plan(self.x, 2))
        if relative_error(pool_from_plan(self.x, make_plan(self.x, 2)), native(self.x, 2)) > 1e-6:
            raise AssertionError(f"{kind} pooling plan disagrees with native pooling")

    def time_pool(self, kind, impl):
        self.fn()


class CostRatios(AreaRatios):
    """im2col / native conv2d (target <= 2) and plan-then-pool / native pooling (target <= 3), timed side by
    side (``sparse_bench.bench.components``)."""

    area = "conv_pool"
    params = [["conv_im2col_over_native", "maxpool_plan_over_native", "avgpool_plan_over_native"]]
    track_ratio = AreaRatios.ratio
