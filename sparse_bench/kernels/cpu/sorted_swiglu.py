"""CPU "sorted" dispatch of bias-free SwiGLU experts with autograd: gather, experts and combine in one
Function.

Forward and backward both run chunk by chunk (``expert_blocks``): gather the chunk's tokens, the expert GEMMs
of its segments, and ``index_add_`` into y (backward: into the gradient of x); a serial loop on CPU, hence
deterministic. Every temporary is chunk-sized, so glibc recycles it instead of mapping (and page-faulting) a
fresh full-size buffer on every call, and saved tensors are per-chunk pieces for the same reason. Expert
weight gradients go straight into one buffer each (``WeightGradients``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..segments import expert_blocks
from ..swiglu import WeightGradients, swiglu_segments_backward, swiglu_segments_forward
from .onednn import ONEDNN_PRODUCTS

if TYPE_CHECKING:
    from ...experts import ExpertBank
    from ...routing.plan import RoutingPlan


class SortedSwiGLU(torch.autograd.Function):
    """``apply(x, weight, w_in, w_out, token_index, chunks)``: y[t] = sum over assignments a of token t of
    weight[a] * SwiGLU_e(a)(x[t]). x: (T, d); weight: (A,) combine weights in plan order; w_in (E, d, 2h),
    w_out (E, h, d); token_index: (A,) int64 in plan (expert) order; chunks: ``expert_blocks`` of the plan's
    counts. Saves each chunk's pre-activation and unweighted output; rows are gathered again in backward."""

    @staticmethod
    def forward(ctx, x, weight, w_in, w_out, token_index, chunks):
        y = x.new_zeros(x.shape)
        pres, outs = [], []
        for start, size, segments in chunks:
            tokens = token_index.narrow(0, start, size)
            rows = x.index_select(0, tokens)
            pre, out = swiglu_segments_forward(rows, segments, w_in, w_out, ONEDNN_PRODUCTS)
            y.index_add_(0, tokens, out * weight.narrow(0, start, size).unsqueeze(1))
            pres.append(pre)
            outs.append(out)
        ctx.chunks = chunks
        ctx.save_for_backward(x, weight, w_in, w_out, token_index, *pres, *outs)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, weight, w_in, w_out, token_index, *saved = ctx.saved_tensors
        pres, outs = saved[: len(ctx.chunks)], saved[len(ctx.chunks):]
        need_x, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(x) if need_x else None
        grad_weight = torch.empty_like(weight) if need_weight else None
        weight_grads = WeightGradients(w_in, w_out, ctx.needs_input_grad[2], ctx.needs_input_grad[3],
                                       ONEDNN_PRODUCTS)
        grad_y = grad_y.contiguous()
        for (start, size, segments), pre, out in zip(ctx.chunks, pres, outs):
            tokens = token_index.narrow(0, start, size)
            upstream = grad_y.index_select(0, tokens)  # (size, d): dL/dy of each assignment's token
            if need_weight:
                torch.sum(upstream * out, dim=1, out=grad_weight.narrow(0, start, size))
            grad_out = upstream.mul_(weight.narrow(0, start, size).unsqueeze(1))
            rows = x.index_select(0, tokens)
            grad_rows = swiglu_segments_backward(rows, pre, grad_out, segments, w_in, w_out, weight_grads,
                                                 need_x)
            if need_x:
                grad_x.index_add_(0, tokens, grad_rows)
        return grad_x, grad_weight, *weight_grads.finish(), None, None


def sorted_swiglu(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank, max_rows: int) -> torch.Tensor:
    """x: (T, d) on CPU; plan with A >= 1 assignments; bank: bias-free SwiGLU. Returns y (T, d),
    differentiable in x, the plan's weights and the bank's weights; chunks of at most max_rows rows."""
    chunks = expert_blocks(plan.expert_counts.tolist(), max_rows)
    return SortedSwiGLU.apply(x, plan.weight.to(x.dtype), bank.w_in, bank.w_out, plan.token_index, chunks)
