"""Fused bias-free SwiGLU expert kernels: autograd Functions with hand-written backwards that keep less than
autograd would (the pre-activation only; the activation is recomputed), and write each expert weight gradient
into one buffer. Device-neutral: each backend passes the ``MatrixProducts`` they run on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from . import reference
from .backend import MatrixProducts
from .segments import expert_segments

if TYPE_CHECKING:
    from ..experts import ExpertBank


def swiglu_in_place(pre: torch.Tensor) -> torch.Tensor:
    """pre: (..., 2h) = [gate, up], no autograd. Writes silu(gate) * up over the gate half and returns that
    (..., h) view (strided: rows 2h apart), so no new buffer is allocated."""
    gate, up = pre.split(pre.shape[-1] // 2, dim=-1)
    return F.silu(gate, inplace=True).mul_(up)


def swiglu_backward(pre: torch.Tensor, grad_act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pre: (..., 2h) = [gate, up]; grad_act: (..., h), the gradient of act = silu(gate) * up.
    Returns (grad_pre (..., 2h) = [d gate, d up], the recomputed act (..., h))."""
    gate, up = pre.split(pre.shape[-1] // 2, dim=-1)
    sig = torch.sigmoid(gate)
    silu = gate * sig
    grad_pre = torch.empty_like(pre)
    grad_gate, grad_up = grad_pre.split(gate.shape[-1], dim=-1)
    torch.mul(grad_act, silu, out=grad_up)
    torch.mul(grad_act, up, out=grad_gate)
    # silu'(g) = sigmoid(g) + silu(g) * (1 - sigmoid(g)): 3 passes (sigmoid(g) (1 + g (1 - sigmoid(g))): 5)
    grad_gate.mul_(torch.addcmul(sig, silu, torch.rsub(sig, 1)))
    return grad_pre, silu.mul_(up)


def segment_products(left: torch.Tensor, rights, segments: list[tuple[int, int, int]], width: int,
                     products: MatrixProducts) -> torch.Tensor:
    """(n, width): each segment of left (n, k) times its expert's rights[e] (rights: (E, k, width), any
    strides, or a list of E operands ``products`` takes), one ``products.mm_out`` per segment into one buffer
    (a cat of all products would hold two copies)."""
    if len(segments) == 1 and segments[0][2] == left.shape[0]:
        return products.mm(left, rights[segments[0][0]])
    out = left.new_empty(left.shape[0], width)
    for e, start, size in segments:
        products.mm_out(left.narrow(0, start, size), rights[e], out.narrow(0, start, size))
    return out


class WeightGradients:
    """Gradients of stacked expert weights w_in (E, d, 2h) and w_out (E, h, d), written in place segment by
    segment: one buffer each, where per-expert gradients stacked by autograd would hold a second copy.
    ``finish`` zeroes the experts no segment wrote."""

    def __init__(self, w_in: torch.Tensor, w_out: torch.Tensor, need_w_in: bool, need_w_out: bool,
                 products: MatrixProducts):
        self.grads = (w_in.new_empty(w_in.shape) if need_w_in else None,
                      w_out.new_empty(w_out.shape) if need_w_out else None)
        self.written = (set(), set())
        self.products = products

    def add(self, rows: torch.Tensor, grad_pre: torch.Tensor, act: torch.Tensor, grad_out: torch.Tensor,
            segments: list[tuple[int, int, int]]) -> None:
        """grad_w_in[e] (+)= rows[seg].T @ grad_pre[seg], grad_w_out[e] (+)= act[seg].T @ grad_out[seg]:
        written by an expert's first segment, accumulated by later ones (an expert cut across chunks)."""
        for grad, written, left, right in zip(self.grads, self.written, (rows, act), (grad_pre, grad_out)):
            if grad is None:
                continue
            for e, start, size in segments:
                left_t, right_seg = left.narrow(0, start, size).t(), right.narrow(0, start, size)
                if e in written:
                    grad[e].addmm_(left_t, right_seg)
                else:
                    self.products.mm_out(left_t, right_seg, grad[e])
                    written.add(e)

    def finish(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(grad w_in, grad w_out), None where not needed."""
        for grad, written in zip(self.grads, self.written):
            if grad is not None:
                for e in sorted(set(range(grad.shape[0])) - written):
                    grad[e].zero_()
        return self.grads


def swiglu_segments_forward(rows: torch.Tensor, segments: list, w_in, w_out,
                            products: MatrixProducts) -> tuple[torch.Tensor, torch.Tensor]:
    """rows: (n, d) in ``segments``; w_in (E, d, 2h), w_out (E, h, d), or lists of E per-expert operands
    ``products`` takes (packed weights). Returns (pre (n, 2h), out (n, d)); the (n, h) activation is a
    temporary."""
    h, d = w_out[0].shape
    pre = segment_products(rows, w_in, segments, 2 * h, products)
    act = F.silu(pre[:, :h]).mul_(pre[:, h:])
    return pre, segment_products(act, w_out, segments, d, products)


def swiglu_segments_backward(rows: torch.Tensor, pre: torch.Tensor, grad_out: torch.Tensor, segments: list,
                             w_in: torch.Tensor, w_out: torch.Tensor, weight_grads: WeightGradients,
                             need_rows: bool) -> torch.Tensor | None:
    """Backward of ``swiglu_segments_forward`` for upstream grad_out (n, d): adds into weight_grads, returns
    the (n, d) gradient of rows (None unless need_rows); the activation is recomputed from pre."""
    products = weight_grads.products
    grad_act = segment_products(grad_out, w_out.transpose(1, 2), segments, w_out.shape[1], products)  # (n, h)
    grad_pre, act = swiglu_backward(pre, grad_act)  # (n, 2h), (n, h)
    weight_grads.add(rows, grad_pre, act, grad_out, segments)
    if not need_rows:
        return None
    return segment_products(grad_pre, w_in.transpose(1, 2), segments, w_in.shape[1], products)


class SwiGLUGrouped(torch.autograd.Function):
    """Bias-free SwiGLU experts on expert-grouped rows: ``apply(rows, segments, w_in, w_out, products)``.

    rows: (A, d) in ``expert_segments(...)`` (each expert at most once); w_in (E, d, 2h) and w_out (E, h, d):
    the stacked parameters, whose gradients backward writes into one buffer each (``WeightGradients``);
    products: the backend's ``MatrixProducts``.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, segments: list, w_in: torch.Tensor, w_out: torch.Tensor,
                products: MatrixProducts) -> torch.Tensor:
        pre, out = swiglu_segments_forward(rows, segments, w_in, w_out, products)
        ctx.segments, ctx.products = segments, products
        ctx.save_for_backward(rows, pre, w_in, w_out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        rows, pre, w_in, w_out = ctx.saved_tensors
        weight_grads = WeightGradients(w_in, w_out, ctx.needs_input_grad[2], ctx.needs_input_grad[3],
                                       ctx.products)
        grad_rows = swiglu_segments_backward(rows, pre, grad_out.contiguous(), ctx.segments, w_in, w_out,
                                             weight_grads, ctx.needs_input_grad[0])
        return grad_rows, None, *weight_grads.finish(), None


class SwiGLUSlab(torch.autograd.Function):
    """Bias-free SwiGLU experts on an (E, C, d) slab: two batched matmuls, with a hand-written backward.

    Saves only the slab and the (E, C, 2h) pre-activation; the activation is recomputed in backward, and the
    gate and up gradients are written straight into one (E, C, 2h) buffer (no split/cat round trip).
    """

    @staticmethod
    def inference(slab: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
        """The forward without a graph: the activation overwrites the gate half of the pre-activation."""
        return torch.bmm(swiglu_in_place(torch.bmm(slab, w_in)), w_out)  # (E, C, d)

    @staticmethod
    def forward(ctx, slab: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
        d_hidden = w_out.shape[1]
        pre = torch.bmm(slab, w_in)  # (E, C, 2h)
        gate, up = pre.split(d_hidden, dim=-1)
        act = F.silu(gate).mul_(up)  # (E, C, h)
        ctx.save_for_backward(slab, w_in, w_out, pre)
        return torch.bmm(act, w_out)  # (E, C, d)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        slab, w_in, w_out, pre = ctx.saved_tensors
        grad_act = torch.bmm(grad_out, w_out.transpose(1, 2))  # (E, C, h)
        grad_pre, act = swiglu_backward(pre, grad_act)  # (E, C, 2h), (E, C, h)
        grad_w_out = torch.bmm(act.transpose(1, 2), grad_out) if ctx.needs_input_grad[2] else None
        grad_slab = torch.bmm(grad_pre, w_in.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_w_in = torch.bmm(slab.transpose(1, 2), grad_pre) if ctx.needs_input_grad[1] else None
        return grad_slab, grad_w_in, grad_w_out


def fused_applies(bank: ExpertBank) -> bool:
    """Whether the fused kernels compute this bank's experts: bias-free SwiGLU."""
    return bank.activation == "swiglu" and not bank.has_bias


def experts_grouped(bank: ExpertBank, rows: torch.Tensor, counts: list[int], first_expert: int,
                    weights: list[tuple] | None, products: MatrixProducts, packs=None) -> torch.Tensor:
    """``Kernels.experts_grouped`` on ``SwiGLUGrouped`` (each call's backward returns whole (E, ...) weight
    gradients, so a caller with autograd makes one call for all its rows), or, given packs (lists of the E
    experts' packed w_in and w_out operands, for a forward without autograd), straight on them; the reference
    for other experts and no rows."""
    if not fused_applies(bank) or not rows.shape[0]:
        return reference.experts_grouped(bank, rows, counts, first_expert, weights)
    segments = expert_segments(counts, first_expert)
    if packs is not None:
        return swiglu_segments_forward(rows, segments, packs[0], packs[1], products)[1]
    return SwiGLUGrouped.apply(rows, segments, bank.w_in, bank.w_out, products)


def experts_batched(bank: ExpertBank, slab: torch.Tensor, weights: tuple) -> torch.Tensor:
    """``Kernels.experts_batched`` on ``SwiGLUSlab`` (without a graph: ``SwiGLUSlab.inference``) for bias-free
    SwiGLU, the reference otherwise."""
    w_in, w_out, b_in, _ = weights
    if not fused_applies(bank) or b_in is not None:
        return reference.experts_batched(bank, slab, weights)
    if torch.is_grad_enabled():
        return SwiGLUSlab.apply(slab, w_in, w_out)
    return SwiGLUSlab.inference(slab, w_in, w_out)
