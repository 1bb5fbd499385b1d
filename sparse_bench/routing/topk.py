"""Token-choice top-k routing: Switch (k=1, raw probability) and Mixtral (k=2, renormalised), with capacity."""

from __future__ import annotations

import torch

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
from .plan import RoutingPlan, plan_from_assignments, rank_in_group

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
        """logits: (T, E) float. Returns a plan with up to T*k assignments."""
        self.check_logits(logits)
        T, E = logits.shape  # tokens, experts
        probs = expert_softmax(logits)  # (T, E)
        with torch.no_grad():
            top_expert = torch.topk(probs, self.k, dim=-1).indices  # (T, k)
        top_weight = probs.gather(1, top_expert)  # (T, k), differentiable
        if self.normalize:
            top_weight = top_weight / top_weight.sum(dim=-1, keepdim=True)
        with torch.no_grad():
            expert_load = torch.bincount(top_expert.reshape(-1), minlength=E)  # (E,) before dropping
        aux = {
            "load_balancing_loss": switch_load_balancing_loss(expert_load, probs),
            "z_loss": z_loss(logits, probs, top_expert[:, 0]),  # topk sorts: column 0 is the argmax
            "expert_load": expert_load,
        }
        token = torch.arange(T, device=logits.device).unsqueeze(1).expand(T, self.k)  # (T, k)
        capacity = self.expert_capacity(T)
        aux["capacity"] = capacity
        if capacity is None or T == 0:
            return plan_from_assignments(
                token.reshape(-1), top_expert.reshape(-1), top_weight.reshape(-1), T, E, aux=aux
            )
        with torch.no_grad():
            priority = self._priority_order(top_expert, top_weight.detach())  # (k*T,) flat (T, k) indices
            rank = rank_in_group(top_expert.reshape(-1)[priority], E)  # (k*T,)
            keep_flat = torch.empty_like(rank, dtype=torch.bool)
            # C >= T * k drops nothing; comparing with a larger C (from a factor of 1e20) overflows int64
            keep_flat[priority] = rank < min(capacity, rank.numel())
        dropped = int((~keep_flat).sum())
        return plan_from_assignments(
            token.reshape(-1)[keep_flat],
            top_expert.reshape(-1)[keep_flat],
            top_weight.reshape(-1)[keep_flat],
            T,
            E,
            dropped=dropped,
            aux=aux,
        )

    def _priority_order(self, top_expert: torch.Tensor, top_weight: torch.Tensor) -> torch.Tensor:
        """Flat indices into the (T, k) choice table, highest priority first (rank-major)."""
        T, k = top_expert.shape
        token = torch.arange(T, device=top_expert.device)
        columns = []
        for r in range(k):  # all choices of rank r before any of rank r + 1
            if self.drop_policy == "position":
                tokens_in_order = token
            else:  # "probability": higher weight first, the earlier token on ties (stable sort)
                tokens_in_order = torch.argsort(-top_weight[:, r], stable=True)
            columns.append(tokens_in_order * k + r)
        return torch.cat(columns)
