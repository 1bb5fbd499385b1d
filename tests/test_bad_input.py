"""Bad input gets a clear error naming the problem; an empty batch works. (NaN/Inf and wrong shapes for every
router and layer: the contract suite, tests/test_contract_suite.py.)"""

from __future__ import annotations

import pytest
import torch

from moe_cases import ROUTERS, make_router
from sparse_bench import ExpertBank, MoELayer, SharedExpert
from sparse_bench.blocks import ConvPoolBlock, lse_pool, maxpool_plan
from sparse_bench.dispatch import DISPATCHERS
from sparse_bench.hashing import PStableHash, SimHash
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter


def layer(dispatch="sorted", router_name="mixtral"):
    return MoELayer(make_router(router_name), ExpertBank(7, 24, 40), dispatch)


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


def test_capacity_that_rounds_to_zero_or_overflows():
    """A factor so small that C underflows to 0 would drop every token; one so large that C is infinite has no
    integer capacity: both are refused when the batch is routed (C depends on T), naming the factor."""
    x = torch.randn(1, 8)  # 5e-324 * 1 / 4 underflows to 0.0 (with 4 tokens it would be 5e-324, C = 1)
    tiny = 5e-324
    routers = (TopKRouter(8, 4, k=1, capacity_factor=tiny), ExpertChoiceRouter(8, 4, capacity_factor=tiny))
    for router in routers:
        with pytest.raises(ValueError, match="must round to at least 1"):
            router(x)
    with pytest.raises(ValueError, match="capacity_factor=1e.308"):
        TopKRouter(8, 4, k=1, capacity_factor=1e308)(torch.randn(8, 8))
    plan = TopKRouter(8, 4, k=1, capacity_factor=5e-324)(torch.randn(0, 8))  # empty batch: capacity 0
    assert plan.num_assignments == 0


def test_shared_expert_must_match_the_layer():
    router, bank = TopKRouter(8, 4), ExpertBank(4, 8, 16)
    with pytest.raises(ValueError, match="shared expert has d_model=6 but the experts use 8"):
        MoELayer(router, bank, shared_expert=SharedExpert(ExpertBank(1, 6, 16)))
    with pytest.raises(TypeError, match="shared expert's weights are torch.float64"):
        MoELayer(router, bank, shared_expert=SharedExpert(ExpertBank(1, 8, 16).double()))
    with pytest.raises(ValueError, match="gate has 5 entries but the shared expert's d_model is 8"):
        SharedExpert(ExpertBank(1, 8, 16), gate=torch.ones(5))
    with pytest.raises(TypeError, match="gate must be a floating tensor"):
        SharedExpert(ExpertBank(1, 8, 16), gate=torch.ones(8, dtype=torch.int64))
    with pytest.raises(ValueError, match="gate contains NaN or Inf"):
        SharedExpert(ExpertBank(1, 8, 16), gate=torch.full((8,), float("nan")))


def test_parameters_that_overflow_inside_the_computation():
    """Finite, positive settings whose arithmetic leaves the dtype's range: an error, not NaN routing, a
    single bucket for every token or an infinite pooled value."""
    x = torch.randn(6, 8)
    with pytest.raises(ValueError, match="logits / temperature overflows"):
        MoELayer(SinkhornRouter(8, 4, temperature=1e-45), ExpertBank(4, 8, 16))(x)
    with pytest.raises(ValueError, match="int64 range of bucket coordinates"):
        LSHRouter(8, 4, family="pstable", width=1e-300).experts(x)
    image = torch.randn(1, 1, 6, 6)
    for temperature in (1e-40, 1e39):
        with pytest.raises(ValueError, match="out of range for torch.float32"):
            lse_pool(image, 2, temperature=temperature)


@pytest.mark.parametrize("frequencies,message", [
    (torch.tensor([float("nan"), 1.0, 2.0]), "finite and >= 0"),
    (torch.tensor([-5.0, 1.0, 2.0]), "finite and >= 0"),
    (torch.ones(0), r"non-empty \(vocab,\) tensor of counts, got \(0,\)"),
    (torch.ones(3, 3), r"non-empty \(vocab,\) tensor of counts, got \(3, 3\)"),
    ([1.0, 2.0], "got list"),
])
def test_bad_token_frequencies(frequencies, message):
    with pytest.raises(ValueError, match=message):
        HashRouter(4, balanced=True, token_frequencies=frequencies)


def test_empty_batch_of_images():
    """N = 0 images: every pooling plan and the im2col block return empty outputs of the right shape."""
    empty = torch.randn(0, 1, 6, 6)
    assert maxpool_plan(empty, 2).num_assignments == 0
    assert ConvPoolBlock(1, 2, 3, impl="im2col")(empty).shape == ConvPoolBlock(1, 2, 3)(empty).shape


def test_formal_model_and_blocks_refuse_what_would_give_nan_or_a_raw_torch_error():
    from sparse_bench.blocks import compose_conv_kernels, conv2d_toeplitz_matrix
    from sparse_bench.dsm import DSM, LSHModel, knn_as_dsm

    nan3 = torch.tensor([float("nan"), 1.0, 2.0])
    with pytest.raises(ValueError, match="bias contains NaN or Inf"):
        DSM(torch.randn(3, 2), nan3, 1)
    with pytest.raises(ValueError, match="readout contains NaN or Inf"):
        DSM(torch.randn(3, 2), torch.zeros(3), 1, readout=nan3)
    with pytest.raises(ValueError, match="values contains NaN or Inf"):
        knn_as_dsm(torch.randn(3, 2), nan3, 1)
    model = LSHModel(2, "simhash", num_hashes=2, seed=0)
    with pytest.raises(ValueError, match="y contains NaN or Inf"):
        model.fit(torch.randn(3, 2), nan3)
    with pytest.raises(ValueError, match="default must be a finite number"):
        model.fit(torch.randn(3, 2), torch.zeros(3), default=float("inf"))
    with pytest.raises(ValueError, match="pool_size"):
        ConvPoolBlock(1, 2, 3, pool_size=5)(torch.randn(1, 1, 5, 5))  # a 3 x 3 map under a 5 x 5 window
    with pytest.raises(TypeError, match="floating torch.dtype"):
        ConvPoolBlock(1, 2, 3, dtype=torch.int64)
    with pytest.raises(TypeError, match="one dtype"):
        compose_conv_kernels(torch.randn(2, 1, 3, 3), torch.randn(1, 2, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="three ints >= 1"):
        conv2d_toeplitz_matrix(torch.randn(1, 1, 2, 2), (1, -3, 4))
    with pytest.raises(TypeError, match="token_ids must be an int64 torch.Tensor"):
        MoELayer(HashRouter(7), ExpertBank(7, 24, 40))(torch.randn(3, 24), token_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="expert choice needs a capacity_factor"):
        ExpertChoiceRouter(8, 4, capacity_factor=None)
