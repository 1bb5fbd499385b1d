"""Router invariants beyond the contract suite (tests/test_contract_suite.py): closed-form counts, marginals,
reproducibility from a seed, peers' loss, the dispatchers on one plan."""

from __future__ import annotations

import pytest
import torch

from moe_cases import make_router, numpy_seed_tokens
from sparse_bench import ExpertBank, MoELayer
from sparse_bench.dispatch import DISPATCHERS
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter, z_loss
from sparse_bench.routing.base import expert_softmax


@pytest.mark.parametrize("num_tokens,capacity_factor", [(100, 1.0), (64, 0.5), (7, 2.0), (3, 10.0)])
def test_expert_choice_gives_exactly_c_tokens_per_expert(num_tokens, capacity_factor):
    router = ExpertChoiceRouter(24, 7, capacity_factor=capacity_factor)
    plan = router(numpy_seed_tokens(num_tokens))
    capacity = router.expert_capacity(num_tokens)
    assert capacity == min(-(-int(capacity_factor * num_tokens * 1000) // 7000), num_tokens)
    assert plan.expert_counts.tolist() == [capacity] * 7
    for e in range(7):  # no token twice within one expert
        tokens = plan.token_index[plan.expert_index == e]
        assert tokens.unique().numel() == capacity


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_sinkhorn_marginals(temperature):
    router = SinkhornRouter(24, 7, iterations=1000, tol=1e-6, temperature=temperature)
    logits = router.logits(numpy_seed_tokens(200))
    balanced, used, error = router.transport(logits)
    T, E = balanced.shape
    assert error < 1e-6 and used < 1000
    assert torch.allclose(balanced.sum(1), torch.full((T,), 1 / T), rtol=1e-5)
    assert torch.allclose(balanced.sum(0), torch.full((E,), 1 / E), rtol=1e-5)


@pytest.mark.parametrize("router_name", ["hash_input", "lsh_simhash"])
def test_hashing_routers_are_reproducible_from_their_seed(router_name):
    """Two routers built from one seed route alike; another seed changes the hash (the contract suite checks one
    router's determinism and batch independence)."""
    x = numpy_seed_tokens(50)
    first, again, other = (make_router(router_name, seed=seed) for seed in (3, 3, 4))
    plan_a, plan_b = first(x), again(x)
    assert torch.equal(plan_a.expert_index, plan_b.expert_index) and torch.equal(
        plan_a.token_index, plan_b.token_index
    )
    assert not torch.equal(plan_a.dense_weights(), other(x).dense_weights()), (
        "a different seed must change the hash"
    )
    if router_name == "lsh_simhash":
        assert first.experts(x).shape == (50, 2)


def test_hash_router_token_ids_and_balanced_table():
    ids = torch.tensor([5, 1, 5, 2, 9])
    plan = HashRouter(4, seed=1)(torch.zeros(5, 3), token_ids=ids)
    by_token = dict(zip(plan.token_index.tolist(), plan.expert_index.tolist()))
    assert by_token[0] == by_token[2], "equal token ids share an expert"
    freq = torch.tensor([100.0, 50, 30, 20, 10, 5, 0, 0])
    table = HashRouter(4, balanced=True, token_frequencies=freq).table
    # greedy: 100->0, 50->1, 30->2, 20->3, 10->3 (load 20), 5->2 (loads 2 and 3 tie at 30; lower index wins)
    assert table[:6].tolist() == [0, 1, 2, 3, 3, 2]


@pytest.mark.parametrize("num_experts,k", [(8, 2), (5, 3)])
def test_load_balancing_loss_is_hf_mixtral_over_k(num_experts, k):
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    logits = torch.randn(64, num_experts, generator=torch.Generator().manual_seed(1))
    ours = TopKRouter(3, num_experts, k=k, normalize=True).plan_from_logits(logits).aux["load_balancing_loss"]
    theirs = load_balancing_loss_func((logits,), num_experts, k)
    assert float(theirs) == pytest.approx(k * float(ours), rel=1e-5)


def test_z_loss_read_off_the_top_probability_matches_logsumexp():
    """The top-k router's z-loss uses lse = l[top] - log p[top]; against logsumexp in float64 (to rounding) and in
    float32 with large logits (p[top] >= 1/E keeps the log well conditioned), gradient included."""
    gen = torch.Generator().manual_seed(3)
    for dtype, scale, rel in ((torch.float64, 1.0, 1e-12), (torch.float32, 30.0, 1e-5)):
        logits = (scale * torch.randn(200, 8, generator=gen, dtype=dtype)).requires_grad_()
        probs = torch.softmax(logits, dim=-1)
        via_top = z_loss(logits, probs, probs.argmax(dim=-1))
        direct = z_loss(logits)
        assert float(via_top.detach()) == pytest.approx(float(direct.detach()), rel=rel)
        (g_top,) = torch.autograd.grad(via_top, logits)
        (g_direct,) = torch.autograd.grad(direct, logits)
        torch.testing.assert_close(g_top, g_direct, rtol=rel, atol=rel * float(g_direct.abs().max()))
    with pytest.raises(ValueError, match="both probs and top"):
        z_loss(logits, probs=probs)


@pytest.mark.parametrize("num_experts", [1, 4, 8, 15, 16, 64])
def test_expert_softmax_matches_softmax_on_either_layout(num_experts):
    """Below 16 experts the softmax runs across tokens on the transposed layout: same values to a few ulps, rows
    summing to 1, and the same gradient."""
    logits = (4 * torch.randn(300, num_experts, generator=torch.Generator().manual_seed(4))).requires_grad_()
    ours, reference = expert_softmax(logits), torch.softmax(logits, dim=-1)
    assert ours.shape == (300, num_experts)
    torch.testing.assert_close(ours, reference, rtol=4 * 2**-23, atol=2**-30)
    torch.testing.assert_close(ours.sum(dim=1), torch.ones(300), rtol=0, atol=num_experts * 2**-23)
    upstream = torch.randn(300, num_experts, generator=torch.Generator().manual_seed(5))
    (g_ours,) = torch.autograd.grad(ours, logits, upstream)
    (g_reference,) = torch.autograd.grad(reference, logits, upstream)
    torch.testing.assert_close(g_ours, g_reference, rtol=1e-5, atol=1e-6)


def test_all_dispatchers_agree_on_one_plan():
    x = numpy_seed_tokens(80)
    router = TopKRouter(24, 7, k=3, capacity_factor=1.0)
    bank = ExpertBank(7, 24, 40, activation="gelu", bias=True)
    plan = router(x)
    outputs = {name: fn(x, plan, bank) for name, fn in DISPATCHERS.items()}
    for name, y in outputs.items():
        assert torch.allclose(y, outputs["loop"], rtol=1e-5, atol=1e-6), name


def test_one_expert_layer_is_the_dense_ffn():
    x = numpy_seed_tokens(33)
    bank = ExpertBank(1, 24, 40, activation="relu", bias=True)
    layer = MoELayer(TopKRouter(24, 1, k=1), bank)
    dense = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.ReLU(), torch.nn.Linear(40, 24))
    with torch.no_grad():
        dense[0].weight.copy_(bank.w_in[0].t())
        dense[0].bias.copy_(bank.b_in[0])
        dense[2].weight.copy_(bank.w_out[0].t())
        dense[2].bias.copy_(bank.b_out[0])
    assert torch.allclose(layer(x), dense(x), rtol=1e-5, atol=1e-6)


def test_layer_keeps_leading_dims():
    layer = MoELayer(TopKRouter(24, 7, k=2), ExpertBank(7, 24, 40))
    x = torch.randn(2, 3, 5, 24)
    y, plan = layer(x, return_plan=True)
    assert y.shape == x.shape and plan.num_tokens == 30


def test_lsh_router_pstable_and_multi_table_weights():
    router = LSHRouter(24, 6, family="pstable", num_tables=3, width=2.0, seed=1)
    plan = router(numpy_seed_tokens(40)).validate()
    assert plan.num_assignments == 120
    assert torch.allclose(plan.token_counts().double(), torch.full((40,), 3.0, dtype=torch.float64))
    assert torch.allclose(plan.dense_weights().sum(1), torch.ones(40))
