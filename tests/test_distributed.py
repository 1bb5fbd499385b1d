"""Expert-parallel MoE on gloo (127.0.0.1, 2 and 4 processes) equals the single-process layer: outputs, gradients
w.r.t. x, router and expert weights, bytes sent; the differentiable all-to-all's backward is its adjoint.

One spawn per world size runs every case (spawning is the slow part on 2 cores); the tests then compare each case.
Semantics compared: rank r routes its own tokens x_r locally (capacity is per rank), so the reference is the
single-process layer applied to each x_r with the full expert bank; router gradients are summed over ranks (what
a data-parallel all-reduce would do) and each rank's expert gradients are its slice of the full bank's.
"""

from __future__ import annotations

import functools

import pytest
import torch

from sparse_bench import ExpertBank, MoELayer
from sparse_bench.distributed import (
    ExpertParallelDispatch,
    WorkerFailure,
    all_to_all_rows,
    run_workers,
    shard_experts,
)
from sparse_bench.routing import ExpertChoiceRouter, TopKRouter

pytestmark = pytest.mark.timeout(120)  # outer guard; run_workers has its own deadline below it

D_MODEL, D_HIDDEN, NUM_EXPERTS = 6, 5, 8
FP32_REL_TOL = 1e-5  # the project's fp32 tolerance (max abs error relative to the reference's scale)
WORLD_SIZES = (2, 4)
RUN_TIMEOUT_S = 90.0
BANK_NAMES = ("w_in", "w_out", "b_in", "b_out")

# name -> (router kind, expert activation, bias, tokens per rank for W=2, for W=4)
CASES = {
    "top1": ("top1", "relu", False, [5, 7], [3, 4, 5, 2]),
    "top2_capacity": ("top2_capacity", "swiglu", True, [9, 7], [6, 4, 7, 5]),
    "expert_choice": ("expert_choice", "gelu", False, [6, 5], [4, 3, 5, 4]),
    "rank_with_no_tokens": ("top2", "relu", False, [0, 9], [0, 6, 0, 5]),
    "one_token": ("top2", "swiglu", False, [1, 0], [0, 0, 1, 0]),
    "idle_experts": ("top1_idle_last_rank", "relu", True, [6, 6], [4, 4, 4, 4]),
}


def idle_experts(world_size: int) -> list[int]:
    """Experts of the last rank: the idle_experts case routes no token to them."""
    local = NUM_EXPERTS // world_size
    return list(range(NUM_EXPERTS - local, NUM_EXPERTS))


def build_case(name: str, world_size: int):
    """The case's router, full expert bank, per-rank tokens and per-rank upstream gradients (all from seeds)."""
    kind, activation, bias, splits2, splits4 = CASES[name]
    splits = splits2 if world_size == 2 else splits4
    gen = torch.Generator().manual_seed(11)
    if kind == "top1" or kind == "top1_idle_last_rank":
        router = TopKRouter(D_MODEL, NUM_EXPERTS, k=1, generator=gen)
    elif kind == "top2":
        router = TopKRouter(D_MODEL, NUM_EXPERTS, k=2, normalize=True, generator=gen)
    elif kind == "top2_capacity":
        router = TopKRouter(D_MODEL, NUM_EXPERTS, k=2, capacity_factor=0.5, generator=gen)
    else:
        router = ExpertChoiceRouter(D_MODEL, NUM_EXPERTS, capacity_factor=1.0, generator=gen)
    bank = ExpertBank(
        NUM_EXPERTS, D_MODEL, D_HIDDEN, activation=activation, bias=bias, generator=torch.Generator().manual_seed(12)
    )
    tokens = torch.randn(sum(splits), D_MODEL, generator=torch.Generator().manual_seed(13))
    upstream = torch.randn(sum(splits), D_MODEL, generator=torch.Generator().manual_seed(14))
    if kind == "top1_idle_last_rank":  # x[:, 0] = 4 and weight[idle, 0] = -10: idle logits < -35, others > -3
        tokens[:, 0] = 4.0
        with torch.no_grad():
            router.weight[idle_experts(world_size), 0] = -10.0
    return router, bank, list(tokens.split(splits)), list(upstream.split(splits))


