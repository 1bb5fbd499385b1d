"""Bad input gets a clear error naming the problem; an empty batch works."""

from __future__ import annotations

import pytest
import torch

from moe_cases import ROUTERS, make_router
from sparse_bench import ExpertBank, MoELayer
from sparse_bench.dispatch import DISPATCHERS
from sparse_bench.hashing import PStableHash, SimHash
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter


def layer(dispatch="sorted", router_name="mixtral"):
    return MoELayer(make_router(router_name), ExpertBank(7, 24, 40), dispatch)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("router_name", ROUTERS)
def test_non_finite_inputs(router_name, bad):
    x = torch.randn(5, 24)
    x[2, 3] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer(router_name=router_name)(x)


@pytest.mark.parametrize("router_name", ROUTERS)
def test_wrong_rank_and_width(router_name):
    router = make_router(router_name)
    with pytest.raises(ValueError, match="shape \\(tokens, d_model\\)"):
        router(torch.randn(24))
    if router_name != "hash_input":  # a hash of the input bits accepts any width
        with pytest.raises(ValueError, match="d_model=23"):
            router(torch.randn(4, 23))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 24\)"):
        layer(router_name=router_name)(torch.randn(4, 23))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_inputs(dtype):
    with pytest.raises(TypeError, match="floating"):
        layer()(torch.ones(4, 24, dtype=dtype))


def test_k_out_of_range():
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\], got 5"):
        TopKRouter(8, 4, k=5)
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\], got 0"):
        TopKRouter(8, 4, k=0)
    with pytest.raises(ValueError, match="k must be in"):
        SinkhornRouter(8, 4, k=9)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"capacity_factor": 0.0}, "capacity_factor must be a finite number > 0"),
        ({"capacity_factor": -1.0}, "capacity_factor must be a finite number > 0"),
        ({"capacity": 0}, "capacity of 0 drops every token"),
        ({"capacity": 2, "capacity_factor": 1.0}, "not both"),
        ({"drop_policy": "random"}, "drop_policy must be one of"),
        ({"jitter": 1.5}, "jitter must be in"),
    ],
)
def test_bad_router_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TopKRouter(8, 4, k=2, **kwargs)


def test_bad_expert_choice_and_hash_config():
    with pytest.raises(ValueError, match="capacity_factor"):
        ExpertChoiceRouter(8, 4, capacity_factor=0.0)
    with pytest.raises(ValueError, match="token_frequencies"):
        HashRouter(4, balanced=True)
    with pytest.raises(ValueError, match="key must be one of"):
        HashRouter(4, key="position")
    with pytest.raises(ValueError, match="needs token_ids"):
        HashRouter(4)(torch.randn(3, 8))
    with pytest.raises(ValueError, match="family must be one of"):
        LSHRouter(8, 4, family="minhash")
    with pytest.raises(ValueError, match="width must be"):
        PStableHash(8, 3, width=0.0)
    with pytest.raises(ValueError, match="bits must be in"):
        SimHash(8, 63)


def test_mismatched_parts():
    with pytest.raises(ValueError, match="router has 4 experts but the bank holds 7"):
        MoELayer(TopKRouter(24, 4), ExpertBank(7, 24, 40))
    with pytest.raises(ValueError, match="d_model"):
        MoELayer(TopKRouter(16, 7), ExpertBank(7, 24, 40))
    with pytest.raises(ValueError, match="dispatch must be one of"):
        MoELayer(TopKRouter(24, 7), ExpertBank(7, 24, 40), dispatch="magic")
    with pytest.raises(TypeError, match="expert weights are torch.float32"):
        MoELayer(TopKRouter(24, 7), ExpertBank(7, 24, 40))(torch.randn(3, 24, dtype=torch.float64))
    with pytest.raises(ValueError, match="logits must have shape"):
        TopKRouter(24, 7).plan_from_logits(torch.randn(3, 5))


@pytest.mark.parametrize("dispatch", sorted(DISPATCHERS))
@pytest.mark.parametrize("router_name", ROUTERS)
def test_empty_batch(router_name, dispatch):
    y, plan = layer(dispatch, router_name)(torch.randn(0, 24), return_plan=True)
    assert y.shape == (0, 24) and plan.num_assignments == 0 and plan.num_tokens == 0
    plan.validate()


def test_tokens_without_assignment_get_zero():
    # capacity 1: only token 0 is routed; every other token's output must be exactly 0
    router = TopKRouter(24, 1, k=1, capacity=1)
    y = MoELayer(router, ExpertBank(1, 24, 40))(torch.randn(5, 24))
    assert torch.count_nonzero(y[1:]) == 0 and torch.count_nonzero(y[0]) > 0
