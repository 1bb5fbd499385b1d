"""Token-choice top-k routing: Switch (k=1, raw probability) and Mixtral (k=2, renormalised), with capacity."""

from __future__ import annotations

import torch

from ..gather import inverse_permutation, select_columns, take
from ..validation import check_bool, check_int_in_range
from .base import (
    LearnedRouter,
    RouterCapabilities,
    capacity_from_factor,
    check_capacity_args,
    expert_softmax,
    switch_load_balancing_loss,
    z_loss,
)
from .plan import RoutingPlan, group_offsets, plan_from_token_choices

DROP_POLICIES = ("position", "probability")


class TopKRouter(LearnedRouter):
    """Softmax over experts, top-k per token, optional renormalisation over the k kept, optional capacity.

    k=1, normalize=False is Switch (the raw probability is the combine weight); k=2, normalize=True is Mixtral.
    Capacity (docs/DESIGN.md §4): C = ceil(capacity_factor * T * k / E), or an absolute ``capacity`` per
    expert.
    ``drop_policy="position"``: first choices outrank second choices, then the earlier token wins.
    ``drop_policy="probability"``: first choices outrank second choices, then the higher probability wins
    (batch-prioritised routing); ties go to the earlier token. capacity_factor=None and capacity=None: dropless.
    """

    def __init__(
        self,
        d_model: int,
        num_experts: int,
        k: int = 1,
        normalize: bool = False,
        capacity_factor: float | None = None,
        drop_policy: str = "position",
        jitter: float = 0.0,
        generator: torch.Generator | None = None,
        capacity: int | None = None,
    ):
        super().__init__(d_model, num_experts, jitter=jitter, generator=generator)
        self.k = check_int_in_range(k, "k", 1, num_experts)
        check_capacity_args(capacity_factor, capacity)
        if drop_policy not in DROP_POLICIES:
            raise ValueError(f"drop_policy must be one of {DROP_POLICIES}, got {drop_policy!r}")
        self.normalize = check_bool(normalize, "normalize")
        self.capacity_factor = capacity_factor
        self.capacity = capacity
        self.drop_policy = drop_policy

    @property
    def capabilities(self) -> RouterCapabilities:
        drops = self.capacity_factor is not None or self.capacity is not None
        return RouterCapabilities(learned=True, drops_tokens=drops, assignments_per_token=self.k)

    def expert_capacity(self, num_tokens: int) -> int | None:
        """Per-expert capacity for a batch of ``num_tokens`` tokens (None: dropless)."""
        if self.capacity is not None:
            return self.capacity
        if self.capacity_factor is None:
            return None
        return capacity_from_factor(self.capacity_factor, num_tokens * self.k, self.num_experts)

    def plan_from_logits(self, logits: torch.Tensor) -> RoutingPlan:
        """logits: (T, E) float. Returns a plan with up to T*k assignments (on the device path with capacity:
        all T*k, the dropped ones as a tail of weight 0; see ``plan_from_token_choices``)."""
        self.check_logits(logits)
        T, E = logits.shape  # tokens, experts
        probs = expert_softmax(logits)  # (T, E)
        with torch.no_grad():
            top_expert = torch.topk(probs, self.k, dim=-1).indices  # (T, k)
        top_weight = select_columns(probs, top_expert)  # (T, k), differentiable
        if self.normalize:
            top_weight = top_weight / top_weight.sum(dim=-1, keepdim=True)
        capacity = self.expert_capacity(T)
        with torch.no_grad():
            if capacity is None or T == 0:
                keep, expert_load = None, None
            else:
                keep, expert_load = self._keep(top_expert, top_weight.detach(), capacity)
        top = top_expert.select(1, 0)  # topk sorts: column 0 is the argmax
        aux = {"z_loss": z_loss(logits, probs, top), "capacity": capacity}
        plan = plan_from_token_choices(top_expert, top_weight, E, keep=keep, aux=aux)
        if expert_load is None:
            expert_load = plan.expert_counts  # dropless: the plan's counts are the load
        plan.aux["expert_load"] = expert_load  # (E,) before dropping
        plan.aux["load_balancing_loss"] = switch_load_balancing_loss(expert_load, probs)
        return plan

    def _keep(self, top_expert: torch.Tensor, top_weight: torch.Tensor, capacity: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """((T, k) bool: whether each choice fits its expert's capacity, (E,) int64 load before dropping).

        Choices are ranked within their expert by priority (``_priority``), with one sort of the key
        (expert, priority) and a binary search per expert for where each expert's run starts.
        """
        T, k = top_expert.shape
        flat = top_expert.reshape(-1)  # (T*k,), cell t * k + j
        key = flat * (T * k) + self._priority(top_weight).reshape(-1)  # unique: priorities are 0..T*k-1
        sorted_key, order = torch.sort(key)
        offsets = group_offsets(torch.div(sorted_key, T * k, rounding_mode="floor"), self.num_experts)
        rank = inverse_permutation(order) - take(offsets, flat)  # (T*k,) rank within the expert
        # C >= T * k drops nothing; comparing with a larger C (from a factor of 1e20) overflows int64
        return (rank < min(capacity, T * k)).view(T, k), offsets.diff()

    def _priority(self, top_weight: torch.Tensor) -> torch.Tensor:
        """(T, k) int64: each choice's place in the dropping order, 0 first (rank-major: every first choice
        before any second choice; within a rank by token ("position") or by weight, ties to the earlier token
        ("probability"))."""
        T, k = top_weight.shape
        rank = torch.arange(k, device=top_weight.device) * T  # (k,)
        if self.drop_policy == "position":
            within = torch.arange(T, device=top_weight.device).unsqueeze(1)  # (T, 1)
        else:
            order = torch.argsort(-top_weight.t(), dim=1, stable=True)  # (k, T) tokens, heaviest first
            within = torch.argsort(order, dim=1).t()  # (T, k): each token's place in its column's order
        return within + rank