def local_grad(param: torch.Tensor | None) -> torch.Tensor | None:
    if param is None:
        return None
    return param.grad if param.grad is not None else torch.zeros_like(param)


def equivalence_worker(rank: int, world_size: int) -> dict:
    """Run every case expert-parallel on this rank; return outputs, gradients, plans and exchange stats."""
    out = {}
    for name in CASES:
        router, bank, xs, gs = build_case(name, world_size)
        local = shard_experts(bank, rank, world_size)
        layer = MoELayer(router, local, dispatch=ExpertParallelDispatch(router.num_experts))
        x = xs[rank].clone().requires_grad_()
        y, plan = layer(x, return_plan=True)
        (y * gs[rank]).sum().backward()
        stats = layer.dispatcher.last_stats
        again = layer(xs[rank].clone().requires_grad_())  # same grad mode: torch's CPU linear kernels can differ by
        # an ulp between grad and no-grad mode (the single-process layer too), so bits are compared within a mode
        out[name] = {
            "same_bits_again": torch.equal(again, y.detach()),
            "y": y.detach(),
            "x_grad": x.grad,
            "router_grad": local_grad(router.weight),
            "bank_grads": {n: local_grad(getattr(local, n)) for n in BANK_NAMES},
            "pairs": sorted(zip(plan.token_index.tolist(), plan.expert_index.tolist())),
            "bytes_sent": stats.bytes_sent,
            "rows": (stats.rows_sent, stats.rows_returned),
        }
    out["adjoint"] = adjoint_products(rank, world_size)
    return out


ADJOINT_SPLITS = {2: [[3, 0], [2, 4]], 4: [[0, 2, 1, 0], [3, 0, 0, 1], [0, 0, 0, 0], [1, 2, 3, 4]]}  # [src][dst]


def adjoint_products(rank: int, world_size: int) -> tuple[float, float]:
    """<A u, v> and <u, A^T v> on this rank, A = all_to_all_rows (float64), A^T v = its autograd backward.

    Summed over ranks the two must agree: the backward is the adjoint of the forward exactly when they do for
    arbitrary u, v (uneven splits, with empty ones, on purpose).
    """
    table = ADJOINT_SPLITS[world_size]
    send = table[rank]
    recv = [table[src][rank] for src in range(world_size)]
    gen = torch.Generator().manual_seed(100 + rank)
    u = torch.randn(sum(send), 3, dtype=torch.float64, generator=gen, requires_grad=True)
    v = torch.randn(sum(recv), 3, dtype=torch.float64, generator=gen)
    moved = all_to_all_rows(u, send, recv, None)
    (moved * v).sum().backward()
    return float((moved * v).sum()), float((u.detach() * u.grad).sum())


@functools.lru_cache(maxsize=None)
def _run_once(world_size: int) -> tuple[list[dict] | None, WorkerFailure | None]:
    try:
        return run_workers(equivalence_worker, world_size, timeout_s=RUN_TIMEOUT_S), None
    except WorkerFailure as failure:
        return None, failure


def distributed_run(world_size: int) -> list[dict]:
    """Every rank's results at this world size; a failed run is cached too, so it is not repeated by each test."""
    ranks, failure = _run_once(world_size)
    if failure is not None:
        raise failure
    return ranks


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(|b|, tiny)."""
    if b.numel() == 0:
        return 0.0
    scale = max(float(b.abs().max()), 1e-30)
    return float((a.double() - b.double()).abs().max()) / scale


def single_process_reference(name: str, world_size: int) -> dict:
    """The single-process layer (full bank, dispatch="sorted") on each rank's tokens, with accumulated grads."""
    router, bank, xs, gs = build_case(name, world_size)
    layer = MoELayer(router, bank, dispatch="sorted")
    ys, x_grads, plans = [], [], []
    for x_rank, g_rank in zip(xs, gs):
        x = x_rank.clone().requires_grad_()
        y, plan = layer(x, return_plan=True)
        if y.requires_grad:  # a rank without assignments contributes no gradient (and has no graph here)
            (y * g_rank).sum().backward()
        ys.append(y.detach())
        x_grads.append(x.grad if x.grad is not None else torch.zeros_like(x))
        plans.append(plan)
    bank_grads = {n: local_grad(getattr(bank, n)) for n in BANK_NAMES if getattr(bank, n) is not None}
    return {"y": ys, "x_grad": x_grads, "router_grad": router.weight.grad, "bank_grads": bank_grads, "plans": plans}


