"""Hash routing (Roller et al. 2021): a fixed random hash of the token id, or of the input's bits."""

from __future__ import annotations

import heapq

import torch

from ..hashing import MERSENNE_31, universal_hash
from ..device_path import host_path
from ..validation import check_bool, check_int_in_range, check_seed, check_tokens
from .base import Router, RouterCapabilities
from .plan import RoutingPlan, plan_from_token_choices

HASH_KEYS = ("token_id", "input")


def input_bit_codes(x: torch.Tensor) -> torch.Tensor:
    """x: (T, d) float. Returns (T, d * words) int64: the raw bit patterns of each entry in 32-bit words.

    Equal rows give equal codes (so equal hashes); -0.0 and 0.0 differ, as their bits do.
    """
    if x.dtype == torch.float64:
        bits = x.contiguous().view(torch.int64)  # (T, d)
        return torch.cat([bits >> 32, bits & 0xFFFFFFFF], dim=1)
    if x.dtype == torch.float32:
        return x.contiguous().view(torch.int32).to(torch.int64)
    return x.contiguous().view(torch.int16).to(torch.int64)  # float16 / bfloat16


def token_id_codes(token_ids: torch.Tensor) -> torch.Tensor:
    """token_ids: (T,) int64 >= 0. Returns (T, 3) int64: (i, i^2, i^3) mod 2^31 - 1.

    Hashing these multilinearly evaluates a random cubic polynomial of the id, a 4-wise independent family:
    consecutive ids then land on experts like a random table does. (A random affine map alone sends runs of
    consecutive ids into an arithmetic progression, which is far more even than random: measured mean max load
    34.7 vs 44.2 for 1024 consecutive ids on 32 experts.)
    """
    first = torch.remainder(token_ids, MERSENNE_31)
    second = torch.remainder(first * first, MERSENNE_31)
    third = torch.remainder(second * first, MERSENNE_31)
    return torch.stack([first, second, third], dim=1)


def balanced_table(token_frequencies: torch.Tensor, num_experts: int, seed: int) -> torch.Tensor:
    """Greedy balanced assignment of token ids to experts (largest frequency first, to the lightest expert).

    token_frequencies: (V,) non-negative counts per token id. Returns (V,) int64 expert per id. Ids never seen
    (frequency 0) keep the random hash, since they carry no mass to balance.
    """
    if not isinstance(token_frequencies, torch.Tensor) or token_frequencies.dim() != 1 or not (
            token_frequencies.numel()):
        shape = tuple(token_frequencies.shape) if isinstance(token_frequencies, torch.Tensor) else type(
            token_frequencies).__name__
        raise ValueError(f"token_frequencies must be a non-empty (vocab,) tensor of counts, got {shape}")
    freq = token_frequencies.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(freq).all()) or bool((freq < 0).any()):
        raise ValueError("token_frequencies must be finite and >= 0 (counts per token id)")
    ids = torch.arange(freq.numel(), dtype=torch.int64)
    table = universal_hash(token_id_codes(ids), seed) % num_experts  # fallback for unseen ids
    loads = [(0.0, e) for e in range(num_experts)]  # (load, expert): ties go to the lower expert index
    heapq.heapify(loads)
    for token_id in torch.argsort(-freq, stable=True).tolist():
        mass = float(freq[token_id])
        if mass <= 0:
            break
        load, expert = heapq.heappop(loads)
        table[token_id] = expert
        heapq.heappush(loads, (load + mass, expert))
    return table


class HashRouter(Router):
    """Route each token to ``hash(key) mod E`` with weight 1; no parameters, no capacity.

    key="token_id": call as ``router(x, token_ids=ids)`` with ids (T,) int64 >= 0; ``balanced=True`` uses the
    greedy table built from ``token_frequencies`` (V,) (ids >= V fall back to the random hash).
    key="input": hashes the bits of each row of x (a locality-free baseline: near-identical inputs land on
    unrelated experts). A token's expert depends on that token alone, never on the rest of the batch.
    """

    def __init__(
        self,
        num_experts: int,
        key: str = "token_id",
        balanced: bool = False,
        seed: int = 0,
        token_frequencies: torch.Tensor | None = None,
    ):
        super().__init__()
        self.num_experts = check_int_in_range(num_experts, "num_experts", 1)
        if key not in HASH_KEYS:
            raise ValueError(f"key must be one of {HASH_KEYS}, got {key!r}")
        check_bool(balanced, "balanced")
        if balanced and key != "token_id":
            raise ValueError("balanced=True needs key='token_id' (a table is built over token ids)")
        if balanced and token_frequencies is None:
            raise ValueError(
                "balanced=True needs token_frequencies, a (vocab,) tensor of counts per token id"
            )
        self.key, self.balanced, self.seed = key, balanced, check_seed(seed)
        table = (
            balanced_table(token_frequencies, num_experts, seed)
            if balanced
            else torch.empty(0, dtype=torch.int64)
        )
        self.register_buffer("table", table)

    @property
    def capabilities(self) -> RouterCapabilities:
        return RouterCapabilities(
            learned=False, drops_tokens=False, assignments_per_token=1, needs_token_ids=self.key == "token_id",
            batch_independent=True,
        )

    def expert_of_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids: (T,) int64 >= 0. Returns (T,) int64 experts."""
        if not isinstance(token_ids, torch.Tensor) or token_ids.dtype != torch.int64 or token_ids.dim() != 1:
            raise TypeError("token_ids must be a 1-D int64 tensor")
        if token_ids.numel() and not host_path(token_ids):
            torch._assert_async((token_ids >= 0).all(), "token_ids must be >= 0")
        elif token_ids.numel() and int(token_ids.min()) < 0:
            raise ValueError("token_ids must be >= 0")
        expert = universal_hash(token_id_codes(token_ids), self.seed) % self.num_experts
        if self.balanced:
            in_table = token_ids < self.table.numel()
            expert = torch.where(in_table, self.table[token_ids.clamp(max=self.table.numel() - 1)], expert)
        return expert

    def forward(self, x: torch.Tensor, token_ids: torch.Tensor | None = None) -> RoutingPlan:
        """x: (T, d) float; token_ids: (T,) int64 when key='token_id' (then x's values are not read, nor scanned
        for NaN/Inf: the cost stays independent of d; ``MoELayer`` checks x itself for such routers)."""
        check_tokens(x, values=self.key != "token_id")
        T = x.shape[0]
        if self.key == "token_id":
            if token_ids is None:
                raise ValueError("HashRouter(key='token_id') needs token_ids: call router(x, token_ids=ids)")
            if not isinstance(token_ids, torch.Tensor):
                raise TypeError(f"token_ids must be an int64 torch.Tensor, got {type(token_ids).__name__}")
            if token_ids.shape != (T,):
                raise ValueError(f"token_ids must have shape ({T},), got {tuple(token_ids.shape)}")
            expert = self.expert_of_ids(token_ids.to(x.device))
        else:
            expert = universal_hash(input_bit_codes(x), self.seed) % self.num_experts
        weight = torch.ones(T, 1, dtype=x.dtype, device=x.device)
        plan = plan_from_token_choices(expert.unsqueeze(1), weight, self.num_experts)
        plan.aux["expert_load"] = plan.expert_counts
        return plan
