"""Pooling as routing: a pooling layer is a RoutingPlan from input positions to output windows.

Conventions of the plans built here (x: (N, C, H, W), output (N, C, H_out, W_out)):
- token = an input position, ``token = ((n*C + c)*H + h)*W + w``, the index into ``x.reshape(-1)``;
- expert = an output window, ``expert = ((n*C + c)*H_out + i)*W_out + j``, the index into ``y.reshape(-1)``;
- ``y.reshape(-1)[e] = sum_{a: expert[a] = e} weight[a] * x.reshape(-1)[token[a]]`` (see ``pool_from_plan``).
Max pooling gives one assignment per window, weight 1, to the position holding the window's maximum; ties go
to the first maximum in row-major order inside the window, which is what PyTorch's ``max_pool2d`` (CPU and
CUDA) returns in ``return_indices``. Because the plan's tokens are exactly the inputs that max pooling copies,
the backward pass of max pooling sends window e's gradient to token[e] and to nothing else. Padding is
implicit (-inf for max, excluded or counted as zero for average) and never becomes a token.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from ..routing.plan import RoutingPlan, plan_from_sorted_assignments
from ..validation import check_bool, check_positive_float
from ._args import check_image, output_size, pair


def _window_args(x, kernel_size, stride, padding):
    """Normalise pooling arguments; padding at most half the kernel, as PyTorch requires."""
    check_image(x, "x")
    kernel = pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else pair(stride, "stride", 1)
    padding = pair(padding, "padding", 0)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"padding {padding} must be at most half of kernel_size {kernel}")
    out_hw = output_size((x.shape[2], x.shape[3]), kernel, stride, padding, name="kernel_size")
    return kernel, stride, padding, out_hw


def _window_positions(x, kernel, stride, padding, out_hw):
    """Input rows and columns covered by every window offset: two (H_out*W_out, kH*kW) int64 tensors."""
    dev = x.device
    out_i, out_j = torch.meshgrid(*(torch.arange(v, device=dev) for v in out_hw), indexing="ij")
    off_p, off_q = torch.meshgrid(*(torch.arange(v, device=dev) for v in kernel), indexing="ij")
    rows = out_i.reshape(-1, 1) * stride[0] - padding[0] + off_p.reshape(1, -1)  # (L, kH*kW)
    cols = out_j.reshape(-1, 1) * stride[1] - padding[1] + off_q.reshape(1, -1)
    return rows, cols


def _plan(x, tokens, experts, weights, out_hw, kind, counts) -> RoutingPlan:
    """counts: (E,) assignments per window, known to the builder."""
    n, c, h, w = x.shape
    aux = {"output_shape": (n, c, out_hw[0], out_hw[1]), "pool": kind}
    num_experts = n * c * out_hw[0] * out_hw[1]
    # both builders emit windows in order and a window's positions in row-major order: sorted by construction
    return plan_from_sorted_assignments(tokens, experts, weights, n * c * h * w, num_experts, aux=aux,
                                        expert_counts=counts)


def maxpool_plan(x, kernel_size, stride=None, padding=0) -> RoutingPlan:
    """Max pooling (PyTorch semantics, stride defaults to kernel_size) as a RoutingPlan: one assignment per
    window, weight 1, to the first position in row-major window order that holds the window's maximum.

    x: (N, C, H, W) finite floats. Index work only; nothing here carries gradient.
    """
    kernel, stride, padding, out_hw = _window_args(x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    with torch.no_grad():
        pads = (padding[1], padding[1], padding[0], padding[0])
        padded = F.pad(x, pads, value=-math.inf) if any(padding) else x
        span = [s * (o - 1) + 1 for s, o in zip(stride, out_hw)]  # input extent of one window offset's grid
        best = first_max = None  # running maximum and its window offset, offsets in row-major order
        for offset, (p, q) in enumerate(itertools.product(range(kernel[0]), range(kernel[1]))):
            view = padded[:, :, p:p + span[0]:stride[0], q:q + span[1]:stride[1]]  # (N, C, H_out, W_out)
            if best is None:
                best, first_max = view.clone(), torch.zeros(view.shape, dtype=torch.int64, device=x.device)
                continue
            later_wins = view > best  # strictly greater: ties keep the earlier offset
            best = torch.where(later_wins, view, best)
            first_max.masked_fill_(later_wins, offset)
        # (N*C, L) offset of each window's first maximum
        first_max = first_max.reshape(n * c, out_hw[0] * out_hw[1])
        rows, cols = _window_positions(x, kernel, stride, padding, out_hw)  # (L, kH*kW)
        window = torch.arange(first_max.shape[1], device=x.device)  # (L,)
        r = rows[window, first_max]  # (N*C, L) input row of each window's maximum
        q = cols[window, first_max]
        plane = torch.arange(n * c, device=x.device).reshape(-1, 1)  # (N*C, 1)
        tokens = ((plane * h + r) * w + q).reshape(-1)
        experts = (plane * first_max.shape[1] + window).reshape(-1)
    ones = torch.ones(tokens.shape, dtype=torch.int64, device=x.device)  # one assignment per window
    return _plan(x, tokens, experts, x.new_ones(tokens.shape), out_hw, "max", ones)


def avgpool_plan(x, kernel_size, stride=None, padding=0, count_include_pad=True) -> RoutingPlan:
    """Average pooling (PyTorch semantics) as a RoutingPlan: every in-bounds position of a window is assigned
    to it with weight 1/(kH*kW) (``count_include_pad=True``, padding counts as zeros) or 1/(number of
    in-bounds positions) (``count_include_pad=False``). x: (N, C, H, W)."""
    kernel, stride, padding, out_hw = _window_args(x, kernel_size, stride, padding)
    check_bool(count_include_pad, "count_include_pad")
    n, c, h, w = x.shape
    with torch.no_grad():
        rows, cols = _window_positions(x, kernel, stride, padding, out_hw)  # (L, kH*kW)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # (L, kH*kW)
        count = inside.sum(dim=1, keepdim=True).expand_as(inside)  # in-bounds positions per window
        divisor = torch.full_like(count, kernel[0] * kernel[1]) if count_include_pad else count
        window = torch.arange(rows.shape[0], device=x.device).reshape(-1, 1).expand_as(rows)
        plane = torch.arange(n * c, device=x.device).reshape(-1, 1)  # (N*C, 1)
        # (1, A/(N*C)) + (N*C, 1): with the wide row first, ATen's broadcast add ran 1.6x faster on CPU
        # ((1, 1024) + (512, 1) int64, 2 threads: 112 vs 188 us, 2026-12-03)
        tokens = ((rows * w + cols)[inside].reshape(1, -1) + plane * h * w).reshape(-1)
        experts = (window[inside].reshape(1, -1) + plane * rows.shape[0]).reshape(-1)
        weights = (1.0 / divisor[inside].to(x.dtype)).repeat(n * c)
        counts = inside.sum(dim=1).repeat(n * c)  # (E,) in-bounds positions of every window
    return _plan(x, tokens, experts, weights, out_hw, "avg", counts)


def pool_from_plan(x: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
    """The pooled output of a pooling plan: ``y[e] = sum_a weight[a] * x.reshape(-1)[token[a]]``.

    x: (N, C, H, W), the tensor the plan was built from. Returns ``plan.aux["output_shape"]``. Differentiable
    in x (and in the weights); the segment sum is a dense (E, max assignments per window) sum, no atomics.
    """
    if x.numel() != plan.num_tokens:
        raise ValueError(f"x has {x.numel()} entries but the plan routes {plan.num_tokens} tokens")
    values = x.reshape(-1).index_select(0, plan.token_index) * plan.weight  # (A,)
    width = int(plan.expert_counts.max()) if plan.num_experts else 0
    if width * plan.num_experts == plan.num_assignments:  # every window equally full: consecutive segments
        return row_sums(values.view(plan.num_experts, width)).reshape(plan.aux["output_shape"])
    table = values.new_zeros(plan.num_experts, width)  # (E, slots)
    table = table.index_put((plan.expert_index, plan.slot_in_expert), values)
    return row_sums(table).reshape(plan.aux["output_shape"])


NARROW_ROWS = 8  # widths up to which row_sums adds columns instead of calling a reduction


def row_sums(table: torch.Tensor) -> torch.Tensor:
    """(E,) sums of the rows of an (E, w) table (a pooling window's weighted inputs, w = kH*kW slots).

    For w <= NARROW_ROWS: w - 1 column additions, left to right. ATen's reduction along a short last dimension is
    3.3x slower here ((131072, 4) fp32, 2 threads, 2026-11-25: 294 vs 89 us with ``torch.utils.benchmark``),
    which made it the largest single cost of average pooling from a plan."""
    width = table.shape[1]
    if width == 0 or width > NARROW_ROWS:
        return table.sum(dim=1)
    out = table[:, 0]
    for j in range(1, width):
        out = out + table[:, j]
    return out


def lse_pool(x, kernel_size, temperature, stride=None, padding=0) -> torch.Tensor:
    """Log-mean-exp pooling ``T * log(mean_window exp(x / T))`` with temperature T > 0.

    Tends to max pooling as T -> 0 and to average pooling as T -> inf; it lies between the two for every T.
    With T = 1/mu it is, up to a monotone map, the likelihood ratio for one planted N(mu, 1) score among
    N(0, 1) scores. Padding is excluded (the mean is over in-bounds positions). x: (N, C, H, W) ->
    (N, C, H_out, W_out). T must lie in x's dtype's normal range [finfo.tiny, finfo.max] (ValueError
    otherwise, or where the pooled value overflows).

    Computed as ``m + T * log1p(mean(expm1((x - m) / T)))`` with m the window's maximum: the same value, but
    accurate at every T (``T * (logsumexp(x / T) - log n)`` loses one digit per decade of T, all of them as
    T -> inf, where the result is the window's mean and the bracket a difference of two near-equal logs).
    """
    temperature = check_positive_float(temperature, "temperature")
    kernel, stride, padding, out_hw = _window_args(x, kernel_size, stride, padding)
    info = torch.finfo(x.dtype)
    if not info.tiny <= temperature <= info.max:
        raise ValueError(f"temperature={temperature!r} is out of range for {x.dtype} inputs: it must lie in "
                         f"[{info.tiny:.3g}, {info.max:.3g}], the dtype's normal range")
    n, c, h, w = x.shape
    pads = (padding[1], padding[1], padding[0], padding[0])
    windows = F.unfold(F.pad(x.reshape(n * c, 1, h, w), pads, value=-math.inf), kernel, stride=stride)
    inside = windows > -math.inf  # (N*C, kH*kW, L); padding is -inf, x is finite
    top = windows.amax(dim=1, keepdim=True)  # (N*C, 1, L): finite, every window holds an input position
    shrink = torch.expm1((windows - top) / temperature).masked_fill(~inside, 0.0)  # in [-1, 0]
    mean = shrink.sum(dim=1) / inside.sum(dim=1)  # (N*C, L), > -1: the maximum contributes 0
    pooled = top.squeeze(1) + temperature * torch.log1p(mean)
    if not bool(torch.isfinite(pooled).all()):  # x is finite: T * log(1/n) left the range
        raise ValueError(f"temperature={temperature!r} is out of range for {x.dtype} inputs: the pooled "
                         f"value overflows")
    return pooled.reshape(n, c, out_hw[0], out_hw[1])