CASE_PARAMS = [pytest.param(w, name, id=f"W{w}-{name}") for w in WORLD_SIZES for name in CASES]


@pytest.mark.parametrize("world_size,name", CASE_PARAMS)
def test_matches_single_process_layer(world_size, name):
    ranks = [r[name] for r in distributed_run(world_size)]
    ref = single_process_reference(name, world_size)
    for rank, got in enumerate(ranks):
        expected_pairs = sorted(zip(ref["plans"][rank].token_index.tolist(), ref["plans"][rank].expert_index.tolist()))
        assert got["pairs"] == expected_pairs, f"rank {rank}: plan differs from the single-process plan"
        assert relative_error(got["y"], ref["y"][rank]) < FP32_REL_TOL, f"rank {rank}: output"
        assert relative_error(got["x_grad"], ref["x_grad"][rank]) < FP32_REL_TOL, f"rank {rank}: grad wrt x"
    router_grad = torch.stack([r["router_grad"] for r in ranks]).sum(0)
    assert relative_error(router_grad, ref["router_grad"]) < FP32_REL_TOL, "grad wrt router weight (summed over ranks)"
    for param, full in ref["bank_grads"].items():
        sharded = torch.cat([r["bank_grads"][param] for r in ranks])
        assert relative_error(sharded, full) < FP32_REL_TOL, f"grad wrt experts.{param}"


@pytest.mark.parametrize("world_size,name", CASE_PARAMS)
def test_bytes_sent_count_rows_crossing_ranks(world_size, name):
    """Rows sent = own assignments owned elsewhere; rows returned = others' assignments owned here (counted from
    the single-process plans, independently of the dispatch's own bookkeeping)."""
    ranks = [r[name] for r in distributed_run(world_size)]
    plans = single_process_reference(name, world_size)["plans"]
    local = NUM_EXPERTS // world_size
    owners = [plan.expert_index // local for plan in plans]
    for rank, got in enumerate(ranks):
        sent = int((owners[rank] != rank).sum())
        returned = sum(int((owners[src] == rank).sum()) for src in range(world_size) if src != rank)
        assert got["rows"] == (sent, returned)
        assert got["bytes_sent"] == (sent + returned) * D_MODEL * 4  # float32 rows


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_case_preconditions_hold(world_size):
    """The uneven-load cases really are uneven: drops happen, a rank sends nothing, experts and a rank idle."""
    drops = [p.dropped for p in single_process_reference("top2_capacity", world_size)["plans"]]
    assert sum(drops) > 0, "capacity case dropped nothing"
    empty = single_process_reference("rank_with_no_tokens", world_size)["plans"]
    assert empty[0].num_tokens == 0 and empty[0].num_assignments == 0
    one = single_process_reference("one_token", world_size)["plans"]
    assert sum(p.num_tokens for p in one) == 1
    idle = single_process_reference("idle_experts", world_size)["plans"]
    load = torch.stack([p.expert_counts for p in idle]).sum(0)
    assert int(load[idle_experts(world_size)].sum()) == 0 and int(load.sum()) == sum(p.num_tokens for p in idle)
    assert distributed_run(world_size)[world_size - 1]["idle_experts"]["rows"][1] == 0, "last rank returned rows"


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_same_inputs_give_same_bits(world_size):
    """A second forward on every rank reproduces the first bit for bit, in every case."""
    for rank, results in enumerate(distributed_run(world_size)):
        assert all(results[name]["same_bits_again"] for name in CASES), f"rank {rank}"


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_all_to_all_backward_is_its_adjoint(world_size):
    products = [r["adjoint"] for r in distributed_run(world_size)]
    forward = sum(p[0] for p in products)
    adjoint = sum(p[1] for p in products)
    assert abs(forward - adjoint) <= 1e-12 * max(1.0, abs(forward)), (forward, adjoint)
