"""The router contract: one clause per property a RoutingPlan producer must have, selected by capabilities.

Every clause has the signature ``clause(router, d_model=None, *, device="cpu", seed=0)``: d_model is the
width of the tokens it feeds (``router.d_model`` when None, else 8 for a router that takes any width); the
router must already live on ``device``; ``seed`` draws the tokens. Clauses never change the router they are
given (those that call backward or convert dtypes work on a copy).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch.autograd.gradcheck import GradcheckError

from ..routing import RouterCapabilities, RoutingPlan
from .clauses import clause, run_clauses
from .inputs import global_rng_seeded, permutation, token_ids, tokens
from .plans import (
    assignment_table,
    capabilities_of,
    plan_bits_difference,
    route,
    rows_of,
    table_difference,
)
from .rounding import ELEMENTWISE_ROUNDINGS, gamma, reordering_rtol

NUM_TOKENS = 50  # tokens per probe batch: a handful per expert, so capacity factors below 1 bind
OTHER_TOKENS = 23  # tokens put in front of a probe batch to test batch independence
GRADCHECK_TOKENS = 12  # float64 finite differences cost one router call per parameter direction
DEFAULT_WIDTH = 8  # the width fed to a router that has no d_model (it takes any width)
PLANTED_TOKENS_PER_EXPERT = 4  # planted logits have 4 E tokens, so a balanced pattern is exact
PLANTED_TOP_LOGIT = 40.0  # e^-40 is below float32's unit roundoff: the top expert's probability rounds to 1


@dataclass
class RouterProbe:
    """A router under test, its capabilities, and seeded batches for it."""

    router: torch.nn.Module
    caps: RouterCapabilities
    d_model: int
    device: torch.device
    seed: int

    @classmethod
    def of(cls, router, d_model: int | None, device, seed: int) -> "RouterProbe":
        own = getattr(router, "d_model", None)
        if d_model is not None and own is not None and d_model != own:
            raise ValueError(f"d_model={d_model} but the router's d_model is {own}")
        width = d_model if d_model is not None else own if own is not None else DEFAULT_WIDTH
        return cls(router, capabilities_of(router), width, torch.device(device), seed)

    @property
    def num_experts(self) -> int:
        return self.router.num_experts

    def batch(self, num_tokens: int, stream: int = 0, width: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (num_tokens, width or d_model) float32 and their ids, from the seed and ``stream``."""
        seed = self.seed * 1000 + stream
        x = tokens(num_tokens, width if width is not None else self.d_model, seed, self.device)
        return x, token_ids(num_tokens, seed, self.device)

    def route(self, x: torch.Tensor, ids: torch.Tensor, router=None) -> RoutingPlan:
        return route(self.router if router is None else router, x, ids)

    def rtol(self, dtype: torch.dtype = torch.float32) -> float:
        return reordering_rtol(self.d_model, self.num_experts, dtype)


def parameter_dtype(router) -> torch.dtype | None:
    """The dtype of the router's floating parameters (None without any): the least precision it routes in."""
    for parameter in router.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return None


def planted_logits(num_experts: int, balanced: bool, dtype: torch.dtype, device) -> torch.Tensor:
    """(PLANTED_TOKENS_PER_EXPERT * E, E) logits whose rows permute v = (40, -1/2, -1, ..., -(E-1)/2).

    The top expert outweighs the rest by at least e^40 (its probability rounds to 1 in float32) and the others
    are distinct (no ties). balanced: token t prefers expert t mod E, so every expert's column holds the same
    values and its mean probability is exactly 1/E; collapsed: every token ranks the experts alike, 0 first.
    """
    E = num_experts
    values = torch.tensor([PLANTED_TOP_LOGIT] + [-j / 2 for j in range(1, E)], dtype=torch.float64)
    token = torch.arange(PLANTED_TOKENS_PER_EXPERT * E).unsqueeze(1)
    expert = torch.arange(E).unsqueeze(0)
    rank = (expert - token) % E if balanced else expert.expand(token.shape[0], E)
    return values[rank].to(device=device, dtype=dtype)


