"""The reference backend (device-neutral PyTorch, forced onto CPU tensors) against the CPU kernels: outputs
and gradients of the experts, routers, hashing and convolution agree within a rounding bound.

Bound: each computation lies within gamma_n of the exact value times the same computation on absolute values
(``sparse_bench.testing.rounding``; n the most roundings along one chain), so the two lie within 2 gamma_n
of each other. Every check also shows that it can fail: the CPU result scaled by 1 + PLANTED must violate it.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from sparse_bench import kernels
from sparse_bench.blocks import conv2d_im2col
from sparse_bench.dispatch import DISPATCHERS
from sparse_bench.experts import ExpertBank
from sparse_bench.hashing import PStableHash, SimHash, project
from sparse_bench.moe import MoELayer
from sparse_bench.routing import TopKRouter
from sparse_bench.testing.layer_reference import layer_tensors, magnitudes
from sparse_bench.testing.rounding import ELEMENTWISE_ROUNDINGS, gamma, moe_chain_length, reordering_rtol

DTYPES = (torch.float32, torch.float64)
PLANTED = 0.05  # relative error planted in the negative controls: a wrong or lost term among some twenty


def both(fn):
    """fn() on the CPU backend and on the reference backend forced onto the same CPU tensors."""
    got = fn()
    with kernels.use_backend("reference"):
        want = fn()
    return got, want


def assert_within(got: torch.Tensor, want: torch.Tensor, bound: torch.Tensor, label: str) -> None:
    """|got - want| <= bound entrywise, and the check rejects got scaled by 1 + PLANTED."""
    assert got.shape == want.shape, label
    gap = (got.double() - want.double()).abs()
    worst = float((gap - bound).max())
    assert worst <= 0, f"{label}: the backends differ by {worst:.3g} over the bound"
    planted = (got.double() * (1 + PLANTED) - want.double()).abs()
    assert bool((planted > bound).any()), f"{label}: the bound cannot see a planted error"


# --- experts and dispatch ---------------------------------------------------------------------------------

E, D, H, T = 6, 24, 16, 40


def expert_case(dtype, prepack=False):
    gen = torch.Generator().manual_seed(5)
    router = TopKRouter(D, E, k=2, normalize=True, generator=gen).to(dtype)
    bank = ExpertBank(E, D, H, activation="swiglu", generator=gen, prepack=prepack).to(dtype)
    x = torch.randn(T, D, generator=gen, dtype=dtype)
    upstream = torch.randn(T, D, generator=gen, dtype=dtype)
    with torch.no_grad():
        plan = router(x)
    return MoELayer(router, bank), x, upstream, plan


def expert_bounds(layer, x, upstream, token, expert, weight):
    """2 gamma_n times the magnitudes of y[t] = sum over assignments (t, e, w) of w * expert_e(x[t]) and of
    the gradients of x, the weights w and the expert weights (``layer_reference.magnitudes``: the layer on
    absolute values with majorant activations, differentiated by autograd); n from ``moe_chain_length``."""
    dtype = x.dtype
    n = moe_chain_length(D, H, E, x.shape[0])
    params = layer_tensors(layer)
    p64 = {name: p.detach().double() for name, p in params.items()}
    p_abs = {name: p.abs().requires_grad_() for name, p in p64.items()}
    x_abs = x.detach().double().abs().requires_grad_()
    w_abs = weight.detach().double().abs().requires_grad_()
    magnitude = magnitudes(layer, x_abs, x.detach().double(), token, expert, w_abs, p_abs, p64, dtype,
                           gamma(n, dtype))
    (magnitude * upstream.double().abs()).sum().backward()
    scale = 2 * gamma(n, dtype)
    return {"output": scale * magnitude.detach(), "x": scale * x_abs.grad, "plan weights": scale * w_abs.grad,
            "w_in": scale * p_abs["experts.w_in"].grad, "w_out": scale * p_abs["experts.w_out"].grad}


def dispatch_outputs(dispatch, layer, x, upstream, plan, grad):
    """The dispatcher's output and, with grad, the gradients of x, the plan's weights, w_in and w_out."""
    bank = layer.experts
    if not grad:
        with torch.no_grad():
            return {"output": DISPATCHERS[dispatch](x, plan, bank)}
    x = x.clone().requires_grad_()
    plan = dataclasses.replace(plan, weight=plan.weight.detach().clone().requires_grad_())
    y = DISPATCHERS[dispatch](x, plan, bank)
    grads = torch.autograd.grad((y * upstream).sum(), (x, plan.weight, bank.w_in, bank.w_out))
    return {"output": y.detach(), **dict(zip(("x", "plan weights", "w_in", "w_out"), grads))}


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("dispatch", ["sorted", "padded", "grouped"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dispatch_on_cpu_kernels_agrees_with_the_reference(dtype, dispatch, grad):
    layer, x, upstream, plan = expert_case(dtype)
    got, want = both(lambda: dispatch_outputs(dispatch, layer, x, upstream, plan, grad))
    assert set(got) == set(want) == ({"output", "x", "plan weights", "w_in", "w_out"} if grad else {"output"})
    bounds = expert_bounds(layer, x, upstream, plan.token_index, plan.expert_index, plan.weight)
    for name in got:
        assert_within(got[name], want[name], bounds[name], f"{dispatch} {name}")


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("layout", ["grouped", "batched"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_expert_layouts_agree_with_the_reference(dtype, layout, grad):
    """ExpertBank's two layouts directly: the fused SwiGLU (grouped rows on oneDNN products, the slab with
    its own backward) against the reference's per-expert products and plain batched matmuls. Each row is its
    own token of weight 1 for the bound."""
    layer, x, upstream, _ = expert_case(dtype)
    bank = layer.experts
    counts = torch.tensor([4, 0, 9, 7, 13, 7]) if layout == "grouped" else torch.full((E,), 6)  # 40, 36 rows
    rows, upstream = x[:int(counts.sum())], upstream[:int(counts.sum())]

    def run():
        leaf = rows.clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out = (bank.forward_grouped(leaf, counts) if layout == "grouped"
                   else bank.forward_batched(leaf.view(E, 6, D)).view(-1, D))
        if not grad:
            return {"output": out}
        grads = torch.autograd.grad((out * upstream).sum(), (leaf, bank.w_in, bank.w_out))
        return {"output": out.detach(), **dict(zip(("x", "w_in", "w_out"), grads))}

    got, want = both(run)
    token = torch.arange(rows.shape[0])
    bounds = expert_bounds(layer, rows, upstream, token, torch.arange(E).repeat_interleave(counts),
                           torch.ones(rows.shape[0], dtype=dtype))
    for name in got:
        assert_within(got[name], want[name], bounds[name], f"{layout} {name}")


def test_prepacked_sorted_forward_agrees_with_the_reference():
    layer, x, upstream, plan = expert_case(torch.float32, prepack=True)
    assert layer.experts.prepack_applies()
    with kernels.use_backend("reference"):
        assert not layer.experts.prepack_applies()  # the reference never prepacks
    got, want = both(lambda: dispatch_outputs("sorted", layer, x, upstream, plan, grad=False))
    bounds = expert_bounds(layer, x, upstream, plan.token_index, plan.expert_index, plan.weight)
    assert_within(got["output"], want["output"], bounds["output"], "prepacked")


# --- routers ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_experts", [6, 20])  # below and above the CPU softmax's transposed-layout limit
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_router_logits_softmax_and_plan_agree_with_the_reference(dtype, num_experts):
    d, tokens = 48, 64
    gen = torch.Generator().manual_seed(11)
    router = TopKRouter(d, num_experts, k=2, normalize=False, generator=gen).to(dtype)
    x = torch.randn(tokens, d, generator=gen, dtype=dtype)
    with torch.no_grad():  # the CPU backend's linear runs on oneDNN without autograd (float32)
        logits, ref_logits = both(lambda: router.logits(x))
    magnitude = x.double().abs() @ router.weight.detach().double().abs().t()  # (T, E)
    assert_within(logits, ref_logits, 2 * gamma(d, dtype) * magnitude, "logits")

    probs, ref_probs = both(lambda: kernels.expert_softmax(ref_logits))
    # logits of order one (standard-normal x through a gate scaled like d^-1/2): reordering_rtol's setting
    softmax_bound = 2 * gamma(num_experts + ELEMENTWISE_ROUNDINGS, dtype) * ref_probs.double()
    assert_within(probs, ref_probs, softmax_bound, "softmax")

    plan, ref_plan = both(lambda: router.plan_from_logits(ref_logits))
    top = ref_probs.double().topk(3, dim=1).values  # the top-2 choice is the same where it has a margin
    assert bool((top[:, 1] - top[:, 2] > 2 * softmax_bound.max()).all())
    assert torch.equal(plan.token_index, ref_plan.token_index)
    assert torch.equal(plan.expert_index, ref_plan.expert_index)
    weight_bound = reordering_rtol(d, num_experts, dtype) * ref_plan.weight.double().abs()
    assert_within(plan.weight, ref_plan.weight, weight_bound, "plan weights")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_router_gradients_agree_with_the_reference(dtype):
    d, num_experts, tokens = 32, 8, 50
    gen = torch.Generator().manual_seed(12)
    router = TopKRouter(d, num_experts, k=2, normalize=True, generator=gen).to(dtype)
    x = torch.randn(tokens, d, generator=gen, dtype=dtype)
    upstream = torch.randn(tokens, num_experts, generator=gen, dtype=dtype)

    def run():
        leaf = x.clone().requires_grad_()
        logits = router.logits(leaf)
        return (logits.detach(), *torch.autograd.grad((logits * upstream).sum(), (leaf, router.weight)))

    got, want = both(run)
    x_abs, w_abs, up_abs = x.double().abs(), router.weight.detach().double().abs(), upstream.double().abs()
    scale = 2 * gamma(max(d, tokens), dtype)  # logits sum over d; weight gradients over the T tokens
    bounds = (scale * x_abs @ w_abs.t(), scale * up_abs @ w_abs, scale * up_abs.t() @ x_abs)
    for label, a, b, bound in zip(("logits", "grad x", "grad weight"), got, want, bounds):
        assert_within(a, b, bound, label)


# --- hashing ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_hash_projections_and_buckets_agree_with_the_reference(dtype):
    d, rows = 40, 300
    x = torch.randn(rows, d, generator=torch.Generator().manual_seed(3), dtype=dtype)
    simhash, pstable = SimHash(d, bits=12, seed=4), PStableHash(d, num_hashes=6, width=2.0, seed=4)
    for directions in (simhash.directions, pstable.directions):
        got, want = both(lambda: project(x, directions))
        bound = 2 * gamma(d, dtype) * (x.double().abs() @ directions.to(dtype).double().abs())
        assert_within(got, want, bound, "projection")
    # a bucket moves only where a projection lies within the bound of its cell's edge: none does here
    signs_margin = project(x, simhash.directions).double().abs()
    assert bool((signs_margin > 2 * gamma(d, dtype) * (x.double().abs() @ simhash.directions.abs())).all())
    buckets, ref_buckets = both(lambda: simhash.bucket(x))
    assert torch.equal(buckets, ref_buckets)
    codes, ref_codes = both(lambda: pstable.codes(x))
    cells = (project(x, pstable.directions).double() + pstable.offsets) / pstable.width
    edge = (cells - cells.round()).abs() * pstable.width
    # + 1 rounding for the offset, 1 for the division by the width
    pstable_bound = 2 * gamma(d + 2, dtype) * (x.double().abs() @ pstable.directions.abs() + pstable.offsets)
    assert bool((edge > pstable_bound).all())
    assert torch.equal(codes, ref_codes)


# --- convolution ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_conv_im2col_agrees_with_the_reference(dtype, grad):
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(2, 5, 11, 9, generator=gen, dtype=dtype)
    w = torch.randn(7, 5, 3, 3, generator=gen, dtype=dtype)
    b = torch.randn(7, generator=gen, dtype=dtype)
    upstream = torch.randn(2, 7, 9, 5, generator=gen, dtype=dtype)  # the output: (N, C_out, H_out, W_out)
    kw = dict(stride=(1, 2), padding=(0, 1))

    def run():
        if not grad:
            with torch.no_grad():
                return (conv2d_im2col(x, w, b, **kw),)
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        out = conv2d_im2col(*leaves, **kw)
        return (out.detach(), *torch.autograd.grad((out * upstream).sum(), leaves))

    got, want = both(run)
    # on absolute values, with the same autograd giving the gradients' magnitudes; K = C_in kH kW terms + bias
    abs_leaves = [t.double().abs().requires_grad_() for t in (x, w, b)]
    magnitude = F.conv2d(*abs_leaves, **kw)
    (magnitude * upstream.double().abs()).sum().backward()
    scale = 2 * gamma(5 * 3 * 3 + 1 + 2 * 9 * 5, dtype)  # the weight gradients sum over N H_out W_out
    bounds = [scale * magnitude.detach()] + [scale * t.grad for t in abs_leaves]
    for label, a, b_, bound in zip(("output", "grad x", "grad weight", "grad bias"), got, want, bounds):
        assert_within(a, b_, bound, label)
