"""ExpertBank: the stacked weights of E two-layer FFN experts, the expert function, and its forwards on the
layouts the dispatch strategies use: expert-grouped rows and per-expert slabs. Each forward checks its input
and runs the op of ``kernels`` (the backend of the input's device)."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from .validation import check_bool, check_int_in_range

ACTIVATIONS = ("relu", "gelu", "swiglu")


class ExpertBank(nn.Module):
    """E experts ``y = act(x @ w_in[e] + b_in[e]) @ w_out[e] + b_out[e]``.

    w_in: (E, d_model, d_hidden), or (E, d_model, 2 * d_hidden) for swiglu, whose first half is the gate and
    second half the up projection: ``silu(x @ gate) * (x @ up)``; w_out: (E, d_hidden, d_model).
    gelu is the exact (erf) GELU. Weights are drawn from ``generator`` (seed 0 when None) as
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), like nn.Linear. prepack: let the device's kernels keep prepacked
    copies of the weights for forwards without autograd, where they have them (CPU fp32 bias-free SwiGLU on
    oneDNN); opt-in, since the copies take as much memory as the weights.
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

    def prepack_applies(self) -> bool:
        """Whether forwards without autograd run on prepacked weights (``prepack`` set, and the kernels of the
        weights' device prepack this bank)."""
        return kernels.prepacks(self)

    def sharing_weights(self, prepack: bool) -> "ExpertBank":
        """A bank holding these same Parameter objects (no copy), with its own ``prepack`` and packs."""
        twin = copy.copy(self)
        twin.prepack = prepack
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
        first_expert + 1, ... (a (n,) tensor or a list of ints). Returns (A, d_model), differentiable.

        ``kernels.experts_grouped``: bias-free SwiGLU runs fused on the CPU and CUDA backends, and each call's
        backward returns whole (E, ...) weight gradients, so a caller with autograd makes one call for all its
        rows; otherwise per-expert products. weights: ``per_expert_weights()`` from a caller that runs several
        chunks (one unbind for all: each unbind's backward stacks a full (E, ...) gradient)."""
        self.check_input(x_sorted)
        counts = expert_counts.tolist() if isinstance(expert_counts, torch.Tensor) else list(expert_counts)
        if sum(counts) != x_sorted.shape[0]:
            raise ValueError(f"expert_counts sums to {sum(counts)} but x_sorted has {x_sorted.shape[0]} rows")
        if not 0 <= first_expert <= self.num_experts - len(counts):
            raise ValueError(f"{len(counts)} counts from expert {first_expert} exceed {self.num_experts} experts")
        return kernels.experts_grouped(self, x_sorted, counts, first_expert, weights)

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
        ``weight_groups`` when the slab holds only that group's G experts (E = G). Returns (E, C, d_model),
        differentiable (``kernels.experts_batched``: two batched matmuls, bias-free SwiGLU fused)."""
        self.check_input(x_padded)
        weights = weights if weights is not None else (self.w_in, self.w_out, self.b_in, self.b_out)
        if x_padded.shape[0] != weights[0].shape[0]:
            raise ValueError(f"the slab holds {x_padded.shape[0]} experts but the weights "
                             f"{weights[0].shape[0]}")
        return kernels.experts_batched(self, x_padded, weights)