def _always(router) -> bool:
    return True


def _fixed_count(router) -> bool:
    return capabilities_of(router).assignments_per_token is not None


def _token_choice_without_capacity(router) -> bool:
    caps = capabilities_of(router)
    return caps.assignments_per_token is not None and not caps.drops_tokens


def _drops(router) -> bool:
    return capabilities_of(router).drops_tokens


def _batch_independent(router) -> bool:
    return capabilities_of(router).batch_independent


def _learned(router) -> bool:
    return capabilities_of(router).learned


def _reads_values(router) -> bool:
    return not capabilities_of(router).needs_token_ids


@clause(_always, "always")
def check_router_plan_validates(router, d_model=None, *, device="cpu", seed=0):
    """router(x) returns a RoutingPlan that passes ``validate()``, over the batch's tokens and the router's
    experts, with floating weights (T = 50 and T = 1)."""
    probe = RouterProbe.of(router, d_model, device, seed)
    for num_tokens in (NUM_TOKENS, 1):
        plan = probe.route(*probe.batch(num_tokens))
        assert isinstance(plan, RoutingPlan), f"the router returned a {type(plan).__name__}, not a plan"
        try:
            plan.validate()
        except ValueError as error:
            raise AssertionError(f"T={num_tokens}: RoutingPlan.validate() refuses it: {error}") from error
        assert plan.num_tokens == num_tokens, f"T={num_tokens}: plan.num_tokens is {plan.num_tokens}"
        assert plan.num_experts == probe.num_experts, (
            f"plan.num_experts is {plan.num_experts} but the router has {probe.num_experts} experts")
        assert plan.weight.is_floating_point(), f"plan.weight is {plan.weight.dtype}, not floating"


@clause(_always, "always")
def check_router_expert_index_sorted(router, d_model=None, *, device="cpu", seed=0):
    """expert_index never decreases, and within an expert the tokens keep their order (a stable sort)."""
    probe = RouterProbe.of(router, d_model, device, seed)
    plan = probe.route(*probe.batch(NUM_TOKENS))
    expert, token = plan.expert_index.cpu(), plan.token_index.cpu()
    falls = (expert.diff() < 0).nonzero().flatten()
    assert not falls.numel(), (f"expert_index falls at assignment {int(falls[0])}: expert "
                               f"{int(expert[falls[0]])} before expert {int(expert[falls[0] + 1])}")
    back = ((expert.diff() == 0) & (token.diff() < 0)).nonzero().flatten()
    assert not back.numel(), (f"within expert {int(expert[back[0]])}, token {int(token[back[0]])} comes "
                              f"before token {int(token[back[0] + 1])}: tokens must keep their order within "
                              f"an expert")


@clause(_fixed_count, "assignments_per_token is not None")
def check_router_assignments_per_token(router, d_model=None, *, device="cpu", seed=0):
    """Every token has exactly assignments_per_token assignments (at most that many when it drops tokens)."""
    probe = RouterProbe.of(router, d_model, device, seed)
    plan = probe.route(*probe.batch(NUM_TOKENS))
    k = probe.caps.assignments_per_token
    per_token = torch.bincount(plan.token_index.long().cpu(), minlength=NUM_TOKENS)[:NUM_TOKENS]
    bad = (per_token > k) if probe.caps.drops_tokens else (per_token != k)
    if bool(bad.any()):
        token = int(bad.nonzero()[0])
        declared = f"at most {k} (drops_tokens)" if probe.caps.drops_tokens else f"exactly {k}"
        raise AssertionError(f"token {token} has {int(per_token[token])} assignments; the router declares "
                             f"{declared}")


