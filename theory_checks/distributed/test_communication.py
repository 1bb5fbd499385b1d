"""The expert-parallel communication check's arithmetic on a hand-made plan set, so a pass cannot come from
counting nothing (the check itself runs in ``theory_checks/test_checks.py``)."""

import torch

import theory_checks.distributed.communication as dc
from sparse_bench.routing.plan import plan_from_assignments


def plan(experts, num_experts=4):
    tokens = torch.arange(len(experts))
    return plan_from_assignments(tokens, torch.tensor(experts), torch.ones(len(experts)), len(experts), num_experts)


def test_bytes_per_rank_on_a_hand_counted_case():
    """W=2, E=4 (rank 0 owns experts 0-1, rank 1 owns 2-3). Rank 0 routes to experts [0, 2, 3]: 1 row stays,
    2 leave; rank 1 routes to [1, 1, 2, 0]: 1 stays, 3 leave. Rank 0 sends 2 rows + 3 returns, rank 1 sends
    3 + 2. Broadcast: rank 0 sends its 3 rows and returns rank 1's 4; rank 1 sends 4 and returns 3. Counting the
    local copy: rank 0 sends 3 and returns all 1 + 3 it received; rank 1 sends 4 and returns 2 + 1."""
    plans = [plan([0, 2, 3]), plan([1, 1, 2, 0])]
    assert dc.bytes_per_rank(plans, d_model=5, element_size=4) == [(2 + 3) * 5 * 4, (3 + 2) * 5 * 4]
    assert dc.bytes_per_rank(plans, 5, 4, split_rule=dc.broadcast_every_row) == [(3 + 4) * 5 * 4, (4 + 3) * 5 * 4]
    assert dc.bytes_per_rank(plans, 5, 4, crossing=dc.local_copy_counted) == [(3 + 4) * 5 * 4, (4 + 3) * 5 * 4]


def test_prediction_formula():
    assert dc.predicted_bytes(256, 2, 64, 4, 4) == 2 * 256 * 2 * 64 * 3 / 4 * 4
    assert dc.predicted_bytes(256, 2, 64, 1, 4) == 0
