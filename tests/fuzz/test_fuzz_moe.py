"""Fuzz MoELayer (every dispatch, with and without a shared expert), the dispatch functions and ExpertBank.

Results are compared with a float64 evaluation of the same plan: every strategy must agree with it within
``n u M`` (n: the length of the longest chain of rounded operations per output, u: the unit roundoff of the
computation's dtype, M: the same sum with every term replaced by its magnitude; a Higham-style bound).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from fuzzing import (
    rarely,
    DEVICES,
    assert_finite,
    fuzz,
    in_range,
    is_float,
    is_int,
    malformed,
    maybe_bad,
    outcome,
    tensors,
    unit_roundoff,
)
from sparse_bench import ExpertBank, MoELayer, SharedExpert
from sparse_bench.dispatch import DISPATCHERS
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter

ROUTER_KINDS = ("switch", "mixtral", "capacity", "expert_choice", "sinkhorn", "hash_input", "hash_ids", "lsh",
                "pstable")
BANK_DTYPES = (torch.float32, torch.float32, torch.float64, torch.bfloat16, torch.float16)
LIPSCHITZ = 2.2  # relu, gelu (|gelu'| <= 1.13) and the two-sided error of swiglu's product (<= 2.1)


def make_router(kind: str, d: int, E: int):
    gen = torch.Generator().manual_seed(1)
    k = min(2, E)
    return {
        "switch": lambda: TopKRouter(d, E, k=1, generator=gen),
        "mixtral": lambda: TopKRouter(d, E, k=k, normalize=True, generator=gen),
        "capacity": lambda: TopKRouter(d, E, k=k, capacity_factor=0.5, drop_policy="probability",
                                       generator=gen),
        "expert_choice": lambda: ExpertChoiceRouter(d, E, 1.5, generator=gen),
        "sinkhorn": lambda: SinkhornRouter(d, E, k=k, iterations=30, generator=gen),
        "hash_input": lambda: HashRouter(E, key="input", seed=2),
        "hash_ids": lambda: HashRouter(E, seed=3),
        "lsh": lambda: LSHRouter(d, E, num_tables=2, seed=4),
        "pstable": lambda: LSHRouter(d, E, family="pstable", width=1.0, seed=5),
    }[kind]()


def bank_params64(bank: ExpertBank):
    params = (bank.w_in, bank.w_out, bank.b_in, bank.b_out)
    return [None if p is None else p.detach().double().cpu() for p in params]


def expert64(x, params, e, activation, magnitude: bool):
    """One expert in float64 on rows x (n, d); with magnitude=True every term by its absolute value."""
    w_in, w_out, b_in, b_out = params
    f = torch.abs if magnitude else (lambda t: t)
    pre = f(x) @ f(w_in[e]) + (f(b_in[e]) if b_in is not None else 0.0)
    h = w_out.shape[1]
    if activation == "swiglu":
        gate, up = pre[:, :h], pre[:, h:]
        act = gate * up if magnitude else F.silu(gate) * up
    else:
        act = pre if magnitude else (torch.relu(pre) if activation == "relu" else F.gelu(pre))
    return f(act) @ f(w_out[e]) + (f(b_out[e]) if b_out is not None else 0.0)


def reference64(x, plan, bank, magnitude: bool = False):
    """(T, d) float64: the plan's combine of the bank's experts, or its magnitude bound M."""
    x64 = x.detach().double().cpu()
    params = bank_params64(bank)
    y = torch.zeros_like(x64)
    tokens, experts = plan.token_index.cpu(), plan.expert_index.cpu()
    weights = plan.weight.detach().double().cpu()
    for e in experts.unique().tolist():
        rows = tokens[experts == e]
        w = weights[experts == e].unsqueeze(1)
        out = expert64(x64[rows], params, e, bank.activation, magnitude)
        y.index_add_(0, rows, (w.abs() if magnitude else w) * out)
    return y


def shared64(x, shared: SharedExpert, magnitude: bool = False):
    x64 = x.detach().double().cpu()
    out = expert64(x64, bank_params64(shared.expert), 0, shared.expert.activation, magnitude)
    if shared.gate is None:
        return out
    gate = shared.gate.detach().double().cpu()
    if magnitude:  # |sigmoid| <= 1, plus the gate's own rounding through sigmoid' <= 1/4
        return out * (1 + 0.25 * (x64.abs() @ gate.abs())).unsqueeze(1)
    return torch.sigmoid(x64 @ gate).unsqueeze(1) * out


def error_bound(bank: ExpertBank, plan, dtype) -> float:
    """n u L: the rounded operations along one output (two products, the combine, biases, weight casts)."""
    h = bank.w_out.shape[1]
    most = int(plan.token_counts().max()) if plan.num_tokens else 0
    n = bank.d_model + h + most + 6
    u = unit_roundoff(dtype)
    return LIPSCHITZ * n * u / (1 - n * u) if n * u < 1 else math.inf


def assert_close_to_reference(y, expected, magnitude, bound, what):
    err = (y.detach().double().cpu() - expected).abs()
    allowed = bound * magnitude + torch.finfo(y.dtype).tiny  # subnormal results: one ulp of absolute slack
    worst = float((err - allowed).max()) if err.numel() else 0.0
    assert worst <= 0, f"{what}: off the float64 value by more than n u M (excess {worst:.3g})"


@st.composite
def banks(draw):
    E, d, h = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    activation = draw(st.sampled_from(["relu", "gelu", "swiglu"]))
    bank = ExpertBank(E, d, h, activation, bias=draw(st.booleans()),
                      generator=torch.Generator().manual_seed(draw(st.integers(0, 99))),
                      prepack=draw(st.booleans()))
    return bank.to(draw(st.sampled_from(BANK_DTYPES)))


@st.composite
def layer_input(draw, d, dtype, device):
    lead = draw(st.lists(st.integers(0, 4), min_size=0, max_size=2))
    width = d + 1 if rarely(draw, 9) else d
    shape = () if rarely(draw, 12) else (*lead, width)
    x = draw(tensors(shape, dtypes=(dtype,) * 6 + (torch.float32, torch.float64), device=device))
    shape_ok = x.dim() >= 1 and x.shape[-1] == d and x.dtype == dtype
    return x, in_range(x) and shape_ok, malformed(x, shape_ok)


def check_moe_layer(bank, kind, dispatch, shared_kind, grad, device, data):
    E, d, dtype = bank.num_experts, bank.d_model, bank.w_in.dtype
    router = make_router(kind, d, E)
    shared = None
    if shared_kind != "none":
        one = ExpertBank(1, d, data.draw(st.integers(1, 4)), bank.activation, bias=bank.has_bias).to(dtype)
        gate = None if shared_kind == "ungated" else data.draw(tensors((d,), dtypes=(dtype,),
                                                                       other_dtypes=False))
        ok_gate = gate is None or bool(torch.isfinite(gate).all())
        shared = outcome(lambda: SharedExpert(one, gate), {"gate"}, ok_gate, not ok_gate)
        in_range_gate = gate is None or in_range(gate)  # a huge gate may overflow x @ gate: a named error
        if shared is None:
            return
    layer = outcome(lambda: MoELayer(router, bank, dispatch, shared), {"dispatch"}, dispatch in DISPATCHERS,
                    dispatch not in DISPATCHERS)
    if layer is None:
        return
    layer.to(device)
    x, ok, bad_x = data.draw(layer_input(d, dtype, device))
    ok = ok and (shared is None or in_range_gate)
    ids = None
    if kind == "hash_ids" and isinstance(x, torch.Tensor) and x.dim() >= 1:
        ids = torch.arange(x[..., 0].numel(), dtype=torch.int64, device=device).reshape(x.shape[:-1]) * 7919
    if grad and is_float(x):
        x = x.detach().requires_grad_(True)
    with torch.set_grad_enabled(grad):
        result = outcome(lambda: layer(x, token_ids=ids, return_plan=True), {"x", "logits"}, ok, bad_x)
    if result is None:
        return
    y, plan = result
    assert y.shape == x.shape and y.dtype == x.dtype
    assert_finite(y, "MoELayer output")
    tokens = x.detach().reshape(-1, d)
    expected = reference64(tokens, plan, bank)
    magnitude = reference64(tokens, plan, bank, magnitude=True)
    if shared is not None:
        expected, magnitude = expected + shared64(tokens, shared), magnitude + shared64(tokens, shared, True)
    bound = error_bound(bank, plan, dtype)
    assert_close_to_reference(y.reshape(-1, d), expected, magnitude, bound, f"MoELayer({dispatch})")
    if grad and y.numel() and ok:  # in range: the backward cannot overflow either
        y.backward(torch.ones_like(y))
        assert_finite(x.grad, "grad of x")
        for name, p in bank.named_parameters():
            if p.grad is not None:
                assert_finite(p.grad, f"grad of {name}")


test_moe_layer, test_moe_layer_long = fuzz(
    bank=banks(), kind=st.sampled_from(ROUTER_KINDS),
    dispatch=st.sampled_from(sorted(DISPATCHERS) * 3 + ["magic", None]),
    shared_kind=st.sampled_from(["none", "none", "ungated", "gated"]), grad=st.booleans(),
    device=st.sampled_from(DEVICES), data=st.data(),
)(check_moe_layer)


def check_dispatch_functions(bank, kind, data):
    """Every strategy on one plan, called directly: the same function of (x, plan, bank)."""
    E, d, dtype = bank.num_experts, bank.d_model, bank.w_in.dtype
    T = data.draw(st.integers(0, 7))
    x = data.draw(tensors((T, d), dtypes=(dtype,), other_dtypes=False))
    router = make_router(kind, d, E)
    ids = torch.arange(T, dtype=torch.int64)
    plan = outcome(lambda: router(x, token_ids=ids), {"x", "logits"}, in_range(x))
    if plan is None:
        return
    every_token_routed = T == 0 or bool(plan.token_counts().min() > 0)
    expected, magnitude = reference64(x, plan, bank), reference64(x, plan, bank, magnitude=True)
    bound = error_bound(bank, plan, dtype)
    for name, dispatch in sorted(DISPATCHERS.items()):
        with torch.no_grad():
            y = outcome(lambda: dispatch(x, plan, bank), {"x"}, in_range(x),
                        every_token_routed and malformed(x))
        if y is None:
            continue
        assert y.shape == x.shape and y.dtype == x.dtype
        assert_finite(y, f"dispatch {name}")
        assert_close_to_reference(y, expected, magnitude, bound, f"dispatch {name}")
    # the wrong x for the plan: a clear error naming what does not match
    other = torch.randn(T + 1, d, dtype=dtype)
    for name, dispatch in sorted(DISPATCHERS.items()):
        outcome(lambda: dispatch(other, plan, bank), {"x", "plan"}, False, True)
        other_dtype = torch.float64 if dtype != torch.float64 else torch.float32
        outcome(lambda: dispatch(x.to(other_dtype), plan, bank), {"x"}, False, True)
        outcome(lambda: dispatch(x.tolist(), plan, bank), {"x"}, False, True)
        outcome(lambda: dispatch(torch.zeros_like(x), plan.token_index, bank), {"plan"}, False, True)


test_dispatch_functions, test_dispatch_functions_long = fuzz(
    bank=banks(), kind=st.sampled_from(ROUTER_KINDS), data=st.data(), examples=0.5,
)(check_dispatch_functions)


def check_expert_bank(num_experts, d_model, d_hidden, activation, bias, generator, prepack, data):
    valid = {"num_experts": is_int(num_experts, 1, 64), "d_model": is_int(d_model, 1, 64),
             "d_hidden": is_int(d_hidden, 1, 64), "activation": activation in ("relu", "gelu", "swiglu"),
             "bias": isinstance(bias, bool), "prepack": isinstance(prepack, bool),
             "generator": generator in (None, "gen")}
    generator = torch.Generator().manual_seed(0) if generator == "gen" else generator
    bad = {name for name, ok in valid.items() if not ok}
    bank = outcome(lambda: ExpertBank(num_experts, d_model, d_hidden, activation, bias, generator, prepack),
                   bad, not bad, bool(bad))
    if bank is None:
        return
    for p in bank.parameters():
        assert_finite(p, "expert weights")
    rows = data.draw(tensors((data.draw(st.integers(0, 5)), d_model), dtypes=(torch.float32,),
                             other_dtypes=False))
    counts = torch.zeros(num_experts, dtype=torch.int64)
    counts[data.draw(st.integers(0, num_experts - 1))] = rows.shape[0]
    with torch.no_grad():
        out = bank.forward_grouped(rows, counts)
        slab = bank.forward_batched(rows.unsqueeze(0).expand(num_experts, -1, -1).contiguous())
    assert out.shape == rows.shape and slab.shape == (num_experts, *rows.shape)
    if in_range(rows):
        assert_finite(out, "forward_grouped")
        assert_finite(slab, "forward_batched")


test_expert_bank, test_expert_bank_long = fuzz(
    num_experts=maybe_bad(st.integers(1, 5), odds=9), d_model=maybe_bad(st.integers(1, 6), odds=9),
    d_hidden=maybe_bad(st.integers(1, 6), odds=9),
    activation=maybe_bad(st.sampled_from(["relu", "gelu", "swiglu"]), ("tanh", None, 1), odds=9),
    bias=maybe_bad(st.booleans(), (None, 0, 1, "no"), odds=9),
    generator=maybe_bad(st.sampled_from([None, "gen"]), ("no", 1), odds=9),
    prepack=maybe_bad(st.booleans(), (None, 0, 1, "no"), odds=9), data=st.data(),
)(check_expert_bank)
