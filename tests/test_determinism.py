"""Same seed, same inputs => same bits; 1 and 2 threads agree to fp32 tolerance."""

from __future__ import annotations

import pytest
import torch

from moe_cases import DEVICES, ROUTERS, make_router, numpy_seed_tokens
from sparse_bench import ExpertBank, MoELayer
from sparse_bench.dispatch import DISPATCHERS
from sparse_bench.routing import TopKRouter


def build_and_run(router_name, dispatch, seed=0, device="cpu"):
    torch.manual_seed(1234)  # the global RNG must not matter: scramble it differently per call
    torch.rand(int(torch.randint(1, 50, ())))
    layer = MoELayer(
        make_router(router_name, seed=seed),
        ExpertBank(7, 24, 40, activation="swiglu", generator=torch.Generator().manual_seed(seed)),
        dispatch,
    ).to(device)
    x = numpy_seed_tokens(200, seed=seed).to(device).requires_grad_()
    y = layer(x)
    y.square().sum().backward()
    return y.detach(), x.grad, layer.experts.w_in.grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dispatch", sorted(DISPATCHERS))
@pytest.mark.parametrize("router_name", ROUTERS)
def test_two_runs_are_bitwise_equal(router_name, dispatch, device):
    """Outputs and gradients, also on CUDA (DESIGN: no atomics in the combine step there either)."""
    first, second = (build_and_run(router_name, dispatch, device=device) for _ in range(2))
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_one_and_two_threads_agree():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = build_and_run("mixtral", "sorted")
        torch.set_num_threads(2)
        two = build_and_run("mixtral", "sorted")
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_jitter_is_seeded_by_the_router_generator():
    def routed_experts():
        router = TopKRouter(24, 7, k=2, jitter=0.5, generator=torch.Generator().manual_seed(7)).train()
        return router(numpy_seed_tokens(64)).expert_index

    assert torch.equal(routed_experts(), routed_experts())
