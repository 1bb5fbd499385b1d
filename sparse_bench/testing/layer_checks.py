"""The MoE layer contract: the layer's computation against the float64 reference, bitwise determinism,
dropless equal to ample capacity, and clear errors for bad input.

Every clause has the signature ``clause(layer, *, device="cpu")``. A layer is an ``MoELayer`` (or one built by
``sparse_bench.interop.from_hf``): ``layer.router``, ``layer.experts`` (an ExpertBank), optional
``layer.shared_expert``, and ``layer(x, token_ids=None, return_plan=False)``. It must already live on
``device``; clauses work on copies, so the layer given is left as it was (no gradients written into it).
"""

from __future__ import annotations

import copy
import math

import torch

from .clauses import clause, run_clauses
from .inputs import global_rng_seeded, token_ids, tokens
from .layer_reference import bank_of, layer_tensors, magnitudes, reference_output
from .plans import capabilities_of, same_bits
from .rounding import gamma, moe_chain_length, unit_roundoff

REFERENCE_TOKENS = (1, 37, 1000)  # odd sizes: a single token, a prime, and a batch past the chunked paths
DETERMINISM_TOKENS = 200
BAD_INPUT_TOKENS = 9


def _call(layer, x: torch.Tensor, ids: torch.Tensor, return_plan: bool = False):
    """layer(x), passing token ids when its router needs them."""
    if capabilities_of(layer.router).needs_token_ids:
        return layer(x, token_ids=ids, return_plan=return_plan)
    return layer(x, return_plan=return_plan)