@clause(_always, "always")
def check_router_weights_finite_nonnegative(router, d_model=None, *, device="cpu", seed=0):
    """Every combine weight is finite and >= 0."""
    probe = RouterProbe.of(router, d_model, device, seed)
    plan = probe.route(*probe.batch(NUM_TOKENS))
    weight = plan.weight.detach().cpu()
    bad = (~torch.isfinite(weight)) | (weight < 0)
    if bool(bad.any()):
        a = int(bad.nonzero()[0])
        raise AssertionError(f"assignment {a} (token {int(plan.token_index[a])}, expert "
                             f"{int(plan.expert_index[a])}) has weight {float(weight[a])}; weights must be "
                             f"finite and >= 0 ({int(bad.sum())} of {weight.numel()} are not)")


@clause(_always, "always")
def check_router_counts_consistent(router, d_model=None, *, device="cpu", seed=0):
    """expert_counts (int64, (E,)) counts expert_index, the offsets end at the number of assignments, and
    ``dropped`` is 0 for a router that drops nothing, T * k - A for one that drops with k per token."""
    probe = RouterProbe.of(router, d_model, device, seed)
    plan = probe.route(*probe.batch(NUM_TOKENS))
    E, A = probe.num_experts, plan.num_assignments
    counts = plan.expert_counts.cpu()
    assert counts.dtype == torch.int64 and counts.shape == (E,), (
        f"expert_counts is {counts.dtype} of shape {tuple(counts.shape)}, expected int64 ({E},)")
    actual = torch.bincount(plan.expert_index.long().cpu(), minlength=E)
    assert torch.equal(counts, actual), (
        f"expert_counts {counts.tolist()} but expert_index counts {actual.tolist()}")
    offsets = plan.expert_offsets.cpu()
    assert int(offsets[0]) == 0 and int(offsets[-1]) == A, (
        f"expert_offsets run from {int(offsets[0])} to {int(offsets[-1])}, not from 0 to A={A}")
    dropped = plan.dropped
    assert isinstance(dropped, int) and dropped >= 0, f"plan.dropped is {dropped!r}, not an int >= 0"
    k = probe.caps.assignments_per_token
    if not probe.caps.drops_tokens:
        assert dropped == 0, f"plan.dropped is {dropped} but the router declares it drops nothing"
    elif k is not None:
        assert dropped == NUM_TOKENS * k - A, (f"plan.dropped is {dropped} but {NUM_TOKENS} tokens x {k} "
                                              f"choices - {A} kept = {NUM_TOKENS * k - A}")


def reported_capacity(router, plan: RoutingPlan) -> int | None:
    """The capacity a plan was built under: ``plan.aux["capacity"]``, else ``router.expert_capacity(T)``."""
    if plan.aux.get("capacity") is not None:
        return int(plan.aux["capacity"])
    if hasattr(router, "expert_capacity"):
        return router.expert_capacity(plan.num_tokens)
    return None


@clause(_drops, "drops_tokens")
def check_router_capacity_respected(router, d_model=None, *, device="cpu", seed=0):
    """No expert keeps more than the capacity C; with ``aux["expert_load"]`` (assignments before dropping),
    each expert keeps exactly min(load, C): nothing is dropped while its expert has room. Checked on a random
    batch and, for a router with ``plan_from_logits``, on logits that send every token to expert 0 first."""
    probe = RouterProbe.of(router, d_model, device, seed)
    plans = [("a random batch", probe.route(*probe.batch(NUM_TOKENS)))]
    if hasattr(router, "plan_from_logits"):
        dtype = parameter_dtype(router) or torch.float32
        collapsed = planted_logits(probe.num_experts, False, dtype, probe.device)
        plans.append(("logits preferring expert 0", router.plan_from_logits(collapsed)))
    for label, plan in plans:
        capacity = reported_capacity(router, plan)
        assert capacity is not None, ("the router declares drops_tokens but reports no capacity: put it in "
                                      "plan.aux['capacity'] or give router.expert_capacity(num_tokens)")
        counts = plan.expert_counts.cpu()
        over = (counts > capacity).nonzero().flatten()
        assert not over.numel(), (f"{label}: expert {int(over[0])} keeps {int(counts[over[0]])} assignments, "
                                  f"over the capacity {capacity}")
        load = plan.aux.get("expert_load")
        if load is not None:
            expected = load.cpu().clamp(max=capacity)
            assert torch.equal(counts, expected.to(counts.dtype)), (
                f"{label}: experts keep {counts.tolist()} of loads {load.tolist()} under capacity "
                f"{capacity}; expected min(load, capacity) = {expected.tolist()}")


