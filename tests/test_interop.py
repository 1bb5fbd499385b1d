"""Peer equivalence: from_hf on randomly initialised HF transformers MoE blocks reproduces their outputs."""

from __future__ import annotations

import pytest
import torch

from sparse_bench.dispatch import DISPATCHERS
from sparse_bench.interop import from_hf

transformers = pytest.importorskip("transformers")  # a test extra: pip install -e ".[dev]"
from transformers import MixtralConfig, Qwen2MoeConfig, SwitchTransformersConfig  # noqa: E402
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock  # noqa: E402
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock  # noqa: E402
from transformers.models.switch_transformers.modeling_switch_transformers import SwitchTransformersSparseMLP  # noqa: E402

FP32_REL_TOL = 1e-5


def randomise(block, std, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return block.eval()


def rel_err(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def tokens(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def compare_forward_backward(block, layer, x):
    x_ours = x.clone().requires_grad_()
    x_hf = x.clone().requires_grad_()
    y_ours, y_hf = layer(x_ours), block(x_hf)
    upstream = tokens(*x.shape, seed=99)
    (y_ours * upstream).sum().backward()
    (y_hf * upstream).sum().backward()
    assert rel_err(y_ours, y_hf) < FP32_REL_TOL, "output"
    assert rel_err(x_ours.grad, x_hf.grad) < FP32_REL_TOL, "grad wrt x"


@pytest.mark.parametrize("dispatch", sorted(DISPATCHERS))
@pytest.mark.parametrize("num_experts,k", [(8, 2), (5, 3)])
def test_mixtral(num_experts, k, dispatch):
    config = MixtralConfig(
        hidden_size=32, intermediate_size=48, num_local_experts=num_experts, num_experts_per_tok=k
    )
    block = randomise(MixtralSparseMoeBlock(config), 0.1, seed=num_experts)
    layer = from_hf(block)
    layer.dispatcher = DISPATCHERS[dispatch]
    compare_forward_backward(block, layer, tokens(3, 17, 32))
    # router weight gradient too
    x = tokens(3, 17, 32)
    layer(x).square().sum().backward()
    block(x).square().sum().backward()
    assert rel_err(layer.router.weight.grad, block.gate.weight.grad) < FP32_REL_TOL


@pytest.mark.parametrize("norm_topk_prob", [False, True])
def test_qwen2_moe_with_shared_expert(norm_topk_prob):
    config = Qwen2MoeConfig(
        hidden_size=32,
        moe_intermediate_size=24,
        shared_expert_intermediate_size=40,
        num_experts=6,
        num_experts_per_tok=3,
        norm_topk_prob=norm_topk_prob,
    )
    block = randomise(Qwen2MoeSparseMoeBlock(config), 0.1, seed=3)
    compare_forward_backward(block, from_hf(block), tokens(2, 11, 32))


def test_switch_with_capacity_drops_one_sequence():
    config = SwitchTransformersConfig(d_model=32, d_ff=40, num_experts=4, expert_capacity=3)
    block = randomise(SwitchTransformersSparseMLP(config), 0.3, seed=4)
    layer = from_hf(block)
    x = tokens(1, 16, 32)
    _, plan = layer(x, return_plan=True)
    assert plan.dropped > 0, "the case must exercise dropping"
    compare_forward_backward(block, layer, x)


def test_switch_batch_without_overflow():
    config = SwitchTransformersConfig(d_model=32, d_ff=40, num_experts=4, expert_capacity=64)
    block = randomise(SwitchTransformersSparseMLP(config), 0.3, seed=5)
    compare_forward_backward(block, from_hf(block), tokens(3, 16, 32))


def test_unsupported_blocks_are_refused():
    with pytest.raises(TypeError, match="from_hf supports"):
        from_hf(torch.nn.Linear(3, 3))
    config = SwitchTransformersConfig(d_model=8, d_ff=8, num_experts=2, router_bias=True)
    with pytest.raises(ValueError, match="router_bias"):
        from_hf(SwitchTransformersSparseMLP(config))
