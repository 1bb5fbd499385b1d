"""Router cases for the MoE tests: how to build each router, and its float64 per-token reference plan."""

from __future__ import annotations

import numpy as np
import torch

from sparse_bench import reference
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter

D_MODEL, D_HIDDEN, NUM_EXPERTS = 24, 40, 7  # odd sizes on purpose
ACTIVATIONS = ("relu", "gelu", "swiglu")
DEVICES = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)  # the same code on every device here


def make_router(name: str, d_model: int = D_MODEL, num_experts: int = NUM_EXPERTS, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    if name == "switch":
        return TopKRouter(d_model, num_experts, k=1, generator=gen)
    if name == "mixtral":
        return TopKRouter(d_model, num_experts, k=2, normalize=True, generator=gen)
    if name == "top3_capacity":
        return TopKRouter(d_model, num_experts, k=3, capacity_factor=0.75, generator=gen)
    if name == "top2_capacity_probability":
        return TopKRouter(
            d_model, num_experts, k=2, capacity_factor=0.5, drop_policy="probability", generator=gen
        )
    if name == "expert_choice":
        return ExpertChoiceRouter(d_model, num_experts, capacity_factor=1.5, generator=gen)
    if name == "sinkhorn":
        return SinkhornRouter(d_model, num_experts, k=2, generator=gen)
    if name == "hash_input":
        return HashRouter(num_experts, key="input", seed=seed)
    if name == "lsh_simhash":
        return LSHRouter(d_model, num_experts, family="simhash", num_tables=2, seed=seed)
    raise KeyError(name)


ROUTERS = (
    "switch",
    "mixtral",
    "top3_capacity",
    "top2_capacity_probability",
    "expert_choice",
    "sinkhorn",
    "hash_input",
    "lsh_simhash",
)


def reference_assignments(name: str, router, x64: torch.Tensor, router_weight64: torch.Tensor | None):
    """The float64 per-token plan for ``router`` on x64 (T, d): a list of (token, expert, weight)."""
    T = x64.shape[0]
    if router_weight64 is not None:
        logits = (
            torch.stack([router_weight64 @ x64[t] for t in range(T)])
            if T
            else x64.new_zeros(0, router.num_experts)
        )
    if name in ("switch", "mixtral", "top3_capacity", "top2_capacity_probability"):
        capacity = router.expert_capacity(T)
        kept, _ = reference.topk_assignments(logits, router.k, router.normalize, capacity, router.drop_policy)
        return kept
    if name == "expert_choice":
        return reference.expert_choice_assignments(logits, router.expert_capacity(T))
    if name == "sinkhorn":
        return reference.sinkhorn_assignments(
            logits, router.k, router.temperature, router.iterations, router.tol
        )
    if name == "hash_input":  # the reference routes every token on its own: batch composition must not matter
        out = []
        for t in range(T):
            single = router(x64[t : t + 1].float())
            out.append((t, int(single.expert_index[0]), torch.tensor(1.0, dtype=torch.float64)))
        return out
    if name == "lsh_simhash":
        out = []
        xs = x64.detach().numpy()
        for table in router.tables:
            directions = table.directions.numpy()
            for t in range(T):
                bucket = reference.simhash_bucket(xs[t], directions)
                out.append(
                    (
                        t,
                        bucket % router.num_experts,
                        torch.tensor(1.0 / router.num_tables, dtype=torch.float64),
                    )
                )
        return out
    raise KeyError(name)


def assignment_set(assignments) -> list[tuple[int, int]]:
    return sorted((int(t), int(e)) for t, e, _ in assignments)


def plan_pairs(plan) -> list[tuple[int, int]]:
    return sorted(zip(plan.token_index.tolist(), plan.expert_index.tolist()))


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(|b|, tiny): the fp32-vs-float64 error measure used across the tests (a is compared on
    b's device: a GPU result against a CPU reference)."""
    a, b = a.detach().to(b.device), b.detach()
    scale = float(b.abs().max()) if b.numel() else 1.0
    return float((a.double() - b.double()).abs().max()) / max(scale, 1e-30) if a.numel() else 0.0


def numpy_seed_tokens(num_tokens: int, d_model: int = D_MODEL, seed: int = 0) -> torch.Tensor:
    """(num_tokens, d_model) float32 standard normal tokens from a fixed seed."""
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((num_tokens, d_model))).float()