@clause(_always, "always")
def check_router_deterministic(router, d_model=None, *, device="cpu", seed=0):
    """Two copies of the router (same state, same seed) give bitwise identical plans on the same batch,
    whatever the global RNG holds."""
    probe = RouterProbe.of(router, d_model, device, seed)
    x, ids = probe.batch(NUM_TOKENS)
    plans = []
    for scramble in (1, 2):
        with global_rng_seeded(scramble, probe.device):
            plans.append(probe.route(x, ids, router=copy.deepcopy(router)))
    difference = plan_bits_difference(*plans)
    assert difference is None, f"two calls on the same batch disagree: {difference}"


@clause(_token_choice_without_capacity, "assignments_per_token is not None and not drops_tokens")
def check_router_permutation_equivariant(router, d_model=None, *, device="cpu", seed=0):
    """Permuting the tokens permutes the plan: each token keeps its experts and (to rounding) its weights."""
    probe = RouterProbe.of(router, d_model, device, seed)
    x, ids = probe.batch(NUM_TOKENS)
    perm = permutation(NUM_TOKENS, seed, probe.device)
    original = assignment_table(probe.route(x, ids))
    permuted = assignment_table(probe.route(x[perm], ids[perm]))
    difference = table_difference(permuted, rows_of(original, perm), probe.rtol())
    assert difference is None, f"the tokens permuted, routed again: {difference}"


@clause(_batch_independent, "batch_independent")
def check_router_batch_independent(router, d_model=None, *, device="cpu", seed=0):
    """A token gets the same experts and weights in any batch: alone, or shuffled behind other tokens."""
    probe = RouterProbe.of(router, d_model, device, seed)
    x, ids = probe.batch(NUM_TOKENS)
    original = assignment_table(probe.route(x, ids))
    rtol = probe.rtol()
    for token in range(3):
        alone = assignment_table(probe.route(x[token:token + 1], ids[token:token + 1]))
        difference = table_difference(alone, rows_of(original, slice(token, token + 1)), rtol)
        assert difference is None, f"token {token} routed alone vs in its batch: {difference}"
    other_x, other_ids = probe.batch(OTHER_TOKENS, stream=1)
    perm = permutation(NUM_TOKENS, seed, probe.device)
    mixed = assignment_table(probe.route(torch.cat([other_x, x[perm]]), torch.cat([other_ids, ids[perm]])))
    difference = table_difference(rows_of(mixed, slice(OTHER_TOKENS, None)), rows_of(original, perm), rtol)
    assert difference is None, f"the batch shuffled behind {OTHER_TOKENS} other tokens: {difference}"


