"""ExpertBank: the stacked weights of E two-layer FFN experts and their grouped and batched forwards."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import gemm
from .validation import check_bool, check_int_in_range

ACTIVATIONS = ("relu", "gelu", "swiglu")


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
    # silu'(g) = sigmoid(g) + silu(g) * (1 - sigmoid(g)): 3 passes where sigmoid(g) * (1 + g * (1 - sigmoid(g)))
    # took 5; the whole function 1.08-1.12x faster at (512-1024, 2h) with h = 256 and 1024 (2 threads, 2026-11-25),
    # with the same error against float64 autograd
    grad_gate.mul_(torch.addcmul(sig, silu, torch.rsub(sig, 1)))
    return grad_pre, silu.mul_(up)


def expert_segments(counts: list[int], first_expert: int = 0) -> list[tuple[int, int, int]]:
    """(expert, first row, rows) of every non-empty segment of ``counts`` rows (experts first_expert, ...)."""
    segments, start = [], 0
    for e, n in enumerate(counts):
        if n:
            segments.append((first_expert + e, start, n))
        start += n
    return segments


def expert_chunks(counts: list[int], max_rows: int) -> list[tuple[int, int, list[int]]]:
    """Cut expert-sorted rows into chunks of at most ``max_rows`` rows, along expert boundaries where possible.

    counts: rows per expert. Returns (first expert, first row, rows per expert from the first expert) per chunk:
    consecutive small experts share a chunk; an expert with more than max_rows rows is cut into blocks.
    """
    chunks, row, first, group = [], 0, 0, []
    for expert, n in enumerate(counts):
        if group and sum(group) + n > max_rows:
            chunks.append((first, row, group))
            row, group = row + sum(group), []
        if not group:
            first = expert
        if n > max_rows:  # its own blocks; the last, partial block stays open for the next experts
            for _ in range(n // max_rows):
                chunks.append((expert, row, [max_rows]))
                row += max_rows
            n %= max_rows
            if not n:
                continue
        group.append(n)
    if group:
        chunks.append((first, row, group))
    return chunks


def expert_blocks(counts: list[int], max_rows: int) -> list[tuple[int, int, list]]:
    """(first row, rows, segments) of each ``expert_chunks`` block of at most max_rows rows; segments:
    (expert, first row within the block, rows), non-empty only."""
    return [(start, sum(group), expert_segments(group, first))
            for first, start, group in expert_chunks(counts, max_rows)]


def _segment_products(left: torch.Tensor, rights: torch.Tensor, segments: list[tuple[int, int, int]],
                      width: int) -> torch.Tensor:
    """(n, width): each segment of left (n, k) times its expert's rights[e] (rights: (E, k, width), any strides,
    or a list of E ``gemm.PackedOperand``), one ``gemm.mm_out`` per segment into one buffer (a cat of all
    products would hold two copies)."""
    if len(segments) == 1 and segments[0][2] == left.shape[0]:
        return gemm.mm(left, rights[segments[0][0]])
    out = left.new_empty(left.shape[0], width)
    for e, start, size in segments:
        gemm.mm_out(left.narrow(0, start, size), rights[e], out.narrow(0, start, size))
    return out


class WeightGradients:
    """Gradients of stacked expert weights w_in (E, d, 2h) and w_out (E, h, d), written in place segment by
    segment: one buffer each, where per-expert gradients stacked by autograd held a second copy (fwd+bwd peak
    1.54-1.60x the budget at E=64, T=512, h=1024). ``finish`` zeroes the experts no segment wrote."""

    def __init__(self, w_in: torch.Tensor, w_out: torch.Tensor, need_w_in: bool, need_w_out: bool):
        self.grads = (w_in.new_empty(w_in.shape) if need_w_in else None,
                      w_out.new_empty(w_out.shape) if need_w_out else None)
        self.written = (set(), set())

    def add(self, rows: torch.Tensor, grad_pre: torch.Tensor, act: torch.Tensor, grad_out: torch.Tensor,
            segments: list[tuple[int, int, int]]) -> None:
        """grad_w_in[e] (+)= rows[seg].T @ grad_pre[seg], grad_w_out[e] (+)= act[seg].T @ grad_out[seg]: written by
        an expert's first segment, accumulated by later ones (an expert cut across chunks)."""
        for grad, written, left, right in zip(self.grads, self.written, (rows, act), (grad_pre, grad_out)):
            if grad is None:
                continue
            for e, start, size in segments:
                left_t, right_seg = left.narrow(0, start, size).t(), right.narrow(0, start, size)
                if e in written:
                    grad[e].addmm_(left_t, right_seg)
                else:
                    gemm.mm_out(left_t, right_seg, grad[e])
                    written.add(e)

    def finish(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(grad w_in, grad w_out), None where not needed."""
        for grad, written in zip(self.grads, self.written):
            if grad is not None:
                for e in sorted(set(range(grad.shape[0])) - written):
                    grad[e].zero_()
        return self.grads


def swiglu_segments_forward(rows: torch.Tensor, segments: list, w_in, w_out) -> tuple[torch.Tensor, torch.Tensor]:
    """rows: (n, d) in ``segments``; w_in (E, d, 2h), w_out (E, h, d), or ``PackedExperts`` lists of E per-expert
    operands. Returns (pre (n, 2h), out (n, d)); the (n, h) activation is a temporary."""
    h, d = w_out[0].shape
    pre = _segment_products(rows, w_in, segments, 2 * h)
    act = F.silu(pre[:, :h]).mul_(pre[:, h:])
    return pre, _segment_products(act, w_out, segments, d)


def swiglu_segments_backward(rows: torch.Tensor, pre: torch.Tensor, grad_out: torch.Tensor, segments: list,
                             w_in: torch.Tensor, w_out: torch.Tensor, weight_grads: WeightGradients,
                             need_rows: bool) -> torch.Tensor | None:
    """Backward of ``swiglu_segments_forward`` for upstream grad_out (n, d): adds into weight_grads, returns the
    (n, d) gradient of rows (None unless need_rows); the activation is recomputed from pre."""
    grad_act = _segment_products(grad_out, w_out.transpose(1, 2), segments, w_out.shape[1])  # (n, h)
    grad_pre, act = swiglu_backward(pre, grad_act)  # (n, 2h), (n, h)
    weight_grads.add(rows, grad_pre, act, grad_out, segments)
    return _segment_products(grad_pre, w_in.transpose(1, 2), segments, w_in.shape[1]) if need_rows else None


class PackedExperts:
    """Per-expert ``gemm.PackedOperand`` copies of stacked weights w_in (E, d, 2h) and w_out (E, h, d), with the
    stamp (storage, version counter, shape) of the weights they were packed from."""

    def __init__(self, w_in: torch.Tensor, w_out: torch.Tensor):
        self.stamp = weights_stamp(w_in, w_out)
        self.w_in = [gemm.PackedOperand(w) for w in w_in.detach().unbind(0)]
        self.w_out = [gemm.PackedOperand(w) for w in w_out.detach().unbind(0)]

    def __reduce__(self):
        """Copies and pickles of a bank leave the packs out (oneDNN's opaque tensors have no storage to copy); the
        copy packs its own weights on first use."""
        return type(None), ()


def weights_stamp(*weights: torch.Tensor) -> tuple:
    """What changes when a weight is replaced, moved or updated in place (an optimizer step bumps the version
    counter; an edit through ``.data`` does not, and goes unseen)."""
    return tuple((w.data_ptr(), w._version, tuple(w.shape), w.dtype, w.device) for w in weights)


class _SwiGLUGrouped(torch.autograd.Function):
    """Bias-free SwiGLU experts on expert-grouped rows: ``apply(rows, segments, w_in, w_out)``.

    rows: (A, d) in ``expert_segments(...)`` (each expert at most once); w_in (E, d, 2h) and w_out (E, h, d):
    the stacked parameters, whose gradients backward writes into one buffer each (``WeightGradients``).
    Products go through ``gemm.mm`` (oneDNN for row-major left operands on CPU, which beats MKL by 1.1-1.4x on
    few-row products even after copying each into its buffer); backward is written by hand.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, segments: list, w_in: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
        pre, out = swiglu_segments_forward(rows, segments, w_in, w_out)
        ctx.segments = segments
        ctx.save_for_backward(rows, pre, w_in, w_out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        rows, pre, w_in, w_out = ctx.saved_tensors
        weight_grads = WeightGradients(w_in, w_out, ctx.needs_input_grad[2], ctx.needs_input_grad[3])
        grad_rows = swiglu_segments_backward(rows, pre, grad_out.contiguous(), ctx.segments, w_in, w_out,
                                             weight_grads, ctx.needs_input_grad[0])
        return grad_rows, None, *weight_grads.finish()


class _SwiGLUSlab(torch.autograd.Function):
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


class ExpertBank(nn.Module):
    """E experts ``y = act(x @ w_in[e] + b_in[e]) @ w_out[e] + b_out[e]``.

    w_in: (E, d_model, d_hidden), or (E, d_model, 2 * d_hidden) for swiglu, whose first half is the gate and
    second half the up projection: ``silu(x @ gate) * (x @ up)``; w_out: (E, d_hidden, d_model).
    gelu is the exact (erf) GELU. Weights are drawn from ``generator`` (seed 0 when None) as
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), like nn.Linear.
    """

    def __init__(
        self,
        num_experts: int,
        d_model: int,
        d_hidden: int,
        activation: str = "relu",
        bias: bool = False,
        generator: torch.Generator | None = None,
        prepack: bool = False,
    ):
        super().__init__()
        self.num_experts = check_int_in_range(num_experts, "num_experts", 1)
        self.d_model = check_int_in_range(d_model, "d_model", 1)
        self.d_hidden = check_int_in_range(d_hidden, "d_hidden", 1)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        check_bool(bias, "bias")
        check_bool(prepack, "prepack")
        self.activation = activation
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        in_width = 2 * d_hidden if activation == "swiglu" else d_hidden

        def uniform(shape, fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.rand(shape, generator=gen).mul_(2 * bound).sub_(bound))

        self.w_in = uniform((num_experts, d_model, in_width), d_model)
        self.w_out = uniform((num_experts, d_hidden, d_model), d_hidden)
        self.b_in = uniform((num_experts, in_width), d_model) if bias else None
        self.b_out = uniform((num_experts, d_model), d_hidden) if bias else None
        self.prepack = prepack
        self._packs: PackedExperts | None = None

    def packed_weights(self) -> PackedExperts | None:
        """oneDNN-prepacked copies of the weights, for bias-free SwiGLU forwards without autograd on CPU fp32, when
        ``prepack`` is set (opt-in: the copies take as much memory as the weights); None otherwise.

        Used by ``forward_grouped`` (the "sorted" strategy, which "auto" always picks on packed weights). Packed
        on first use and again whenever the weights were replaced, moved or updated in place since (see
        ``weights_stamp``). Few-row expert products are memory-bound on the weights, and unpacked oneDNN reorders
        each weight on every product: E=64 T=512 forwards (8-64 rows per expert) ran 1.1-1.7x faster packed
        (the full ratio table's "prepacked" peer; 1.03-1.68x over the whole grid).
        """
        if not self.prepack_applies():
            self._packs = None
            return None
        if torch.is_grad_enabled():
            return None
        if self._packs is None or self._packs.stamp != weights_stamp(self.w_in, self.w_out):
            self._packs = None  # free the stale copies before packing the new ones
            self._packs = PackedExperts(self.w_in, self.w_out)
        return self._packs

    def prepack_applies(self) -> bool:
        """Whether forwards without autograd run on prepacked weights: ``prepack`` set, bias-free SwiGLU, CPU fp32."""
        return self.prepack and self.activation == "swiglu" and not self.has_bias and (
            gemm.packing_available(self.w_in))

    def sharing_weights(self, prepack: bool) -> "ExpertBank":
        """A bank holding these same Parameter objects (no copy) with its own ``prepack`` setting and packs."""
        twin = copy.copy(self)
        twin.prepack, twin._packs = prepack, None
        return twin

    @property
    def has_bias(self) -> bool:
        return self.b_in is not None

    def check_input(self, x: torch.Tensor, name: str = "expert input") -> None:
        """Raise a clear error, naming ``name``, when x's last dim or dtype does not match the experts."""
        if x.shape[-1] != self.d_model:
            raise ValueError(f"{name} has d_model={x.shape[-1]}, experts expect {self.d_model}")
        if x.dtype != self.w_in.dtype:
            raise TypeError(f"{name} is {x.dtype} but expert weights are {self.w_in.dtype}; cast one of them")

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """pre: (..., in_width) pre-activations. Returns (..., d_hidden)."""
        if self.activation == "relu":
            return F.relu(pre)
        if self.activation == "gelu":
            return F.gelu(pre)
        gate, up = pre.split(self.d_hidden, dim=-1)
        return F.silu(gate) * up

    def expert_forward(self, expert: int, rows: torch.Tensor) -> torch.Tensor:
        """rows: (n, d_model) for one expert. Returns (n, d_model). For one call; loops over experts should
        take ``per_expert_weights()`` once instead (see ``forward_grouped``)."""
        biases = (self.b_in[expert], self.b_out[expert]) if self.has_bias else (None, None)
        return self.apply_expert(rows, (self.w_in[expert], self.w_out[expert], *biases))

    def per_expert_weights(self) -> list[tuple]:
        """E tuples (w_in, w_out, b_in, b_out) from one unbind per stacked parameter (biases None if absent).

        Backward then stacks the E weight gradients in one op; indexing ``w_in[e]`` per expert instead builds a
        full (E, d, in_width) zero gradient per expert (E^2 work).
        """
        w_in, w_out = self.w_in.unbind(0), self.w_out.unbind(0)
        if self.has_bias:
            return list(zip(w_in, w_out, self.b_in.unbind(0), self.b_out.unbind(0)))
        return [(wi, wo, None, None) for wi, wo in zip(w_in, w_out)]

    def apply_expert(self, rows: torch.Tensor, weights: tuple) -> torch.Tensor:
        """rows: (n, d_model); weights: one expert's (w_in (d, in_width), w_out (h, d), b_in, b_out or None).
        Returns (n, d_model)."""
        w_in, w_out, b_in, b_out = weights
        pre = rows @ w_in  # (n, in_width)
        if b_in is not None:
            pre = pre + b_in
        out = self.activate(pre) @ w_out  # (n, d_model)
        return out + b_out if b_out is not None else out

    def forward_grouped(self, x_sorted: torch.Tensor, expert_counts, first_expert: int = 0,
                        weights: list[tuple] | None = None) -> torch.Tensor:
        """x_sorted: (A, d_model) rows grouped by expert; expert_counts: rows of experts first_expert,
        first_expert + 1, ... (a (n,) tensor or a list of ints). Returns (A, d_model).

        SwiGLU without bias (``_SwiGLUGrouped``): each call's backward returns whole (E, ...) weight gradients,
        so a caller with autograd makes one call for all its rows. Otherwise per-expert products; weights:
        ``per_expert_weights()`` from a caller that runs several chunks (one unbind for all: each unbind's
        backward stacks a full (E, ...) gradient)."""
        self.check_input(x_sorted)
        counts = expert_counts.tolist() if isinstance(expert_counts, torch.Tensor) else list(expert_counts)
        if sum(counts) != x_sorted.shape[0]:
            raise ValueError(f"expert_counts sums to {sum(counts)} but x_sorted has {x_sorted.shape[0]} rows")
        if not 0 <= first_expert <= self.num_experts - len(counts):
            raise ValueError(f"{len(counts)} counts from expert {first_expert} exceed {self.num_experts} experts")
        if self.activation == "swiglu" and not self.has_bias and x_sorted.shape[0]:
            segments, packs = expert_segments(counts, first_expert), self.packed_weights()
            if packs is not None:
                return swiglu_segments_forward(x_sorted, segments, packs.w_in, packs.w_out)[1]
            return _SwiGLUGrouped.apply(x_sorted, segments, self.w_in, self.w_out)
        weights = (weights or self.per_expert_weights())[first_expert:first_expert + len(counts)]
        pieces = [self.apply_expert(rows, weights[e]) for e, rows in enumerate(x_sorted.split(counts))
                  if rows.shape[0]]
        return torch.cat(pieces) if pieces else x_sorted.new_zeros(0, self.d_model)

    def forward_grouped_mm(self, x_sorted: torch.Tensor, expert_counts: torch.Tensor) -> torch.Tensor:
        """x_sorted: (A, d_model) rows grouped by expert, expert_counts: (E,) rows of each expert. Returns
        (A, d_model), differentiable: each projection is one ``gemm.grouped_mm`` over all experts (PyTorch's
        grouped GEMM), biases added per row."""
        self.check_input(x_sorted)
        if expert_counts.shape != (self.num_experts,) or int(expert_counts.sum()) != x_sorted.shape[0]:
            raise ValueError(f"expert_counts must be ({self.num_experts},) summing to {x_sorted.shape[0]} "
                             f"rows, got shape {tuple(expert_counts.shape)} summing to "
                             f"{int(expert_counts.sum())}")
        counts = expert_counts.to(x_sorted.device)
        pre = gemm.grouped_mm(x_sorted, self.w_in, counts)  # (A, in_width)
        if self.has_bias:
            pre = pre + self.b_in.repeat_interleave(counts, dim=0, output_size=x_sorted.shape[0])
        out = gemm.grouped_mm(self.activate(pre), self.w_out, counts)  # (A, d_model)
        if self.has_bias:
            out = out + self.b_out.repeat_interleave(counts, dim=0, output_size=x_sorted.shape[0])
        return out

    def weight_groups(self, group_size: int) -> list[tuple]:
        """Stacked weights of consecutive groups of ``group_size`` experts (the last may be smaller): tuples
        (w_in (G, d, in_width), w_out (G, h, d), b_in (G, in_width) or None, b_out (G, d) or None), views from
        one split per parameter."""
        w_in, w_out = self.w_in.split(group_size), self.w_out.split(group_size)
        if self.has_bias:
            return list(zip(w_in, w_out, self.b_in.split(group_size), self.b_out.split(group_size)))
        return [(wi, wo, None, None) for wi, wo in zip(w_in, w_out)]

    def forward_batched(self, x_padded: torch.Tensor, weights: tuple | None = None) -> torch.Tensor:
        """x_padded: (E, C, d_model), one capacity-padded slab per expert; weights: one entry of
        ``weight_groups`` when the slab holds only that group's G experts (E = G). Returns (E, C, d_model)."""
        self.check_input(x_padded)
        w_in, w_out, b_in, b_out = weights if weights is not None else (self.w_in, self.w_out, self.b_in, self.b_out)
        if x_padded.shape[0] != w_in.shape[0]:
            raise ValueError(f"the slab holds {x_padded.shape[0]} experts but the weights {w_in.shape[0]}")
        if self.activation == "swiglu" and b_in is None:
            if torch.is_grad_enabled():
                return _SwiGLUSlab.apply(x_padded, w_in, w_out)
            return _SwiGLUSlab.inference(x_padded, w_in, w_out)
        pre = torch.bmm(x_padded, w_in)  # (E, C, in_width)
        if b_in is not None:
            pre = pre + b_in.unsqueeze(1)
        out = torch.bmm(self.activate(pre), w_out)  # (E, C, d_model)
        return out + b_out.unsqueeze(1) if b_out is not None else out
