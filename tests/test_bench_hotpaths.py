"""pytest-benchmark micro-benchmarks of the MoE hot paths. Under ``--benchmark-disable`` (make test) each body runs
once as a plain test; ``pytest tests/test_bench_hotpaths.py --benchmark-enable`` times them. Every benchmark checks
its result against the simple reference (the ``loop`` dispatcher), never its time."""

from __future__ import annotations

import pytest
import torch

from sparse_bench import ExpertBank, MoELayer
from sparse_bench.dispatch import DISPATCHERS, combine_rows
from sparse_bench.routing import ExpertChoiceRouter, TopKRouter
from sparse_bench.routing.base import expert_softmax

D_MODEL, D_HIDDEN, NUM_TOKENS = 64, 128, 512
REL_TOL = 1e-5  # fp32 against fp32, differing in summation order only


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def make_case(num_experts, k, router="topk", seed=0):
    gen = torch.Generator().manual_seed(seed)
    if router == "topk":
        r = TopKRouter(D_MODEL, num_experts, k=k, normalize=True, generator=gen)
    else:
        r = ExpertChoiceRouter(D_MODEL, num_experts, capacity_factor=1.0, generator=gen)
    bank = ExpertBank(num_experts, D_MODEL, D_HIDDEN, activation="swiglu", generator=gen)
    x = torch.randn(NUM_TOKENS, D_MODEL, generator=gen)
    return r, bank, x


def rel_err(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("dispatch", sorted(set(DISPATCHERS) - {"loop"}))
@pytest.mark.parametrize("num_experts,k", [(8, 2), (32, 1)])
def test_dispatch_forward(benchmark, dispatch, num_experts, k):
    router, bank, x = make_case(num_experts, k)
    plan = router(x)
    fn = DISPATCHERS[dispatch]
    with torch.no_grad():
        y = benchmark(fn, x, plan, bank)
        assert rel_err(y, DISPATCHERS["loop"](x, plan, bank)) < REL_TOL


@pytest.mark.parametrize("dispatch", ["auto", "sorted", "padded"])
def test_layer_forward_backward(benchmark, dispatch):
    router, bank, x = make_case(8, 2)
    layer = MoELayer(router, bank, dispatch=dispatch)
    reference = MoELayer(router, bank, dispatch="loop")
    xg = x.clone().requires_grad_()

    def step():
        xg.grad = None
        layer(xg).square().sum().backward()
        return xg.grad.clone()

    grad = benchmark(step)
    xr = x.clone().requires_grad_()
    reference(xr).square().sum().backward()
    assert rel_err(grad, xr.grad) < REL_TOL


@pytest.mark.parametrize("router_name", ["topk", "expert_choice"])
def test_combine(benchmark, router_name):
    """The combine alone: one gather into token order and a batched matmul (a ragged plan pads its tokens'
    cells), against index_add."""
    router, bank, x = make_case(8, 2, router=router_name)
    plan = router(x)
    rows = torch.randn(plan.num_assignments, D_MODEL, generator=torch.Generator().manual_seed(1))
    y = benchmark(combine_rows, rows, plan)
    weighted = rows * plan.weight.unsqueeze(1)
    reference = torch.zeros(NUM_TOKENS, D_MODEL).index_add(0, plan.token_index, weighted)
    assert rel_err(y, reference) < REL_TOL


def test_route(benchmark):
    router, _, x = make_case(64, 2)
    plan = benchmark(router, x)
    assert plan.num_assignments == 2 * NUM_TOKENS


@pytest.mark.parametrize("layout", ["expert_softmax", "along_experts"])
@pytest.mark.parametrize("num_experts", [8, 64])
def test_router_softmax(benchmark, layout, num_experts):
    """The routers' softmax (across tokens below 16 experts on CPU) beside ATen's softmax along the experts."""
    logits = torch.randn(4096, num_experts, generator=torch.Generator().manual_seed(2))
    fn = expert_softmax if layout == "expert_softmax" else lambda v: torch.softmax(v, dim=-1)
    probs = benchmark(fn, logits)
    assert rel_err(probs, torch.softmax(logits.double(), dim=-1)) < REL_TOL
