"""Every router x dispatch x activation against the float64 per-token reference: plan, output, gradients."""

from __future__ import annotations

import pytest
import torch
from moe_cases import (
    ACTIVATIONS,
    D_HIDDEN,
    D_MODEL,
    DEVICES,
    NUM_EXPERTS,
    ROUTERS,
    assignment_set,
    make_router,
    numpy_seed_tokens,
    plan_pairs,
    reference_assignments,
    relative_error,
)
from torch.autograd.gradcheck import GradcheckError

from sparse_bench import ExpertBank, MoELayer, reference
from sparse_bench.kernels.cpu import dispatch as cpu_dispatch
from sparse_bench.bench.timing import peak_bytes
from sparse_bench.dispatch import DISPATCHERS
from sparse_bench.routing import TopKRouter

FP32_REL_TOL = 1e-5  # fp32 max abs error relative to the float64 reference's scale


def run_against_reference(router_name, dispatch, activation, num_tokens, bias=False, seed=0, device="cpu"):
    """The layer on ``device`` against the float64 per-token reference, computed on CPU from the same router
    and weights before the layer moves (so the reference never runs on the device under test)."""
    router = make_router(router_name, seed=seed)
    bank = ExpertBank(
        NUM_EXPERTS,
        D_MODEL,
        D_HIDDEN,
        activation=activation,
        bias=bias,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    x_cpu = numpy_seed_tokens(num_tokens, seed=seed + 2)
    upstream = numpy_seed_tokens(num_tokens, seed=seed + 3)

    x64 = x_cpu.double().requires_grad_()
    learned = hasattr(router, "weight")
    w_router = router.weight.detach().double().requires_grad_() if learned else None
    params = {name: getattr(bank, name).detach().double().requires_grad_() for name in ("w_in", "w_out")}
    if bias:
        params.update(
            {name: getattr(bank, name).detach().double().requires_grad_() for name in ("b_in", "b_out")}
        )
    assignments = reference_assignments(router_name, router, x64, w_router)
    y64 = reference.moe_output(x64, assignments, params, activation)
    (y64 * upstream.double()).sum().backward()

    layer = MoELayer(router, bank, dispatch=dispatch).to(device)
    x = x_cpu.to(device).requires_grad_()
    y, plan = layer(x, return_plan=True)
    (y * upstream.to(device)).sum().backward()

    assert y.device.type == torch.device(device).type
    assert plan_pairs(plan) == assignment_set(assignments), "plan differs from the per-token reference plan"
    assert relative_error(y, y64) < FP32_REL_TOL, "output"
    assert relative_error(x.grad, x64.grad) < FP32_REL_TOL, "grad wrt x"
    for name, p64 in params.items():
        assert relative_error(getattr(bank, name).grad, p64.grad) < FP32_REL_TOL, f"grad wrt experts.{name}"
    if learned:
        assert relative_error(router.weight.grad, w_router.grad) < FP32_REL_TOL, "grad wrt router weight"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dispatch", sorted(DISPATCHERS))
@pytest.mark.parametrize("router_name", ROUTERS)
def test_layer_matches_float64_reference(router_name, dispatch, activation, device):
    run_against_reference(router_name, dispatch, activation, num_tokens=37, device=device)


@pytest.mark.parametrize("router_name", ROUTERS)
@pytest.mark.parametrize("num_tokens", [1, 1000])
def test_extreme_token_counts(router_name, num_tokens):
    run_against_reference(router_name, "sorted", "swiglu", num_tokens=num_tokens)


@pytest.mark.parametrize("dispatch", sorted(DISPATCHERS))
def test_biased_experts(dispatch):
    run_against_reference("mixtral", dispatch, "gelu", num_tokens=29, bias=True)


@pytest.mark.parametrize("chunk_rows", [1, 3, 8])
@pytest.mark.parametrize("router_name", ["mixtral", "expert_choice"])
def test_sorted_in_chunks_matches_reference(router_name, chunk_rows, monkeypatch):
    """CPU "sorted" cut into chunks of a few rows (experts split across chunks and chunks spanning experts)."""
    monkeypatch.setattr(cpu_dispatch, "SORTED_CHUNK_ROWS", chunk_rows)
    run_against_reference(router_name, "sorted", "swiglu", num_tokens=37)


@pytest.mark.parametrize("num_slabs", [7, 3])  # 1 expert per slab; 3 per slab, the last slab partial (7 experts)
@pytest.mark.parametrize("activation,bias", [("swiglu", False), ("gelu", True)])
@pytest.mark.parametrize("router_name", ["mixtral", "expert_choice"])
def test_padded_in_expert_groups_matches_reference(router_name, activation, bias, num_slabs, monkeypatch):
    """CPU "padded" without autograd, its slab cut into groups of experts: the same bits as one slab, and the
    autograd path (one slab, combined in token order) agrees and matches the float64 reference."""
    bank = ExpertBank(NUM_EXPERTS, D_MODEL, D_HIDDEN, activation, bias)
    layer = MoELayer(make_router(router_name, seed=0), bank, dispatch="padded")
    x = numpy_seed_tokens(37, seed=2)
    monkeypatch.setattr(cpu_dispatch, "PADDED_MIN_GROUPS", num_slabs)
    with torch.no_grad():
        cut = layer(x)
    monkeypatch.setattr(cpu_dispatch, "PADDED_MIN_GROUPS", 1)
    with torch.no_grad():
        whole = layer(x)
    assert torch.equal(cut, whole)  # each expert's products and each token's sum order do not depend on the cut
    assert torch.allclose(cut, layer(x).detach(), rtol=1e-5, atol=1e-6)  # the autograd path, one slab
    run_against_reference(router_name, "padded", activation, num_tokens=37, bias=bias)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])  # no bias: the fused SwiGLU Functions
