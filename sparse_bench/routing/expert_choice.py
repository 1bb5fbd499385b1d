"""Expert-choice routing (Zhou et al. 2022): each expert takes its top-C tokens by router probability."""

from __future__ import annotations

import torch

from ..gather import select_columns
from .base import (
    LearnedRouter,
    RouterCapabilities,
    capacity_from_factor,
    check_capacity_args,
    expert_softmax,
    switch_load_balancing_loss,
    z_loss,
)
from .plan import RoutingPlan, plan_from_sorted_assignments


class ExpertChoiceRouter(LearnedRouter):
    """Softmax over experts per token, then every expert picks its C highest-probability tokens.

    C = min(ceil(capacity_factor * T / E), T). A token may be picked by 0..E experts; every expert gets exactly
    C tokens, so the plan never drops (``dropped`` counts nothing) and its Switch loss is exactly 1.
    Combine weight = the token's router probability for that expert.
    """

    def __init__(
        self,
        d_model: int,
        num_experts: int,
        capacity_factor: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__(d_model, num_experts, generator=generator)
        if capacity_factor is None:
            raise ValueError("expert choice needs a capacity_factor (each expert picks C = ceil(cf T / E) "
                             "tokens)")
        check_capacity_args(capacity_factor, None)
        self.capacity_factor = float(capacity_factor)

    @property
    def capabilities(self) -> RouterCapabilities:
        return RouterCapabilities(learned=True, drops_tokens=False, assignments_per_token=None)

    def expert_capacity(self, num_tokens: int) -> int:
        """C for a batch of ``num_tokens`` tokens."""
        return min(capacity_from_factor(self.capacity_factor, num_tokens, self.num_experts), num_tokens)

    def plan_from_logits(self, logits: torch.Tensor) -> RoutingPlan:
        """logits: (T, E) float. Returns a plan with exactly E * C assignments."""
        self.check_logits(logits)
        T, E = logits.shape  # tokens, experts
        probs = expert_softmax(logits)  # (T, E)
        capacity = self.expert_capacity(T)
        with torch.no_grad():
            chosen = torch.topk(probs.t(), capacity, dim=1).indices  # (E, C) token ids per expert
            chosen = torch.sort(chosen, dim=1).values  # by token within an expert: the plan's order
            expert = torch.arange(E, device=logits.device).unsqueeze(1).expand(E, capacity)  # (E, C)
            expert_load = torch.full((E,), capacity, dtype=torch.int64, device=logits.device)
        weight = select_columns(probs.t(), chosen)  # (E, C), differentiable
        aux = {
            "load_balancing_loss": switch_load_balancing_loss(expert_load, probs),
            "z_loss": z_loss(logits),
            "expert_load": expert_load,
            "capacity": capacity,
        }
        return plan_from_sorted_assignments(chosen.reshape(-1), expert.reshape(-1), weight.reshape(-1), T, E,
                                            aux=aux, expert_counts=expert_load)