@clause(_learned, "learned")
def check_router_gradient_reaches_parameters(router, d_model=None, *, device="cpu", seed=0):
    """The combine weights carry a finite gradient to every trainable parameter, and only they do:
    token_index and expert_index are integers without grad. In float64 (a copy, in eval mode), the weights'
    gradient with respect to x and the parameters matches central finite differences
    (torch.autograd.gradcheck: truncation error ~eps^2 and rounding ~u64/eps at eps = 1e-6, both far below its
    default tolerances)."""
    probe = RouterProbe.of(router, d_model, device, seed)
    trained = copy.deepcopy(router)
    x, ids = probe.batch(NUM_TOKENS)
    plan = probe.route(x.requires_grad_(), ids, router=trained)
    for name in ("token_index", "expert_index"):
        index = getattr(plan, name)
        assert not index.is_floating_point() and not index.requires_grad, (
            f"plan.{name} is {index.dtype} (requires_grad={index.requires_grad}): indices carry no gradient")
    assert plan.weight.requires_grad, ("plan.weight does not require grad: the combine weights must carry "
                                       "the router's gradient (are they detached?)")
    coefficients = tokens(plan.num_assignments, 1, seed + 1, probe.device).flatten().to(plan.weight.dtype)
    (plan.weight * coefficients).sum().backward()
    trainable = [(name, p) for name, p in trained.named_parameters() if p.requires_grad]
    assert trainable, "the router declares learned but has no trainable parameters"
    for name, parameter in trainable:
        grad = parameter.grad
        assert grad is not None, f"parameter {name} gets no gradient from the combine weights"
        assert bool(torch.isfinite(grad).all()), f"parameter {name} gets a gradient with NaN/Inf"

    double = copy.deepcopy(router).double().eval()
    names = [name for name, _ in trainable]
    params = [dict(double.named_parameters())[name].detach().clone().requires_grad_() for name in names]
    x64, ids64 = probe.batch(GRADCHECK_TOKENS, stream=2)
    x64 = x64.double().requires_grad_()

    def weights(x, *flat):
        kwargs = {"token_ids": ids64} if probe.caps.needs_token_ids else {}
        return torch.func.functional_call(double, dict(zip(names, flat)), (x,), kwargs).weight

    try:
        torch.autograd.gradcheck(weights, (x64, *params), eps=1e-6, fast_mode=True)
    except GradcheckError as error:
        raise AssertionError(f"the float64 gradient of the weights disagrees with finite differences: "
                             f"{error}") from error


@clause(_always, "always")
def check_router_dtypes(router, d_model=None, *, device="cpu", seed=0):
    """float32, float64 and bfloat16 tokens are routed in promote_types(x.dtype, the router's parameter dtype)
    (x.dtype for a router without parameters): that is the weights' dtype, and a router with parameters routes
    a bfloat16 batch as the same values upcast to its own precision ("selective precision")."""
    probe = RouterProbe.of(router, d_model, device, seed)
    x, ids = probe.batch(NUM_TOKENS)
    own = parameter_dtype(router)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        low = x.to(dtype)
        plan = probe.route(low, ids)
        expected = torch.promote_types(dtype, own) if own is not None else dtype
        assert plan.weight.dtype == expected, (
            f"{dtype} tokens give {plan.weight.dtype} weights; expected {expected} (the promotion of the "
            f"input's dtype and the router's {own or 'absent'} parameters)")
        assert plan.num_tokens == NUM_TOKENS, f"{dtype} tokens: plan.num_tokens is {plan.num_tokens}"
        if expected != dtype:
            upcast = probe.route(low.to(expected), ids)
            difference = table_difference(assignment_table(plan), assignment_table(upcast),
                                          probe.rtol(expected))
            assert difference is None, (f"{dtype} tokens are not routed as the same values in {expected}: "
                                        f"{difference}")


@clause(_always, "always")
def check_router_empty_batch(router, d_model=None, *, device="cpu", seed=0):
    """A batch of 0 tokens gives an empty plan: no assignments, zero counts, nothing dropped."""
    probe = RouterProbe.of(router, d_model, device, seed)
    plan = probe.route(*probe.batch(0))
    E = probe.num_experts
    assert isinstance(plan, RoutingPlan), f"the router returned a {type(plan).__name__}, not a RoutingPlan"
    assert plan.num_tokens == 0, f"plan.num_tokens is {plan.num_tokens}"
    for name in ("token_index", "expert_index", "weight"):
        assert getattr(plan, name).shape == (0,), f"plan.{name} has shape {tuple(getattr(plan, name).shape)}"
    assert plan.expert_counts.shape == (E,) and not bool(plan.expert_counts.any()), (
        f"expert_counts is {plan.expert_counts.tolist()}, expected {E} zeros")
    assert plan.dropped == 0, f"plan.dropped is {plan.dropped}"


