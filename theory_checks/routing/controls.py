"""Planted defects for the routing checks: deliberately broken routers that a sound check must FAIL.

Each class changes one thing in a real router and says which bug it plants. Never use these outside checks.
"""

from __future__ import annotations

import torch

from sparse_bench.hashing import universal_hash
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter
from sparse_bench.routing.plan import RoutingPlan, plan_from_assignments


class MissingFactorLossTopK(TopKRouter):
    """Switch loss without its factor E: ``sum_i f_i P_i`` (balanced gives 1/E instead of 1)."""

    def plan_from_logits(self, logits: torch.Tensor) -> RoutingPlan:
        plan = super().plan_from_logits(logits)
        fraction = plan.aux["expert_load"].to(logits.dtype) / plan.aux["expert_load"].sum()
        plan.aux["load_balancing_loss"] = (fraction * torch.softmax(logits, -1).mean(0)).sum()
        return plan


class SquaredFractionLossTopK(TopKRouter):
    """Loss ``E * sum_i f_i^2``: gives 1 when balanced and E on collapse, but ignores the probabilities (no
    gradient reaches the router) and has the wrong expectation under random routing."""

    def plan_from_logits(self, logits: torch.Tensor) -> RoutingPlan:
        plan = super().plan_from_logits(logits)
        fraction = plan.aux["expert_load"].to(logits.dtype) / plan.aux["expert_load"].sum()
        plan.aux["load_balancing_loss"] = self.num_experts * fraction.square().sum()
        return plan


class CapacityIgnoringTopK(TopKRouter):
    """Accepts capacity_factor but silently never drops (capacity treated as unlimited)."""

    def expert_capacity(self, num_tokens: int) -> int | None:
        return None


class CapacityPlusOneTopK(TopKRouter):
    """Off-by-one capacity: lets C + 1 assignments through per expert."""

    def expert_capacity(self, num_tokens: int) -> int | None:
        capacity = super().expert_capacity(num_tokens)
        return None if capacity is None else capacity + 1


class CapacityMinusOneTopK(TopKRouter):
    """Off-by-one the other way: keeps only C - 1 assignments per expert (it never breaks the capacity
    contract, so only the number of drops can give it away)."""

    def expert_capacity(self, num_tokens: int) -> int | None:
        capacity = super().expert_capacity(num_tokens)
        return None if capacity is None else max(1, capacity - 1)


class QuantizedTieToFirstTopK(TopKRouter):
    """Low-precision gate: logits rounded to steps of 0.5, ties broken toward the lowest expert index
    (so expert 0 wins every tie and uniform logits no longer give uniform routing)."""

    def plan_from_logits(self, logits: torch.Tensor) -> RoutingPlan:
        E = logits.shape[1]
        tie_break = 1e-6 * torch.arange(E, dtype=logits.dtype, device=logits.device)
        return super().plan_from_logits(torch.round(logits * 2.0) / 2.0 - tie_break)


class CapacityPlusOneExpertChoice(ExpertChoiceRouter):
    """Off-by-one expert choice: every expert takes C + 1 tokens."""

    def expert_capacity(self, num_tokens: int) -> int:
        return min(super().expert_capacity(num_tokens) + 1, num_tokens)


class RawLogitExpertChoice(ExpertChoiceRouter):
    """Experts rank tokens by raw logits instead of the per-token softmax probabilities (ignores each token's
    normaliser, so a token with uniformly high logits is over-picked)."""

    def plan_from_logits(self, logits: torch.Tensor) -> RoutingPlan:
        T, E = logits.shape
        probs = torch.softmax(logits, dim=-1)
        capacity = self.expert_capacity(T)
        chosen = torch.topk(logits.t(), capacity, dim=1).indices  # (E, C): the bug, logits not probs
        expert = torch.arange(E, device=logits.device).unsqueeze(1).expand(E, capacity)
        weight = probs[chosen.reshape(-1), expert.reshape(-1)]
        aux = {"expert_load": torch.full((E,), capacity, dtype=torch.int64), "capacity": capacity}
        return plan_from_assignments(chosen.reshape(-1), expert.reshape(-1), weight, T, E, aux=aux)


class RowsOnlySinkhorn(SinkhornRouter):
    """'Sinkhorn' that normalises rows only: the transport is the softmax divided by T (columns unbalanced),
    so routing equals greedy top-k."""

    def transport(self, logits: torch.Tensor) -> tuple[torch.Tensor, int, float]:
        with torch.no_grad():
            return torch.softmax(logits.detach() / self.temperature, dim=1) / logits.shape[0], 1, 0.0


class ModuloBiasedHashRouter(HashRouter):
    """Hash reduced modulo E + 2 and then modulo E: experts 0 and 1 receive twice the share of the others."""

    def expert_of_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        wide = universal_hash(token_ids.unsqueeze(1), self.seed) % (self.num_experts + 2)
        return wide % self.num_experts  # the bug: a second, biased reduction


class SkipsLastExpertHashRouter(HashRouter):
    """Off-by-one range: ``hash mod (E - 1)``, so the last expert never receives a token."""

    def expert_of_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        return universal_hash(token_ids.unsqueeze(1), self.seed) % (self.num_experts - 1)


def misaligned_balanced_router(num_experts: int, seed: int, token_frequencies: torch.Tensor) -> HashRouter:
    """Balanced table built from frequencies listed in a different id order (a vocabulary/ids mix-up): the
    table balances the wrong ids, so heavy tokens land on effectively random experts."""
    perm = torch.randperm(token_frequencies.numel(), generator=torch.Generator().manual_seed(seed))
    return HashRouter(num_experts, balanced=True, seed=seed, token_frequencies=token_frequencies[perm])


def repeated_hyperplane_lsh(d_model: int, num_experts: int, seed: int) -> LSHRouter:
    """SimHash router whose bits all reuse the first hyperplane (a per-bit seed bug): buckets are 0 or
    2^m - 1, and two inputs collide at rate 1 - theta/pi instead of (1 - theta/pi)^m."""
    router = LSHRouter(d_model, num_experts, family="simhash", seed=seed)
    for table in router.tables:
        table.directions.copy_(table.directions[:, :1].expand_as(table.directions))
    return router


def input_hash_lsh(d_model: int, num_experts: int, seed: int) -> HashRouter:
    """A locality-free router in the LSH slot: hashes input bits, so near inputs share an expert at 1/E."""
    return HashRouter(num_experts, key="input", seed=seed)
