"""Communication volume of the expert-parallel dispatch under uniformly random top-k routing.

Prediction. W ranks, each with T tokens, E experts in contiguous blocks of E/W per rank, every token routed to a
uniformly random k-subset of the experts (iid continuous logits through ``TopKRouter.plan_from_logits``, no
capacity). Each of a rank's T*k rows leaves it with probability (W-1)/W; each row another rank sends here comes
back once; by symmetry both have mean T*k*(W-1)/W, so the bytes one rank sends in a forward are, in expectation,
exactly ``2 T k d (W-1)/W * bytes_per_element``.

Measurement. Per draw, all W ranks' plans are built, and each rank's send splits come from the dispatch's own rule
(``rows_per_owner``), its receive splits from the other ranks' send splits, and the crossing rows from
``rows_crossing``, the function ``ExpertParallelDispatch`` reports with (tests/test_distributed.py checks that the
real gloo runs send exactly what these functions count). The bytes are linear in d and the element size, so the
random part is the row count; d = BYTES_D_MODEL, float32.

Test. For every world size and rank, the ratio measured/predicted over independent draws is t-tested against 1
(two-sided); the family of (W, rank) tests is Holm-corrected at ALPHA (at W = 2 both ranks send the same bytes,
each returning what the other sent, so two of the tests coincide; Holm stays valid, only conservative). Controls: a dispatch that sends every row
to every rank (ratio W) and one that counts the local copy as communication (ratio W/(W-1)).
"""

from __future__ import annotations

import numpy as np
import torch

from sparse_bench.distributed import rows_crossing, rows_per_owner
from sparse_bench.routing import TopKRouter

from theory_checks.framework import (ALPHA, by_profile, figure_spec, one_sample_t, register_check,
                                     result_from_cells, series)

SOURCE = "expert-parallel all-to-all volume"
AREA = "distributed"
BYTES_TOKENS = 256  # T, tokens per rank
BYTES_EXPERTS = 8  # E
BYTES_K = 2  # experts per token
BYTES_WORLD_SIZES = (2, 4)
BYTES_D_MODEL = 64
BYTES_ELEMENT = 4  # float32
BYTES_DRAWS = (200, 2_000)  # independent draws of all W ranks' routing (quick, full)
GATE_DIM = 4  # d_model of the router driven through plan_from_logits (its gate weight is unused)


def predicted_bytes(tokens: int, k: int, d_model: int, world_size: int, element_size: int) -> float:
    """2 T k d (W-1)/W * bytes per element."""
    return 2 * tokens * k * d_model * (world_size - 1) / world_size * element_size


def broadcast_every_row(expert_counts: torch.Tensor, world_size: int) -> torch.Tensor:
    """Planted defect: every row goes to every rank (a broadcast instead of a routed all-to-all)."""
    return expert_counts.sum().repeat(world_size)


def local_copy_counted(send_splits: list[int], recv_splits: list[int], rank: int) -> tuple[int, int]:
    """Planted defect: the rows a rank keeps for its own experts are counted as sent."""
    return sum(send_splits), sum(recv_splits)


def bytes_per_rank(
    plans, d_model: int, element_size: int, split_rule=rows_per_owner, crossing=rows_crossing
) -> list[int]:
    """Bytes each of the W ranks sends in one forward, given the W ranks' plans (rank order)."""
    world_size = len(plans)
    sends = [split_rule(plan.expert_counts, world_size).tolist() for plan in plans]  # sends[src][dst]
    out = []
    for rank in range(world_size):
        recv = [sends[src][rank] for src in range(world_size)]
        rows_sent, rows_returned = crossing(sends[rank], recv, rank)
        out.append((rows_sent + rows_returned) * d_model * element_size)
    return out


def ratio_test(ratios: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, ci_low, ci_high, p) of the t test of mean ratio = 1. A constant sample (no randomness left, as under
    the broadcast control) is an exact measurement: p = 1 if it equals 1, else 0."""
    if np.ptp(ratios) == 0:
        value = float(ratios[0])
        return value, value, value, 1.0 if value == 1.0 else 0.0
    return one_sample_t(ratios, 1.0)


@register_check(
    name="expert_parallel_bytes_sent", source=SOURCE, area=AREA,
    prediction="bytes one rank sends per forward = 2 T k d (W-1)/W * bytes_per_element in expectation, "
    "for uniformly random top-k routing (every W, every rank)",
    unit="× predicted bytes",
    controls={
        "broadcast_every_row": lambda: {"split_rule": broadcast_every_row},
        "local_copy_counted": lambda: {"crossing": local_copy_counted},
    },
)
def check_expert_parallel_bytes_sent(
    seed: int, profile: str = "quick", split_rule=rows_per_owner, crossing=rows_crossing
):
    draws = by_profile(profile, quick=BYTES_DRAWS[0], full=BYTES_DRAWS[1])
    gen = torch.Generator().manual_seed(int(seed))
    router = TopKRouter(GATE_DIM, BYTES_EXPERTS, k=BYTES_K)
    cells, all_ratios = [], []
    for world_size in BYTES_WORLD_SIZES:
        predicted = predicted_bytes(BYTES_TOKENS, BYTES_K, BYTES_D_MODEL, world_size, BYTES_ELEMENT)
        ratios = np.empty((draws, world_size))
        for draw in range(draws):
            plans = [
                router.plan_from_logits(torch.rand(BYTES_TOKENS, BYTES_EXPERTS, generator=gen, dtype=torch.float64))
                for _ in range(world_size)
            ]
            sent = bytes_per_rank(plans, BYTES_D_MODEL, BYTES_ELEMENT, split_rule, crossing)
            ratios[draw] = np.asarray(sent) / predicted
        for rank in range(world_size):
            mean, low, high, p = ratio_test(ratios[:, rank])
            cells.append({"world_size": world_size, "rank": rank, "predicted_bytes": predicted,
                          "mean_ratio": mean, "ci": [low, high], "p_value": p})
        all_ratios.append(ratios.reshape(-1))
    worst = min(cells, key=lambda c: c["p_value"])
    return result_from_cells(
        "expert_parallel_bytes_sent", cells, head=worst, seed=seed, profile=profile, n=draws,
        test=f"one-sample t of measured/predicted = 1 per (W, rank), two-sided, Holm over {len(cells)} tests",
        predicted=1.0, measured=float(np.concatenate(all_ratios).mean()),
        margin=f"{100 * (1 - ALPHA):.1f}% t interval of the worst (W, rank) cell; Holm-adjusted p",
        params={"tokens": BYTES_TOKENS, "experts": BYTES_EXPERTS, "k": BYTES_K, "world_sizes": list(BYTES_WORLD_SIZES),
                "d_model": BYTES_D_MODEL, "bytes_per_element": BYTES_ELEMENT, "draws": draws},
        details={"worst_cell": {"world_size": worst["world_size"], "rank": worst["rank"]},
                 "figure": _bytes_figure(cells, draws)},
    )


def _bytes_figure(cells: list[dict], draws: int) -> dict:
    """Measured / predicted bytes per (world size, rank) with its t-interval, against 1."""
    labels = [f"W={c['world_size']} rank {c['rank']}" for c in cells]
    return figure_spec(f"expert-parallel bytes sent per forward over 2 T k d (W-1)/W x bytes per element "
                       f"({draws} draws)", "world size and rank", "measured / predicted bytes",
                       series("mean over draws (t-interval, 1 - ALPHA)", labels,
                              [c["mean_ratio"] for c in cells], [c["ci"][0] for c in cells],
                              [c["ci"][1] for c in cells]),
                       series("predicted: 1", labels, [1.0] * len(cells), style="predicted"))
