"""What the router clauses share: a router's capabilities, calling it, and comparing the plans it returns."""

from __future__ import annotations

import numbers

import torch

from ..routing import RouterCapabilities, RoutingPlan

BITS_AS_INT = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
               torch.bfloat16: torch.int16}


def capabilities_of(router) -> RouterCapabilities:
    """The router's declared capabilities; without a ``capabilities`` attribute, the most demanding reading:
    learned when it has trainable parameters, drops nothing, ``router.k`` (else 1) assignments per token, no
    token ids, batch independent."""
    declared = getattr(router, "capabilities", None)
    if declared is None:
        k = getattr(router, "k", 1)
        return RouterCapabilities(
            learned=any(p.requires_grad for p in router.parameters()),
            drops_tokens=False,
            assignments_per_token=k if isinstance(k, numbers.Integral) and not isinstance(k, bool) else 1,
            batch_independent=True,
        )
    if not isinstance(declared, RouterCapabilities):
        raise TypeError(f"router.capabilities must be a RouterCapabilities, got {type(declared).__name__}")
    return declared


def route(router, x: torch.Tensor, ids: torch.Tensor) -> RoutingPlan:
    """router(x), passing ``token_ids=ids`` when the router declares it needs them."""
    if capabilities_of(router).needs_token_ids:
        return router(x, token_ids=ids)
    return router(x)


def assignment_table(plan: RoutingPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """The plan as two (T, E) CPU tables: int64 assignments per (token, expert), their float64 weight sums."""
    T, E = plan.num_tokens, plan.num_experts
    flat = (plan.token_index.long() * E + plan.expert_index.long()).cpu()
    counts = torch.bincount(flat, minlength=T * E).view(T, E)
    weights = torch.zeros(T * E, dtype=torch.float64).index_add_(0, flat, plan.weight.detach().cpu().double())
    return counts, weights.view(T, E)


def _token_summary(table: tuple[torch.Tensor, torch.Tensor], token: int) -> str:
    counts, weights = table
    experts = counts[token].nonzero().flatten().tolist()
    return "{" + ", ".join(f"expert {e}: {float(weights[token, e]):.9g}" for e in experts) + "}"


def table_difference(got: tuple[torch.Tensor, torch.Tensor], expected: tuple[torch.Tensor, torch.Tensor],
                     rtol: float) -> str | None:
    """The first token (row) that two assignment tables route differently: other experts, or weights more than
    rtol apart relative to the larger one (NaN only against NaN). None when they agree."""
    (got_counts, got_weights), (want_counts, want_weights) = got, expected
    if got_counts.shape != want_counts.shape:
        return f"plans over {tuple(got_counts.shape)} and {tuple(want_counts.shape)} (tokens, experts)"
    nan_got, nan_want = got_weights.isnan(), want_weights.isnan()
    gap = (got_weights - want_weights).abs().nan_to_num(0.0)
    allowed = rtol * torch.maximum(got_weights.abs(), want_weights.abs()).nan_to_num(0.0)
    bad_rows = ((got_counts != want_counts) | (nan_got != nan_want) | (gap > allowed)).any(dim=1)
    if not bool(bad_rows.any()):
        return None
    token = int(bad_rows.nonzero()[0])
    return (f"token {token}: {_token_summary(got, token)} vs {_token_summary(expected, token)} (weights may "
            f"differ by a relative {rtol:.2g})")


def rows_of(table: tuple[torch.Tensor, torch.Tensor], rows) -> tuple[torch.Tensor, torch.Tensor]:
    """The table restricted to (and reordered by) ``rows``: a slice or an index tensor."""
    if isinstance(rows, torch.Tensor):
        rows = rows.cpu()
    return table[0][rows], table[1][rows]


def same_bits(a, b) -> bool:
    """Tensors of one shape, dtype and bits (a NaN equals a NaN of the same payload); other values by ==."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return type(a) is type(b) and a == b
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype in BITS_AS_INT:
        as_int = BITS_AS_INT[a.dtype]
        a, b = a.detach().contiguous().view(as_int), b.detach().contiguous().view(as_int)
    return torch.equal(a.detach(), b.detach())


def plan_bits_difference(first: RoutingPlan, second: RoutingPlan) -> str | None:
    """The first field (or aux entry) in which two plans differ bit for bit; None when they are identical."""
    for name in ("num_tokens", "num_experts", "dropped", "token_index", "expert_index", "weight",
                 "expert_counts"):
        if not same_bits(getattr(first, name), getattr(second, name)):
            return f"plan.{name} differs"
    if sorted(first.aux) != sorted(second.aux):
        return f"plan.aux keys differ: {sorted(first.aux)} vs {sorted(second.aux)}"
    for key in sorted(first.aux):
        if not same_bits(first.aux[key], second.aux[key]):
            return f"plan.aux[{key!r}] differs: {first.aux[key]} vs {second.aux[key]}"
    return None
