"""Dispatch strategies: move tokens to experts and back. Every one is ``(x, plan, bank) -> y``.

x: (T, d_model); plan: a RoutingPlan over those T tokens; bank: an ExpertBank. Returns y: (T, d_model) with
``y[t] = sum over assignments a of token t of weight[a] * expert_{expert_index[a]}(x[t])`` (0 for a token with no
assignment). All strategies compute the same function; they differ in speed and memory only.
"""

from __future__ import annotations

from typing import Callable

import torch

from .experts import ExpertBank
from .routing.plan import RoutingPlan


def check_plan_matches(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> None:
    """Raise ValueError when the plan does not describe x and bank."""
    if plan.num_tokens != x.shape[0]:
        raise ValueError(f"plan routes {plan.num_tokens} tokens but x has {x.shape[0]}")
    if plan.num_experts != bank.num_experts:
        raise ValueError(f"plan routes to {plan.num_experts} experts but the bank holds {bank.num_experts}")
    bank.check_input(x)


def combine_by_token(rows: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
    """Sum weighted expert outputs per token without atomics (same bits on every run, CPU and CUDA).

    rows: (A, d_model), already multiplied by their weights, in plan order. Returns (T, d_model). Each row is
    written to its own (token, slot) cell of a (T, K, d_model) buffer, K = most assignments of any token, which
    is then summed over slots in a fixed order.
    """
    T, A = plan.num_tokens, plan.num_assignments
    if A == 0:
        return rows.new_zeros(T, rows.shape[1])
    with torch.no_grad():
        by_token = torch.argsort(plan.token_index, stable=True)  # (A,)
        token_sorted = plan.token_index[by_token]
        counts = torch.bincount(plan.token_index, minlength=T)
        starts = counts.cumsum(0) - counts
        slot = torch.arange(A, device=rows.device) - starts[token_sorted]  # (A,)
        width = int(counts.max())
    buffer = rows.new_zeros(T, width, rows.shape[1])  # (T, K, d_model)
    buffer = buffer.index_put((token_sorted, slot), rows[by_token])
    return buffer.sum(dim=1)


def weighted(rows: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
    """rows: (A, d_model) expert outputs in plan order, scaled by the plan's combine weights."""
    return rows * plan.weight.to(rows.dtype).unsqueeze(1)


def dispatch_loop(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """The simple reference: one boolean mask per expert, gather, expert FFN, index_add into y."""
    check_plan_matches(x, plan, bank)
    y = x.new_zeros(x.shape)
    for expert in range(bank.num_experts):
        mask = plan.expert_index == expert  # (A,)
        if not bool(mask.any()):
            continue
        tokens = plan.token_index[mask]
        out = bank.expert_forward(expert, x[tokens]) * plan.weight[mask].to(x.dtype).unsqueeze(1)
        y = y.index_add(0, tokens, out)
    return y


def dispatch_einsum(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """GShard-style: one-hot (T, E, C) dispatch and combine tensors, einsum in and out of (E, C, d) slabs."""
    check_plan_matches(x, plan, bank)
    if plan.num_assignments == 0:
        return x.new_zeros(x.shape)
    T, E = plan.num_tokens, plan.num_experts
    capacity = int(plan.expert_counts.max())
    slot = plan.tokens_per_assignment_slot  # (A,)
    index = (plan.token_index, plan.expert_index, slot)
    dispatch = x.new_zeros(T, E, capacity).index_put(index, x.new_ones(plan.num_assignments))  # (T, E, C)
    combine = x.new_zeros(T, E, capacity).index_put(index, plan.weight.to(x.dtype))  # (T, E, C)
    expert_in = torch.einsum("tec,td->ecd", dispatch, x)  # (E, C, d)
    expert_out = bank.forward_batched(expert_in)  # (E, C, d)
    return torch.einsum("tec,ecd->td", combine, expert_out)


def dispatch_sorted(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Gather rows in expert order, one GEMM pair per expert segment, weighted segment-sum combine."""
    check_plan_matches(x, plan, bank)
    rows = bank.forward_grouped(x[plan.token_index], plan.expert_counts)  # (A, d)
    return combine_by_token(weighted(rows, plan), plan)


def dispatch_padded(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Scatter rows into a (E, C_max, d) zero-padded slab, two batched matmuls, gather back, combine.

    C_max is the largest realised expert count, so no assignment is ever dropped by padding.
    """
    check_plan_matches(x, plan, bank)
    if plan.num_assignments == 0:
        return x.new_zeros(x.shape)
    capacity = int(plan.expert_counts.max())
    slot = plan.tokens_per_assignment_slot  # (A,)
    slab = x.new_zeros(bank.num_experts, capacity, x.shape[1])  # (E, C, d)
    slab = slab.index_put((plan.expert_index, slot), x[plan.token_index])
    out = bank.forward_batched(slab)[plan.expert_index, slot]  # (A, d)
    return combine_by_token(weighted(out, plan), plan)


DISPATCHERS: dict[str, Callable[[torch.Tensor, RoutingPlan, ExpertBank], torch.Tensor]] = {
    "loop": dispatch_loop,
    "einsum": dispatch_einsum,
    "sorted": dispatch_sorted,
    "padded": dispatch_padded,
}


def get_dispatcher(name: str) -> Callable[[torch.Tensor, RoutingPlan, ExpertBank], torch.Tensor]:
    """The dispatch function registered under ``name``."""
    if name not in DISPATCHERS:
        raise ValueError(f"dispatch must be one of {sorted(DISPATCHERS)}, got {name!r}")
    return DISPATCHERS[name]
