"""What every router shares: the call contract, declared capabilities, learned logits and the aux losses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .. import kernels
from ..device_path import host_path
from ..gather import select_columns
from ..validation import (
    all_finite,
    check_finite,
    check_finite_image,
    check_int_in_range,
    check_positive_float,
    check_real,
    check_tokens,
)
from .plan import RoutingPlan


@dataclass(frozen=True)
class RouterCapabilities:
    """What a router declares about itself, so checks can be chosen by capability rather than by class.

    learned: has trainable parameters and ``plan_from_logits``.
    drops_tokens: may remove assignments (capacity).
    assignments_per_token: fixed number of assignments per token, or None when it varies (expert choice).
    needs_token_ids: must be called as ``router(x, token_ids=ids)``.
    batch_independent: a token's experts and weights depend on that token (and its id) alone, never on the rest
    of the batch (hash and LSH routers; a batch-wide softmax, capacity or balancing breaks it).
    """

    learned: bool
    drops_tokens: bool
    assignments_per_token: int | None
    needs_token_ids: bool = False
    batch_independent: bool = False


class Router(nn.Module):
    """Base class. ``router(x)`` with x of shape (tokens, d_model) returns a RoutingPlan."""

    num_experts: int

    @property
    def capabilities(self) -> RouterCapabilities:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def forward(self, x: torch.Tensor, token_ids: torch.Tensor | None = None) -> RoutingPlan:
        """x: (tokens, d_model). token_ids: (tokens,) int64, used only by routers that hash token ids."""
        raise NotImplementedError


class LearnedRouter(Router):
    """A router with a linear gate ``logits = x @ weight.T``; weight (E, d_model) drawn from ``generator``.

    The gate runs in ``promote_types(x.dtype, weight.dtype)``: float32 weights route bf16/fp16 inputs in
    float32 ("selective precision"), and float64 inputs in float64.
    """

    def __init__(
        self, d_model: int, num_experts: int, jitter: float = 0.0, generator: torch.Generator | None = None
    ):
        super().__init__()
        self.d_model = check_int_in_range(d_model, "d_model", 1)
        self.num_experts = check_int_in_range(num_experts, "num_experts", 1)
        self.jitter = check_real(jitter, "jitter")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        weight = torch.randn(num_experts, d_model, generator=self.generator) * d_model**-0.5
        self.weight = nn.Parameter(weight)  # (E, d_model)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, d_model) float. Returns (T, E) logits; multiplicative jitter in training mode only."""
        check_tokens(x, self.d_model, values=False)  # NaN/Inf: found in the (T, E) logits instead
        dtype = torch.promote_types(x.dtype, self.weight.dtype)
        x = x.to(dtype)
        if self.training and self.jitter > 0:
            noise = torch.empty(x.shape, dtype=dtype).uniform_(
                1 - self.jitter, 1 + self.jitter, generator=self.generator
            )
            x = x * noise.to(x.device)
        logits = kernels.linear(x, self.weight.to(dtype))  # (T, E)
        check_finite_image(logits, x)
        return logits

    def forward(self, x: torch.Tensor, token_ids: torch.Tensor | None = None) -> RoutingPlan:
        """x: (T, d_model). token_ids are not used by learned routers."""
        return self.plan_from_logits(self.logits(x))

    def plan_from_logits(self, logits: torch.Tensor) -> RoutingPlan:  # pragma: no cover - overridden
        raise NotImplementedError

    def check_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Validate precomputed (T, E) floating logits."""
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
            raise TypeError("logits must be a floating torch.Tensor of shape (tokens, num_experts)")
        if logits.dim() != 2 or logits.shape[1] != self.num_experts:
            raise ValueError(
                f"logits must have shape (tokens, {self.num_experts}), got {tuple(logits.shape)}"
            )
        check_finite(logits, "logits")
        return logits


def expert_softmax(logits: torch.Tensor) -> torch.Tensor:
    """logits: (T, E). Returns softmax over the experts, (T, E), differentiable: ``kernels.expert_softmax``
    (the CPU backend's may return a (T, E) view of an (E, T) tensor, the same values within a few ulps)."""
    return kernels.expert_softmax(logits)


def switch_load_balancing_loss(expert_load: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Switch loss ``E * sum_i f_i * P_i`` (docs/DESIGN.md §4).

    expert_load: (E,) assignments per expert before capacity dropping; probs: (T, E) router probabilities.
    f_i is expert i's fraction of all assignments, P_i its mean probability. Balanced routing gives 1, total
    collapse onto one expert gives E. HF Mixtral's ``load_balancing_loss_func`` equals k times this value.
    Returns a 0-dim tensor (0 for an empty batch); differentiable through ``probs`` only.
    """
    num_experts = probs.shape[1]
    if probs.shape[0] == 0:
        return probs.new_zeros(())
    total = expert_load.sum().clamp(min=1)  # 0 only for an empty batch; clamped rather than read on the host
    fraction = expert_load.to(probs.dtype) / total  # (E,)
    return num_experts * (fraction * probs.mean(dim=0)).sum()


def z_loss(logits: torch.Tensor, probs: torch.Tensor | None = None, top: torch.Tensor | None = None) -> torch.Tensor:
    """Router z-loss ``mean_t (logsumexp_i logits[t, i])^2``; 0 for an empty batch. Computed in at least
    float32 (the square of a float16 logit overflows above 256); ValueError where it overflows even there.

    logits: (T, E). A router that already has ``probs = softmax(logits)`` (T, E) and each row's most probable
    expert ``top`` (T,) int64 passes them, and logsumexp is read off them as ``logits[t, top] - log probs[t, top]``
    (exact in real arithmetic; probs[t, top] >= 1/E, so the log is well conditioned): a gather instead of a
    pass over (T, E), which took 112 us at (4096, 8) here. Both or neither.
    """
    if logits.shape[0] == 0:
        return logits.new_zeros(())
    if (probs is None) != (top is None):
        raise ValueError("z_loss needs both probs and top, or neither")
    if probs is None:
        lse = torch.logsumexp(logits, dim=-1)  # (T,)
    else:
        top = top.unsqueeze(1)  # (T, 1)
        lse = select_columns(logits, top) - select_columns(probs, top).log()  # (T, 1)
    loss = lse.to(torch.promote_types(lse.dtype, torch.float32)).square().mean()
    overflow = (f"the router logits are so large that their z-loss (logsumexp squared) overflows {loss.dtype}; "
                f"scale down x or the router weights")
    if not host_path(loss):
        torch._assert_async(all_finite(loss), overflow)
    elif not bool(torch.isfinite(loss)):  # finite logits above sqrt(the dtype's max): the square overflows
        largest = float(logits.detach().abs().max())
        raise ValueError(f"{overflow} (they reach {largest:.3g} in magnitude)")
    return loss


def capacity_from_factor(capacity_factor: float, assignments: int, num_experts: int) -> int:
    """C = ceil(capacity_factor * assignments / E) (docs/DESIGN.md §4); 0 for an empty batch. ValueError where
    the product underflows to a capacity of 0 for a non-empty batch (which would drop every token) or
    overflows."""
    share = capacity_factor * assignments / num_experts
    if not math.isfinite(share) or (assignments > 0 and share == 0.0):
        raise ValueError(f"capacity_factor={capacity_factor!r} with {assignments} assignments over "
                         f"{num_experts} experts gives a capacity of {share!r} rows per expert; it must "
                         f"round to at least 1")
    return math.ceil(share)


def check_capacity_args(capacity_factor: float | None, capacity: int | None) -> None:
    """At most one of capacity_factor (> 0) and absolute capacity (>= 1) may be given."""
    if capacity_factor is not None and capacity is not None:
        raise ValueError("give capacity_factor or capacity, not both")
    if capacity_factor is not None:
        check_positive_float(capacity_factor, "capacity_factor")
    if capacity is not None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 (a capacity of 0 drops every token), got {capacity}")
        check_int_in_range(capacity, "capacity", 1)  # at most int64's max, like every size