def _inputs(layer, num_tokens: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens x and an upstream gradient (num_tokens, d_model) in the experts' dtype, and token ids."""
    dtype = bank_of(layer).w_in.dtype
    x = tokens(num_tokens, layer.d_model, seed, device, dtype)
    upstream = tokens(num_tokens, layer.d_model, seed + 1, device, dtype)
    return x, upstream, token_ids(num_tokens, seed, device)


def _zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


def _violation(label: str, got: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor) -> str | None:
    """The entry where |got - expected| exceeds its bound the most, described; None when none does."""
    got = got.detach().cpu().double()
    if got.shape != expected.shape:
        return f"{label} has shape {tuple(got.shape)}, the reference {tuple(expected.shape)}"
    if not got.numel():
        return None
    gap = (got - expected.detach()).abs()
    excess = (gap - bound).nan_to_num(nan=math.inf)
    worst = int(excess.argmax())
    if float(excess.flatten()[worst]) <= 0:
        return None
    index = list(torch.unravel_index(torch.tensor(worst), got.shape))
    where = "[" + ", ".join(str(int(i)) for i in index) + "]"
    return (f"{label}{where} is {float(got.flatten()[worst]):.9g}, the float64 reference "
            f"{float(expected.flatten()[worst]):.9g}: they differ by {float(gap.flatten()[worst]):.3g}, over "
            f"the rounding bound {float(bound.flatten()[worst]):.3g}")


def chain_length(layer, num_tokens: int) -> int:
    """``moe_chain_length`` for this layer's sizes (the wider of its routed and shared experts)."""
    bank = bank_of(layer)
    shared = getattr(layer, "shared_expert", None)
    d_hidden = max(bank.d_hidden, shared.expert.d_hidden if shared is not None else 0)
    return moe_chain_length(layer.d_model, d_hidden, bank.num_experts, num_tokens)


def compare_with_reference(layer, num_tokens: int, device) -> list[str]:
    """Run a copy of the layer forward and backward on num_tokens tokens; compare with the float64 reference.

    Compared: the output (with and without autograd), the gradients of the expert parameters, the gradient
    reaching the plan's weights (what the router's backward receives), and x's gradient through the experts
    (x's gradient less the router's share, the router's backward of that weight gradient). Each entry may
    differ by (gamma_n(dtype) + gamma_n(float64)) times its magnitude (layer_reference.magnitudes), n from
    ``moe_chain_length``. Returns one message per quantity out of bounds.
    """
    trained = copy.deepcopy(layer)
    trained.zero_grad(set_to_none=True)
    bank = bank_of(trained)
    dtype = bank.w_in.dtype
    x, upstream, ids = _inputs(trained, num_tokens, seed=num_tokens, device=device)
    x_leaf = x.clone().requires_grad_()
    y, plan = _call(trained, x_leaf, ids, return_plan=True)
    if y.shape != x.shape:
        return [f"T={num_tokens}: the output has shape {tuple(y.shape)}, not x's {tuple(x.shape)}"]
    weight = plan.weight
    tracked = weight.requires_grad
    if tracked:
        weight.retain_grad()
    (y * upstream).sum().backward(retain_graph=tracked)  # kept for the router's share of x's gradient
    x_grad = _zeros_if_none(x_leaf.grad, x)
    weight_grad = _zeros_if_none(weight.grad, weight).clone() if tracked else None  # the next call adds to it
    router_share = torch.zeros_like(x)
    if tracked:
        (share,) = torch.autograd.grad(weight, x_leaf, weight_grad, allow_unused=True)
        router_share = _zeros_if_none(share, x)
    with torch.no_grad():
        y_inference = _call(trained, x, ids)

    token, expert = plan.token_index.long().cpu(), plan.expert_index.long().cpu()
    params = layer_tensors(trained)
    x64 = x.detach().cpu().double().requires_grad_()
    w64 = weight.detach().cpu().double().requires_grad_()
    p64 = {name: p.detach().cpu().double().requires_grad_() for name, p in params.items()}
    y64 = reference_output(trained, x64, token.tolist(), expert.tolist(), w64, p64)
    upstream64 = upstream.cpu().double()
    (y64 * upstream64).sum().backward()

    n = chain_length(trained, num_tokens)
    rounding = gamma(n, dtype) + gamma(n, torch.float64)  # the float32 layer's and the float64 reference's
    x_abs = x64.detach().abs().requires_grad_()
    w_abs = w64.detach().abs().requires_grad_()
    p_abs = {name: p.detach().abs().requires_grad_() for name, p in p64.items()}
    magnitude = magnitudes(trained, x_abs, x64.detach(), token, expert, w_abs, p_abs,
                           {name: p.detach() for name, p in p64.items()}, dtype, gamma(n, dtype))
    if magnitude.requires_grad:
        (magnitude * upstream64.abs()).sum().backward()
    magnitude = magnitude.detach()

    # x's gradient through the experts is read as (x.grad - router share), two more roundings of those values
    subtraction = 2 * unit_roundoff(dtype) * (x_grad.detach().cpu().double().abs()
                                              + router_share.detach().cpu().double().abs())
    comparisons = [
        ("output", y, y64, rounding * magnitude),
        ("output without autograd", y_inference, y64, rounding * magnitude),
        ("grad of x through the experts", x_grad - router_share, _zeros_if_none(x64.grad, x64),
         rounding * _zeros_if_none(x_abs.grad, x64) + subtraction),
    ]
    for name, parameter in params.items():
        comparisons.append((f"grad of {name}", _zeros_if_none(parameter.grad, parameter),
                            _zeros_if_none(p64[name].grad, p64[name]),
                            rounding * _zeros_if_none(p_abs[name].grad, p64[name])))
    if tracked:
        comparisons.append(("grad of the plan weights", weight_grad, w64.grad,
                            rounding * _zeros_if_none(w_abs.grad, w64)))
    found = (_violation(label, got, expected.detach(), bound) for label, got, expected, bound in comparisons)
    return [f"T={num_tokens}: {message}" for message in found if message is not None]


def _always(layer) -> bool:
    return True


def _bounded_rounding(layer) -> bool:
    # gamma_n exists for n u < 1 only: float32 and float64 layers; bfloat16 (u = 2^-9) bounds no T = 1000 run
    n = chain_length(layer, max(REFERENCE_TOKENS))
    return n * unit_roundoff(bank_of(layer).w_in.dtype) < 1


def _capacity_knobs(layer) -> bool:
    router = layer.router
    return (hasattr(router, "capacity") and hasattr(router, "capacity_factor")
            and capabilities_of(router).assignments_per_token is not None)


@clause(_bounded_rounding, "the experts' dtype bounds the rounding of 1000 tokens (float32, float64)")
def check_moe_layer_matches_reference(layer, *, device="cpu"):
    """Output and gradients agree with the float64 per-token reference within float rounding bounds, at
    T = 1, 37 and 1000 tokens (see ``compare_with_reference``)."""
    problems = [message for num_tokens in REFERENCE_TOKENS
                for message in compare_with_reference(layer, num_tokens, device)]
    assert not problems, "; ".join(problems)


@clause(_always, "always")
def check_moe_layer_deterministic(layer, *, device="cpu"):
    """Two copies of the layer give the same bits: outputs with and without autograd, and every gradient of
    one forward + backward, whatever the global RNG holds."""
    x, upstream, ids = _inputs(layer, DETERMINISM_TOKENS, seed=DETERMINISM_TOKENS, device=device)
    runs = []
    for scramble in (1, 2):
        variant = copy.deepcopy(layer)
        variant.zero_grad(set_to_none=True)
        with global_rng_seeded(scramble, device):
            x_leaf = x.clone().requires_grad_()
            y = _call(variant, x_leaf, ids)
            (y * upstream).sum().backward()
            with torch.no_grad():
                y_inference = _call(variant, x, ids)
        run = {"output": y, "output without autograd": y_inference, "grad of x": x_leaf.grad}
        run.update({f"grad of {name}": p.grad for name, p in variant.named_parameters()})
        runs.append(run)
    differ = [name for name in runs[0] if not same_bits(runs[0][name], runs[1][name])]
    assert not differ, f"two runs on the same batch differ in: {', '.join(differ)}"


@clause(_capacity_knobs, "the router has capacity and capacity_factor attributes (as TopKRouter)")
def check_moe_layer_dropless_matches_ample_capacity(layer, *, device="cpu"):
    """The router with capacity = T k (more than any expert's load) drops nothing and gives the same bits as
    the dropless router (capacity and capacity_factor None): plan, output and x's gradient."""
    x, upstream, ids = _inputs(layer, DETERMINISM_TOKENS, seed=DETERMINISM_TOKENS + 7, device=device)
    ample = DETERMINISM_TOKENS * capabilities_of(layer.router).assignments_per_token
    runs = []
    for capacity in (None, ample):
        variant = copy.deepcopy(layer)
        variant.router.capacity_factor, variant.router.capacity = None, capacity
        with global_rng_seeded(0, device):  # one global RNG state for both: only the capacity differs
            x_leaf = x.clone().requires_grad_()
            y, plan = _call(variant, x_leaf, ids, return_plan=True)
            (y * upstream).sum().backward()
        runs.append((y, plan, x_leaf.grad))
    (y0, dropless, g0), (y1, capped, g1) = runs
    assert capped.dropped == 0, f"capacity {ample} >= T k still drops {capped.dropped} assignments"
    for name in ("token_index", "expert_index", "weight"):
        assert same_bits(getattr(dropless, name), getattr(capped, name)), (
            f"plan.{name} differs between the dropless router and capacity {ample}")
    assert same_bits(y0, y1), f"the output differs between the dropless router and capacity {ample}"
    assert same_bits(g0, g1), f"x's gradient differs between the dropless router and capacity {ample}"


def _expect_layer_error(layer, x, ids, kinds: tuple, label: str) -> str:
    try:
        _call(layer, x, ids)
    except kinds as error:
        assert str(error), f"{label} raises {type(error).__name__} without a message"
        return str(error)
    raise AssertionError(f"{label} is accepted without a {' or '.join(k.__name__ for k in kinds)}")


@clause(_always, "always")
def check_moe_layer_rejects_bad_input(layer, *, device="cpu"):
    """NaN/Inf entries and a wrong width get a ValueError naming the problem, a 0-dim x a ValueError, integer
    x or a list a TypeError, and x in a float dtype other than the experts' a TypeError or ValueError."""
    x, _, ids = _inputs(layer, BAD_INPUT_TOKENS, seed=BAD_INPUT_TOKENS, device=device)
    d_model = layer.d_model
    for bad in (math.nan, math.inf, -math.inf):
        poisoned = x.clone()
        poisoned[BAD_INPUT_TOKENS // 2, d_model // 2] = bad
        message = _expect_layer_error(layer, poisoned, ids, (ValueError,), f"x holding {bad}").lower()
        assert "nan" in message or "inf" in message, (
            f"x holding {bad} gets an error not naming NaN/Inf: {message}")
    wide = tokens(BAD_INPUT_TOKENS, d_model + 1, 0, device, x.dtype)
    message = _expect_layer_error(layer, wide, ids, (ValueError,), f"x of width {d_model + 1}")
    assert str(d_model) in message, f"x of width {d_model + 1} gets an error not naming {d_model}: {message}"
    _expect_layer_error(layer, x[0, 0], ids, (ValueError,), "a 0-dim x")
    _expect_layer_error(layer, x.to(torch.int64), ids, (TypeError,), "integer x")
    _expect_layer_error(layer, x.tolist(), ids, (TypeError,), "x as a list")
    other = torch.float64 if x.dtype != torch.float64 else torch.float32
    _expect_layer_error(layer, x.to(other), ids, (TypeError, ValueError), f"{other} x into {x.dtype} experts")


@clause(_always, "always")
def check_moe_layer_empty_batch(layer, *, device="cpu"):
    """x of 0 tokens, (0, d_model) or (2, 0, d_model), gives an output of its shape and an empty plan; where
    the output requires grad, its backward runs."""
    variant = copy.deepcopy(layer)
    dtype = bank_of(variant).w_in.dtype
    for shape in ((0, variant.d_model), (2, 0, variant.d_model)):
        x = torch.zeros(shape, dtype=dtype, device=device, requires_grad=True)
        ids = torch.zeros(shape[:-1], dtype=torch.int64, device=device)
        y, plan = _call(variant, x, ids, return_plan=True)
        assert y.shape == shape, f"x of shape {shape} gives an output of shape {tuple(y.shape)}"
        assert plan.num_tokens == 0 and plan.num_assignments == 0, (f"x of shape {shape} gives a plan of "
                                                                     f"{plan.num_tokens} tokens, "
                                                                     f"{plan.num_assignments} assignments")
        if y.requires_grad:
            y.sum().backward()


MOE_LAYER_CLAUSES = (
    check_moe_layer_matches_reference,
    check_moe_layer_deterministic,
    check_moe_layer_dropless_matches_ample_capacity,
    check_moe_layer_rejects_bad_input,
    check_moe_layer_empty_batch,
)


def moe_layer_clauses(layer) -> list:
    """The clauses of MOE_LAYER_CLAUSES that apply to the layer, in order."""
    return [check for check in MOE_LAYER_CLAUSES if check.applies(layer)]


def check_moe_layer(layer, *, device="cpu") -> None:
    """Run every clause that applies to the layer; raise one AssertionError naming each that fails."""
    clauses = moe_layer_clauses(layer)
    run_clauses(f"{type(layer).__name__}", clauses, lambda check: check(layer, device=device))