@pytest.mark.parametrize("dispatch", sorted(DISPATCHERS))
@pytest.mark.parametrize("router_name", ["mixtral", "top3_capacity", "expert_choice", "sinkhorn"])
def test_gradcheck_float64(router_name, dispatch, bias):
    """torch.autograd.gradcheck on small shapes: x, router weight and expert weights at once."""
    router = make_router(router_name, d_model=4, num_experts=4).double()
    bank = ExpertBank(4, 4, 3, activation="swiglu", bias=bias).double()
    layer = MoELayer(router, bank, dispatch=dispatch)
    x = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5), requires_grad=True)
    names = ["router.weight", "experts.w_in", "experts.w_out"] + (["experts.b_in", "experts.b_out"] if bias else [])
    params = [dict(layer.named_parameters())[n].detach().clone().requires_grad_() for n in names]

    def layer_fn(x, *flat):
        return torch.func.functional_call(layer, dict(zip(names, flat)), (x,))

    # fast_mode compares random projections of the Jacobian (analytic vs finite differences): a full check
    # of the chain rule at a fraction of the cost of the dense Jacobian.
    assert torch.autograd.gradcheck(layer_fn, (x, *params), eps=1e-6, atol=1e-6, fast_mode=True)


def test_gradcheck_catches_a_detached_combine_weight():
    """Negative control for the gradcheck above: a router whose weights lose their graph must be rejected."""

    class DetachedWeightRouter(TopKRouter):
        def plan_from_logits(self, logits):
            plan = super().plan_from_logits(logits)
            plan.weight = plan.weight.detach()
            return plan

    router = DetachedWeightRouter(
        4, 4, k=2, normalize=True, generator=torch.Generator().manual_seed(0)
    ).double()
    layer = MoELayer(router, ExpertBank(4, 4, 3, activation="swiglu").double())
    x = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    weight = router.weight.detach().clone().requires_grad_()

    def layer_fn(w):
        return torch.func.functional_call(layer, {"router.weight": w}, (x,))

    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(layer_fn, (weight,), eps=1e-6, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("dispatch,one_copy", [("sorted", True), ("loop", False)])
def test_sorted_writes_weight_gradients_into_one_buffer(dispatch, one_copy):
    """fwd+bwd where the expert weights dominate (8 experts of 384 KiB, 2 tokens, k = 8): "sorted" writes each
    weight gradient straight into one (E, ...) buffer, so the peak stays under 1.5x the weights (the gradients
    once, plus about 0.1x of activations). Negative control: "loop" unbinds the weights and autograd stacks the
    per-expert gradients into a second buffer: 1.67x measured (as was "sorted" before it wrote in place)."""
    gen = torch.Generator().manual_seed(0)
    router = TopKRouter(512, 8, k=8, generator=gen)
    bank = ExpertBank(8, 512, 64, activation="swiglu", generator=gen)
    layer = MoELayer(router, bank, dispatch=dispatch)
    x = torch.randn(2, 512, generator=gen, requires_grad=True)
    weight_bytes = sum(p.numel() * p.element_size() for p in bank.parameters())

    def step():
        layer(x).sum().backward()

    step()  # warm-up; then no gradients live before the measured step
    for p in (x, *layer.parameters()):
        p.grad = None
    peak = peak_bytes(step, torch.device("cpu"))
    assert peak >= weight_bytes  # the gradients themselves
    assert (peak < 1.5 * weight_bytes) == one_copy, (peak, weight_bytes)