@clause(_reads_values, "not needs_token_ids")
def check_router_rejects_non_finite(router, d_model=None, *, device="cpu", seed=0):
    """One NaN, +Inf or -Inf entry in x gets a ValueError that says so (routers keyed on token ids never read
    x's values; MoELayer checks x for them)."""
    probe = RouterProbe.of(router, d_model, device, seed)
    x, ids = probe.batch(NUM_TOKENS)
    for bad in (math.nan, math.inf, -math.inf):
        poisoned = x.clone()
        poisoned[NUM_TOKENS // 2, probe.d_model // 2] = bad
        try:
            probe.route(poisoned, ids)
        except ValueError as error:
            message = str(error).lower()
            assert "nan" in message or "inf" in message, f"x holding {bad} raises ValueError({error!r}), " \
                                                         f"which does not name NaN/Inf"
        else:
            raise AssertionError(f"x holding {bad} at token {NUM_TOKENS // 2} is routed without a ValueError")


@clause(_always, "always")
def check_router_rejects_bad_shape(router, d_model=None, *, device="cpu", seed=0):
    """x of rank 1 or 3 gets a ValueError, integer x a TypeError, and (for a router with a d_model) a width
    other than d_model a ValueError naming the width expected."""
    probe = RouterProbe.of(router, d_model, device, seed)
    x, ids = probe.batch(NUM_TOKENS)
    for bad, label in ((x[0], "rank 1"), (x.unsqueeze(0), "rank 3")):
        _expect_error(probe, bad, ids, ValueError, f"x of {label}, shape {tuple(bad.shape)},")
    _expect_error(probe, x.to(torch.int64), ids, TypeError, "integer x")
    if hasattr(router, "d_model"):
        for width in {probe.d_model + 1, max(probe.d_model - 1, 1)} - {probe.d_model}:
            wrong, _ = probe.batch(NUM_TOKENS, width=width)
            message = _expect_error(probe, wrong, ids, ValueError, f"x of width {width}")
            assert str(probe.d_model) in message, (
                f"x of width {width} gets ValueError({message!r}), which does not name the width "
                f"{probe.d_model}")


def _expect_error(probe: RouterProbe, x: torch.Tensor, ids: torch.Tensor, kind: type, label: str) -> str:
    try:
        probe.route(x, ids)
    except kind as error:
        assert str(error), f"{label} raises {kind.__name__} without a message"
        return str(error)
    raise AssertionError(f"{label} is accepted without a {kind.__name__}")


def _expert_load_difference(plan: RoutingPlan, caps: RouterCapabilities) -> str | None:
    """Where ``aux["expert_load"]`` (assignments per expert before dropping) breaks its identities."""
    load = plan.aux.get("expert_load")
    if load is None:
        return None
    counts = plan.expert_counts.cpu()
    load = load.cpu()
    if load.shape != counts.shape or load.is_floating_point():
        return f"aux['expert_load'] is {load.dtype} of shape {tuple(load.shape)}, expected integer counts"
    if not caps.drops_tokens and not torch.equal(load.long(), counts):
        return (f"aux['expert_load'] {load.tolist()} differs from expert_counts {counts.tolist()} (nothing "
                f"dropped)")
    if bool((load < counts).any()):
        return f"aux['expert_load'] {load.tolist()} is below the kept counts {counts.tolist()}"
    k = caps.assignments_per_token
    if caps.drops_tokens and k is not None and int(load.sum()) != plan.num_tokens * k:
        return f"aux['expert_load'] sums to {int(load.sum())}, not T x k = {plan.num_tokens * k}"
    return None


@clause(_always, "always")
def check_router_aux_identities(router, d_model=None, *, device="cpu", seed=0):
    """The aux statistics present meet their identities. ``expert_load`` >= expert_counts (equal without
    dropping; summing to T k before capacity). On planted logits (routers with ``plan_from_logits``),
    ``load_balancing_loss`` is the Switch ``E sum_i f_i P_i`` (f from expert_load, P the mean softmax): 1 when
    every expert is preferred equally often, and E for Switch's collapse onto one expert; ``z_loss`` is
    mean_t logsumexp(logits_t)^2. Tolerances: gamma_n of the logits' dtype, n = the terms summed (T tokens,
    E experts) plus ELEMENTWISE_ROUNDINGS per softmax entry."""
    probe = RouterProbe.of(router, d_model, device, seed)
    plan = probe.route(*probe.batch(NUM_TOKENS))
    difference = _expert_load_difference(plan, probe.caps)
    assert difference is None, f"a random batch: {difference}"
    for key in ("load_balancing_loss", "z_loss"):
        if key in plan.aux:
            value = plan.aux[key]
            assert isinstance(value, torch.Tensor) and value.dim() == 0 and bool(torch.isfinite(value)), (
                f"aux[{key!r}] is {value!r}, not a finite 0-dim tensor")
    if not hasattr(router, "plan_from_logits"):
        return
    E = probe.num_experts
    dtype = parameter_dtype(router) or torch.float32
    for balanced in (True, False):
        label = "planted balanced logits" if balanced else "planted collapsed logits"
        logits = planted_logits(E, balanced, dtype, probe.device)
        planted = router.plan_from_logits(logits)
        difference = _expert_load_difference(planted, probe.caps)
        assert difference is None, f"{label}: {difference}"
        T = logits.shape[0]
        logits64 = logits.cpu().double()
        if "load_balancing_loss" in planted.aux:
            got = float(planted.aux["load_balancing_loss"])
            load = planted.aux.get("expert_load", planted.expert_counts).cpu().double()
            mean_probs = torch.softmax(logits64, dim=1).mean(dim=0)
            expected = float(E * (load / load.sum() * mean_probs).sum())
            tol = gamma(T + 2 * E + ELEMENTWISE_ROUNDINGS, dtype) * abs(expected)
            assert abs(got - expected) <= tol, (f"{label}: load_balancing_loss {got!r}, expected "
                                                f"E sum_i f_i P_i = {expected!r} (+- {tol:.2g})")
            if balanced:
                assert abs(got - 1.0) <= tol, (
                    f"{label}: load_balancing_loss {got!r}, expected 1 (+- {tol:.2g})")
        if "z_loss" in planted.aux:
            got = float(planted.aux["z_loss"])
            expected = float(torch.logsumexp(logits64, dim=1).square().mean())
            tol = gamma(T + 2 * (E + ELEMENTWISE_ROUNDINGS), dtype) * expected
            assert abs(got - expected) <= tol, (
                f"{label}: z_loss {got!r}, expected mean logsumexp^2 = {expected!r} (+- {tol:.2g})")


ROUTER_CLAUSES = (
    check_router_plan_validates,
    check_router_expert_index_sorted,
    check_router_assignments_per_token,
    check_router_weights_finite_nonnegative,
    check_router_counts_consistent,
    check_router_capacity_respected,
    check_router_deterministic,
    check_router_permutation_equivariant,
    check_router_batch_independent,
    check_router_gradient_reaches_parameters,
    check_router_dtypes,
    check_router_empty_batch,
    check_router_rejects_non_finite,
    check_router_rejects_bad_shape,
    check_router_aux_identities,
)


def router_clauses(router) -> list:
    """The clauses of ROUTER_CLAUSES that the router's capabilities select, in order."""
    return [check for check in ROUTER_CLAUSES if check.applies(router)]


def check_router(router, d_model: int | None = None, *, device="cpu", seed: int = 0) -> None:
    """Run every clause the router's capabilities select; raise one AssertionError naming each that fails.
    ValueError when d_model disagrees with ``router.d_model``."""
    RouterProbe.of(router, d_model, device, seed)
    clauses = router_clauses(router)
    run_clauses(f"{type(router).__name__}", clauses,
                lambda check: check(router, d_model, device=device, seed=seed))
