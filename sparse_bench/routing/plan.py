"""RoutingPlan: the one structure that crosses from routing to compute.

A plan is a sparse (COO) list of A kept assignments, sorted by expert (and by token within an expert):
assignment ``a`` sends token ``token_index[a]`` to expert ``expert_index[a]`` with combine weight ``weight[a]``.
Token-choice, expert-choice, capacity dropping, hashing and pooling all produce this one structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class RoutingPlan:
    """Sparse assignment of tokens to experts.

    token_index: (A,) int64, token of each kept assignment, in [0, num_tokens).
    expert_index: (A,) int64, expert of each kept assignment, in [0, num_experts), non-decreasing.
    weight: (A,) float, combine weight of each assignment (carries gradient to the router's parameters).
    expert_counts: (E,) int64, kept assignments per expert; ``expert_counts.cumsum(0)`` gives segment ends.
    num_tokens, num_experts: T and E.
    dropped: number of assignments removed by capacity (0 when dropless).
    aux: auxiliary losses and statistics (``load_balancing_loss``, ``z_loss`` where defined, ``expert_load``).
    """

    token_index: torch.Tensor
    expert_index: torch.Tensor
    weight: torch.Tensor
    expert_counts: torch.Tensor
    num_tokens: int
    num_experts: int
    dropped: int = 0
    aux: dict = field(default_factory=dict)

    @property
    def num_assignments(self) -> int:
        """A, the number of kept assignments."""
        return int(self.token_index.numel())

    @property
    def expert_offsets(self) -> torch.Tensor:
        """(E + 1,) int64: assignments of expert e are ``offsets[e]:offsets[e + 1]``."""
        zero = self.expert_counts.new_zeros(1)
        return torch.cat([zero, self.expert_counts.cumsum(0)])

    @property
    def slot_in_expert(self) -> torch.Tensor:
        """(A,) int64: the position of each assignment inside its expert's segment (0-based)."""
        starts = self.expert_offsets[:-1]
        return torch.arange(self.num_assignments, device=self.token_index.device) - starts[self.expert_index]

    def token_counts(self) -> torch.Tensor:
        """(T,) int64: kept assignments per token."""
        return torch.bincount(self.token_index, minlength=self.num_tokens)

    def dense_weights(self) -> torch.Tensor:
        """(T, E) float: the combine weights as a dense matrix (duplicates summed); for tests and small T."""
        dense = self.weight.new_zeros(self.num_tokens, self.num_experts)
        return dense.index_put((self.token_index, self.expert_index), self.weight, accumulate=True)

    def validate(self) -> "RoutingPlan":
        """Check the contract; raise ValueError naming the broken field. Returns self."""
        a = self.token_index.numel()
        for name in ("expert_index", "weight"):
            if getattr(self, name).shape != (a,):
                raise ValueError(
                    f"RoutingPlan.{name} must have shape ({a},), got {tuple(getattr(self, name).shape)}"
                )
        if self.token_index.dtype != torch.int64 or self.expert_index.dtype != torch.int64:
            raise ValueError("RoutingPlan token_index and expert_index must be int64")
        if self.expert_counts.shape != (self.num_experts,):
            raise ValueError(f"RoutingPlan.expert_counts must have shape ({self.num_experts},)")
        if int(self.expert_counts.sum()) != a:
            raise ValueError("RoutingPlan.expert_counts does not sum to the number of assignments")
        if a:
            if int(self.token_index.min()) < 0 or int(self.token_index.max()) >= self.num_tokens:
                raise ValueError("RoutingPlan.token_index out of range [0, num_tokens)")
            if int(self.expert_index.min()) < 0 or int(self.expert_index.max()) >= self.num_experts:
                raise ValueError("RoutingPlan.expert_index out of range [0, num_experts)")
            if bool((self.expert_index.diff() < 0).any()):
                raise ValueError("RoutingPlan is not sorted by expert")
            counts = torch.bincount(self.expert_index, minlength=self.num_experts)
            if not torch.equal(counts, self.expert_counts):
                raise ValueError("RoutingPlan.expert_counts disagrees with expert_index")
        if self.dropped < 0:
            raise ValueError("RoutingPlan.dropped must be >= 0")
        return self

    def to(self, device: torch.device | str) -> "RoutingPlan":
        """A copy of the plan with every tensor on ``device``."""
        return RoutingPlan(
            token_index=self.token_index.to(device),
            expert_index=self.expert_index.to(device),
            weight=self.weight.to(device),
            expert_counts=self.expert_counts.to(device),
            num_tokens=self.num_tokens,
            num_experts=self.num_experts,
            dropped=self.dropped,
            aux={k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.aux.items()},
        )


def rank_in_group(groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Each element's 0-based rank among the elements of the same group, in the order given.

    groups: (N,) int64 in [0, num_groups). Returns (N,) int64. Counting runs through a stable sort, never a
    (N, num_groups) one-hot.
    """
    n = groups.numel()
    order = torch.argsort(groups, stable=True)  # (N,) grouped, original order kept within a group
    counts = torch.bincount(groups, minlength=num_groups)
    starts = counts.cumsum(0) - counts  # (num_groups,)
    ranks_sorted = torch.arange(n, device=groups.device) - starts[groups[order]]
    ranks = torch.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def plan_from_assignments(
    token_index: torch.Tensor,
    expert_index: torch.Tensor,
    weight: torch.Tensor,
    num_tokens: int,
    num_experts: int,
    dropped: int = 0,
    aux: dict | None = None,
) -> RoutingPlan:
    """Build a RoutingPlan from unsorted assignments: sorts by (expert, token), stably, and counts.

    token_index, expert_index: (A,) int64; weight: (A,) float. Sorting runs outside autograd; only ``weight``
    keeps its graph (it is gathered with the permutation).
    """
    with torch.no_grad():
        key = expert_index * max(num_tokens, 1) + token_index  # (A,) unique per (expert, token) up to duplicates
        order = torch.argsort(key, stable=True)  # (A,)
    return plan_from_sorted_assignments(token_index[order], expert_index[order], weight[order], num_tokens,
                                        num_experts, aux=aux, dropped=dropped)


def plan_from_sorted_assignments(
    token_index: torch.Tensor,
    expert_index: torch.Tensor,
    weight: torch.Tensor,
    num_tokens: int,
    num_experts: int,
    aux: dict | None = None,
    expert_counts: torch.Tensor | None = None,
    dropped: int = 0,
) -> RoutingPlan:
    """A RoutingPlan from assignments its builder emits already sorted by (expert, token): no sort.

    For constructions that are sorted by design (pooling windows), and the last step of
    ``plan_from_assignments`` (the general entry). expert_counts: (E,) int64 when the builder knows them (else
    counted here). Neither the order nor given counts are re-checked here (``RoutingPlan.validate`` does, in the
    builders' tests).
    """
    with torch.no_grad():
        counts = torch.bincount(expert_index, minlength=num_experts) if expert_counts is None else expert_counts
    return RoutingPlan(token_index, expert_index, weight, counts, num_tokens, num_experts, dropped=int(dropped),
                       aux=dict(aux or {}))
