"""The reference ops: device-neutral, readable PyTorch that every backend's kernels must agree with.

They run on any device (the CPU and CUDA backends take the ops they have no kernel of their own for from here)
and, forced with ``kernels.use_backend("reference")``, on CPU tensors, where tests compare them with the CPU
kernels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .backend import Kernels, MatrixProducts

if TYPE_CHECKING:
    from ..experts import ExpertBank

def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x: (n, k), weight: (m, k). Returns x @ weight.T, (n, m)."""
    return F.linear(x, weight)


def expert_softmax(logits: torch.Tensor) -> torch.Tensor:
    """logits: (T, E). Returns the softmax over the experts, (T, E)."""
    return torch.softmax(logits, dim=-1)


def experts_grouped(bank: ExpertBank, rows: torch.Tensor, counts: list[int], first_expert: int,
                    weights: list[tuple] | None) -> torch.Tensor:
    """Each expert's segment of rows (A, d) through ``bank.apply_expert``, autograd throughout. Returns
    (A, d)."""
    weights = (weights or bank.per_expert_weights())[first_expert:first_expert + len(counts)]
    pieces = [bank.apply_expert(part, weights[e]) for e, part in enumerate(rows.split(counts))
              if part.shape[0]]
    return torch.cat(pieces) if pieces else rows.new_zeros(0, bank.d_model)


def experts_batched(bank: ExpertBank, slab: torch.Tensor, weights: tuple) -> torch.Tensor:
    """slab: (G, C, d), one expert per slab; weights: (w_in, w_out, b_in, b_out) of those G experts, biases
    None if absent. Two batched matmuls, autograd throughout. Returns (G, C, d)."""
    w_in, w_out, b_in, b_out = weights
    pre = torch.bmm(slab, w_in)  # (G, C, in_width)
    if b_in is not None:
        pre = pre + b_in.unsqueeze(1)
    out = torch.bmm(bank.activate(pre), w_out)  # (G, C, d)
    return out + b_out.unsqueeze(1) if b_out is not None else out


def _mm_out(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.mm(a, b, out=out)


TORCH_PRODUCTS = MatrixProducts(mm=torch.mm, mm_out=_mm_out)

KERNELS = Kernels(
    name="reference",
    products=TORCH_PRODUCTS,
    linear=linear,
    expert_softmax=expert_softmax,
    experts_grouped=experts_grouped,
    experts_batched=experts_batched,
    dispatch_sorted=None,
    dispatch_padded_no_grad=None,
    prepacks=lambda bank: False,
)
