"""RoutingPlan: the one structure that crosses from routing to compute.

A plan is a sparse (COO) list of A kept assignments, sorted by expert (and by token within an expert):
assignment ``a`` sends token ``token_index[a]`` to expert ``expert_index[a]`` with combine weight ``weight[a]``.
Token-choice, expert-choice, capacity dropping, hashing and pooling all produce this one structure.

On the device path (``sparse_bench.device_path``) a router that drops assignments keeps static shapes: its
arrays hold all N = T k choices, the A kept ones first (as above) and the dropped ones after them with weight
0, and ``kept`` holds A on the device; ``compact()`` cuts the tail off (reading A on the host).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..device_path import host_path
from ..gather import permute, take


@dataclass
class RoutingPlan:
    """Sparse assignment of tokens to experts.

    token_index: (N,) int64, token of each assignment, in [0, num_tokens).
    expert_index: (N,) int64, expert of each assignment, in [0, num_experts), non-decreasing over the kept ones.
    weight: (N,) float, combine weight of each assignment (carries gradient to the router's parameters).
    expert_counts: (E,) int64, kept assignments per expert; ``expert_counts.cumsum(0)`` gives segment ends.
    num_tokens, num_experts: T and E.
    dropped: number of assignments removed by capacity (0 when dropless): an int, or a 0-dim device tensor
    with ``kept``.
    aux: auxiliary losses and statistics (``load_balancing_loss``, ``z_loss`` where defined, ``expert_load``).
    token_cells: (N,) int64 or None: each assignment's cell ``t * cells_per_token + j`` in the token-major
    (T, cells_per_token) table of every token's choices (token-choice routers know it; None: the dispatcher
    derives it from token_index).
    cells_per_token: the width of that table (0 when token_cells is None).
    kept: None when every entry is kept (N = A); else a 0-dim int64 tensor A, entries [A, N) being dropped
    assignments of weight 0 kept for static shapes (device path).
    """

    token_index: torch.Tensor
    expert_index: torch.Tensor
    weight: torch.Tensor
    expert_counts: torch.Tensor
    num_tokens: int
    num_experts: int
    dropped: int | torch.Tensor = 0
    aux: dict = field(default_factory=dict)
    token_cells: torch.Tensor | None = None
    cells_per_token: int = 0
    kept: torch.Tensor | None = None

    @property
    def num_assignments(self) -> int:
        """A, the number of kept assignments (a host read of ``kept`` for a plan with a dropped tail)."""
        return int(self.kept) if self.kept is not None else int(self.token_index.numel())

    @property
    def num_entries(self) -> int:
        """N, the length of the plan's arrays: A, plus the dropped tail of a static-shape plan."""
        return int(self.token_index.numel())

    @property
    def expert_offsets(self) -> torch.Tensor:
        """(E + 1,) int64: assignments of expert e are ``offsets[e]:offsets[e + 1]``."""
        zero = self.expert_counts.new_zeros(1)
        return torch.cat([zero, self.expert_counts.cumsum(0)])

    @property
    def slot_in_expert(self) -> torch.Tensor:
        """(N,) int64: the position of each kept assignment inside its expert's segment (0-based; meaningless
        for a dropped tail)."""
        starts = self.expert_counts.cumsum(0) - self.expert_counts
        positions = torch.arange(self.num_entries, device=self.token_index.device)
        return positions - take(starts, self.expert_index)

    def token_counts(self) -> torch.Tensor:
        """(T,) int64: kept assignments per token."""
        return torch.bincount(self.compact().token_index, minlength=self.num_tokens)

    def dense_weights(self) -> torch.Tensor:
        """(T, E) float: the combine weights as a dense matrix (duplicates summed); for tests and small T."""
        plan = self.compact()
        dense = plan.weight.new_zeros(plan.num_tokens, plan.num_experts)
        return dense.index_put((plan.token_index, plan.expert_index), plan.weight, accumulate=True)

    def compact(self) -> "RoutingPlan":
        """This plan without a dropped tail (reading A on the host); the plan itself when it has none."""
        if self.kept is None:
            return self
        a = int(self.kept)
        cells = self.token_cells[:a] if self.token_cells is not None else None
        return RoutingPlan(self.token_index[:a], self.expert_index[:a], self.weight[:a], self.expert_counts,
                           self.num_tokens, self.num_experts, dropped=int(self.dropped), aux=self.aux,
                           token_cells=cells, cells_per_token=self.cells_per_token)

    def validate(self) -> "RoutingPlan":
        """Check the contract; raise ValueError naming the broken field. Returns self."""
        n = self.token_index.numel()
        for name in ("expert_index", "weight"):
            if getattr(self, name).shape != (n,):
                raise ValueError(
                    f"RoutingPlan.{name} must have shape ({n},), got {tuple(getattr(self, name).shape)}"
                )
        if self.token_index.dtype != torch.int64 or self.expert_index.dtype != torch.int64:
            raise ValueError("RoutingPlan token_index and expert_index must be int64")
        if self.expert_counts.shape != (self.num_experts,):
            raise ValueError(f"RoutingPlan.expert_counts must have shape ({self.num_experts},)")
        if self.kept is not None:
            tail = self.weight[int(self.kept):]
            if int(self.kept) + int(self.dropped) != n or bool((tail != 0).any()):
                raise ValueError("RoutingPlan's dropped tail must hold N - kept entries of weight 0")
        if self.token_cells is not None and self.token_cells.shape != (n,):
            raise ValueError(f"RoutingPlan.token_cells must have shape ({n},)")
        plan = self.compact()
        a = plan.token_index.numel()
        if int(self.expert_counts.sum()) != a:
            raise ValueError("RoutingPlan.expert_counts does not sum to the number of assignments")
        if a:
            if int(plan.token_index.min()) < 0 or int(plan.token_index.max()) >= self.num_tokens:
                raise ValueError("RoutingPlan.token_index out of range [0, num_tokens)")
            if int(plan.expert_index.min()) < 0 or int(plan.expert_index.max()) >= self.num_experts:
                raise ValueError("RoutingPlan.expert_index out of range [0, num_experts)")
            if bool((plan.expert_index.diff() < 0).any()):
                raise ValueError("RoutingPlan is not sorted by expert")
            counts = torch.bincount(plan.expert_index, minlength=self.num_experts)
            if not torch.equal(counts, self.expert_counts):
                raise ValueError("RoutingPlan.expert_counts disagrees with expert_index")
            if plan.token_cells is not None:
                if not torch.equal(plan.token_cells // max(self.cells_per_token, 1), plan.token_index):
                    raise ValueError("RoutingPlan.token_cells disagrees with token_index")
                if plan.token_cells.unique().numel() != a:
                    raise ValueError("RoutingPlan.token_cells repeats a cell")
        if int(self.dropped) < 0:
            raise ValueError("RoutingPlan.dropped must be >= 0")
        return self

    def to(self, device: torch.device | str) -> "RoutingPlan":
        """A copy of the plan with every tensor on ``device``."""
        def moved(v):
            return v.to(device) if isinstance(v, torch.Tensor) else v

        return RoutingPlan(
            token_index=self.token_index.to(device),
            expert_index=self.expert_index.to(device),
            weight=self.weight.to(device),
            expert_counts=self.expert_counts.to(device),
            num_tokens=self.num_tokens,
            num_experts=self.num_experts,
            dropped=moved(self.dropped),
            aux={k: moved(v) for k, v in self.aux.items()},
            token_cells=moved(self.token_cells),
            cells_per_token=self.cells_per_token,
            kept=moved(self.kept),
        )


def group_offsets(sorted_groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """sorted_groups: (N,) int64, non-decreasing. Returns (num_groups + 1,) int64: group g runs from
    ``offsets[g]`` to ``offsets[g + 1]``, and ``offsets[num_groups]`` counts the elements below num_groups (a
    binary search per group: no bincount, whose output size is read on the host on CUDA). Sizes:
    ``offsets.diff()``."""
    groups = torch.arange(num_groups + 1, device=sorted_groups.device, dtype=sorted_groups.dtype)
    return torch.searchsorted(sorted_groups, groups)


def plan_from_token_choices(
    experts: torch.Tensor,
    weight: torch.Tensor,
    num_experts: int,
    keep: torch.Tensor | None = None,
    aux: dict | None = None,
) -> RoutingPlan:
    """The plan of token-choice routing: token t sends itself to ``experts[t, j]`` with ``weight[t, j]``.

    experts: (T, k) int64; weight: (T, k) float (its graph is kept); keep: (T, k) bool, False for a choice
    that capacity drops (None: keep all). One stable sort by expert, so within an expert the order is by
    token, then by j. Dropped choices: cut off on the host path (``dropped`` an int), kept as a tail of weight
    0 on the device path (``dropped`` and ``kept`` 0-dim device tensors).
    """
    T, k = experts.shape
    flat = experts.reshape(-1)  # (N,), cell t * k + j
    with torch.no_grad():
        key = flat if keep is None else torch.where(keep.reshape(-1), flat, num_experts)  # dropped sort last
        sorted_key, order = torch.sort(key, stable=True)  # (N,)
        offsets = group_offsets(sorted_key, num_experts)  # (E + 1,); dropped choices (key E) are past the end
        counts = offsets.diff()
        expert_index = sorted_key if keep is None else take(flat, order)
        token_index = torch.div(order, k, rounding_mode="floor")
    entry_weight = permute(weight.reshape(-1), order)  # (N,)
    plan = RoutingPlan(token_index, expert_index, entry_weight, counts, T, num_experts, aux=dict(aux or {}),
                       token_cells=order, cells_per_token=k)
    if keep is None:
        return plan
    kept = offsets.select(0, -1)
    if host_path(experts):
        plan.kept, plan.dropped = kept, T * k - kept
        return plan.compact()
    in_tail = torch.arange(T * k, device=flat.device) >= kept
    plan.weight = torch.where(in_tail, torch.zeros((), dtype=entry_weight.dtype, device=flat.device),
                              entry_weight)
    plan.kept, plan.dropped = kept, T * k - kept
    return plan


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
        sorted_experts = expert_index[order]
        counts = group_offsets(sorted_experts, num_experts).diff()
    return plan_from_sorted_assignments(token_index[order], sorted_experts, permute(weight, order), num_tokens,
                                        num_experts, aux=aux, expert_counts=counts, dropped=dropped)


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

    For constructions that are sorted by design (pooling windows, expert choice), and the last step of
    ``plan_from_assignments``. expert_counts: (E,) int64 when the builder knows them (else counted here).
    Neither the order nor given counts are re-checked here (``RoutingPlan.validate`` does, in the builders'
    tests).
    """
    with torch.no_grad():
        counts = group_offsets(expert_index, num_experts).diff() if expert_counts is None else expert_counts
    return RoutingPlan(token_index, expert_index, weight, counts, num_tokens, num_experts, dropped=int(dropped),
                       aux=dict(aux or {}))
