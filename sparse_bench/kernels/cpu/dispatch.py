"""CPU bodies of the "sorted" and "padded" dispatch strategies: the experts in chunks whose temporaries glibc's
heap recycles, each chunk's outputs added into y with ``index_add_`` (a serial loop on CPU, hence
deterministic). Both take a compacted plan (no dropped tail) with at least one assignment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..segments import expert_chunks
from .sorted_swiglu import sorted_swiglu

if TYPE_CHECKING:
    from ...experts import ExpertBank
    from ...routing.plan import RoutingPlan

# Chunks of at most SORTED_CHUNK_ROWS rows (the floor's block), fewer where a row's widest temporary would push
# a chunk past SORTED_CHUNK_BYTES (docs/performance-notes.md, "sorted" chunks).
SORTED_CHUNK_ROWS = 1024
SORTED_CHUNK_BYTES = 16 * 2**20
PADDED_MIN_GROUPS = 4  # "padded" cuts the experts into at least this many slabs (peak memory)


def _widest_row_bytes(x: torch.Tensor, bank: ExpertBank) -> int:
    """Bytes of the widest temporary per row: the model width or the experts' input-projection width."""
    return max(x.shape[1], bank.w_in.shape[2]) * x.element_size()


def dispatch_sorted(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Rows in expert order, chunk by chunk (``expert_chunks``), with or without autograd; bias-free SwiGLU
    with autograd runs the same chunks inside one Function (``sorted_swiglu``). x: (T, d). Returns (T, d)."""
    max_rows = max(1, min(SORTED_CHUNK_ROWS, SORTED_CHUNK_BYTES // _widest_row_bytes(x, bank)))
    if torch.is_grad_enabled() and bank.activation == "swiglu" and not bank.has_bias:
        return sorted_swiglu(x, plan, bank, max_rows)
    weight = plan.weight.to(x.dtype).unsqueeze(1)  # (A, 1)
    y = x.new_zeros(x.shape)
    experts = bank.per_expert_weights()
    for first, start, counts in expert_chunks(plan.expert_counts.tolist(), max_rows):
        stop = start + sum(counts)
        tokens = plan.token_index[start:stop]
        out = bank.forward_grouped(x.index_select(0, tokens), counts, first, experts)  # (rows, d)
        scaled = out * weight[start:stop] if torch.is_grad_enabled() else out.mul_(weight[start:stop])
        y.index_add_(0, tokens, scaled)
    return y


def dispatch_padded_no_grad(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """"padded" without autograd: (G, C, d) slabs of G experts each, C the largest expert count.

    At least PADDED_MIN_GROUPS slabs, each under SORTED_CHUNK_BYTES: one slab for all experts held the padded
    input, pre-activation and output of every slot at once, 1.4-2.0x the layer's activation budget at E=64,
    T=512. Pad slots read token T - 1 (no copy of x): their outputs are never combined. x: (T, d). Returns
    (T, d).
    """
    T, d = x.shape
    capacity = int(plan.expert_counts.max())
    slab_row = plan.expert_index * capacity + plan.slot_in_expert  # (A,) row of each assignment in the slabs
    source = torch.full((bank.num_experts * capacity,), T - 1, dtype=torch.int64, device=x.device)
    source[slab_row] = plan.token_index  # (E * C,) token read by each slab row
    group = -(-bank.num_experts // PADDED_MIN_GROUPS)  # experts per slab
    group = max(1, min(group, SORTED_CHUNK_BYTES // (capacity * _widest_row_bytes(x, bank))))
    ends = plan.expert_counts.cumsum(0).tolist()  # assignments are in expert order
    weight = plan.weight.to(x.dtype).unsqueeze(1)  # (A, 1)
    y = x.new_zeros(T, d)
    for first, weights in zip(range(0, bank.num_experts, group), bank.weight_groups(group)):
        last = first + weights[0].shape[0]  # experts [first, last)
        start, stop = ends[first - 1] if first else 0, ends[last - 1]
        if start == stop:
            continue
        slab = x.index_select(0, source[first * capacity:last * capacity]).view(-1, capacity, d)
        out = bank.forward_batched(slab, weights).view(-1, d)  # (G * C, d)
        rows = out.index_select(0, slab_row[start:stop] - first * capacity)  # (assignments of the group, d)
        y.index_add_(0, plan.token_index[start:stop], rows.mul_(weight[start:stop]))  # no autograd: in place
    return y
