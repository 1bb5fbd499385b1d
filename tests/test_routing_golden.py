"""Golden plans: hand-built logits whose plans are known exactly, one per capacity / drop policy."""

from __future__ import annotations

import torch

from sparse_bench.routing import ExpertChoiceRouter, SinkhornRouter, TopKRouter

BIG = 20.0  # logit margin: the preferred expert's probability is 1 - O(e^-20)


def pairs(plan):
    return list(zip(plan.token_index.tolist(), plan.expert_index.tolist()))


def prefer(rows):
    """Logits where token t ranks experts in the order rows[t] (first = best), margins of BIG/rank."""
    T, E = len(rows), len(rows[0])
    logits = torch.zeros(T, E, dtype=torch.float64)
    for t, order in enumerate(rows):
        for rank, e in enumerate(order):
            logits[t, e] = BIG * (E - rank)
    return logits


def test_switch_position_policy_keeps_earliest_tokens():
    # 4 tokens all want expert 0; C = ceil(1.0 * 4 * 1 / 2) = 2: tokens 0, 1 kept, 2, 3 dropped.
    router = TopKRouter(3, 2, k=1, capacity_factor=1.0).double()
    plan = router.plan_from_logits(prefer([[0, 1]] * 4))
    assert pairs(plan) == [(0, 0), (1, 0)]
    assert plan.dropped == 2 and plan.aux["capacity"] == 2
    assert plan.expert_counts.tolist() == [2, 0]


def test_switch_probability_policy_keeps_most_confident_tokens():
    logits = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0], [5.0, 0.0]], dtype=torch.float64)
    router = TopKRouter(3, 2, k=1, capacity_factor=1.0, drop_policy="probability").double()
    plan = router.plan_from_logits(logits)
    assert pairs(plan) == [(1, 0), (3, 0)]  # the two highest probabilities
    assert plan.dropped == 2


def test_first_choices_outrank_second_choices():
    # E=3, k=2, T=3: C = ceil(1.0 * 3 * 2 / 3) = 2.
    # first choices: t0->0, t1->0, t2->1; second choices: t0->1, t1->1, t2->0.
    # expert 0 gets t0, t1 (first choices) and must drop t2's second choice; expert 1 gets t2 (first), t0 (second),
    # and drops t1's second choice (t0 is earlier).
    router = TopKRouter(3, 3, k=2, normalize=True, capacity_factor=1.0).double()
    plan = router.plan_from_logits(prefer([[0, 1, 2], [0, 1, 2], [1, 0, 2]]))
    assert pairs(plan) == [(0, 0), (1, 0), (0, 1), (2, 1)]
    assert plan.dropped == 2
    # normalize=True: weights are renormalised over the k chosen BEFORE dropping (Mixtral): first choices keep 1 / (1 + e^-20),
    # t0's second choice keeps its ~e^-20 share.
    second = torch.exp(torch.tensor(-BIG, dtype=torch.float64))
    expected = torch.stack([1 / (1 + second), 1 / (1 + second), second / (1 + second), 1 / (1 + second)])
    assert torch.allclose(plan.weight, expected, rtol=1e-9, atol=1e-12)


def test_absolute_capacity_and_dropless():
    logits = prefer([[0, 1]] * 5)
    assert TopKRouter(3, 2, k=1, capacity=3).double().plan_from_logits(logits).dropped == 2
    plan = TopKRouter(3, 2, k=1).double().plan_from_logits(logits)
    assert plan.dropped == 0 and plan.expert_counts.tolist() == [5, 0]


def test_expert_choice_golden():
    # T=4, E=2, capacity_factor=1 -> C = 2. Expert 0 likes tokens 3 and 1 most, expert 1 likes 0 and 2.
    logits = torch.tensor([[0.0, 4.0], [3.0, 0.0], [0.0, 2.0], [5.0, 0.0]], dtype=torch.float64)
    plan = ExpertChoiceRouter(3, 2, capacity_factor=1.0).double().plan_from_logits(logits)
    assert pairs(plan) == [(1, 0), (3, 0), (0, 1), (2, 1)]
    assert plan.expert_counts.tolist() == [2, 2] and plan.dropped == 0


def test_sinkhorn_rebalances_a_collapsed_router():
    # Every token prefers expert 0 a little; greedy top-1 would put all 4 on expert 0. Sinkhorn splits them 2/2,
    # giving expert 1 the tokens that like expert 0 least (t2, t3).
    logits = torch.tensor([[3.0, 0.0], [2.5, 0.0], [1.0, 0.0], [0.5, 0.0]], dtype=torch.float64)
    plan = SinkhornRouter(3, 2, iterations=500, tol=1e-10).double().plan_from_logits(logits)
    assert pairs(plan) == [(0, 0), (1, 0), (2, 1), (3, 1)]
