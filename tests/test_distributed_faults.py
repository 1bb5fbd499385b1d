"""Expert-parallel faults and bad input: a rank that exits or stalls fails the run with a clear error within a set
time (no hang, every process reaped); E not divisible by W, mismatched experts across ranks, disagreeing grad mode
and an uninitialised process group give clear errors."""

from __future__ import annotations

import copy
import os
import time

import pytest
import torch

from sparse_bench import ExpertBank, MoELayer
from sparse_bench.distributed import ExpertParallelDispatch, WorkerFailure, run_workers, shard_experts
from sparse_bench.routing import TopKRouter

pytestmark = pytest.mark.timeout(120)  # outer guard; every run_workers call has its own, shorter deadline

D_MODEL, D_HIDDEN, NUM_EXPERTS = 6, 5, 4
PG_TIMEOUT_S = 3.0  # a collective waiting for a stalled peer raises after this long
GRACE_S = PG_TIMEOUT_S + 2.0  # long enough for a survivor to raise its own (timeout) error before it is killed
DEADLINE_S = 45.0  # run_workers deadline for the fault runs
FAULT_BOUND_S = 25.0  # a fault must be reported well before the deadline (gloo timeout + grace + start-up)


def make_layer(rank: int, world_size: int, num_experts: int = NUM_EXPERTS, d_hidden: int = D_HIDDEN) -> MoELayer:
    router = TopKRouter(D_MODEL, num_experts, k=2, generator=torch.Generator().manual_seed(1))
    bank = ExpertBank(num_experts, D_MODEL, d_hidden, generator=torch.Generator().manual_seed(2))
    return MoELayer(router, shard_experts(bank, rank, world_size), dispatch=ExpertParallelDispatch(num_experts))


def tokens(rank: int, count: int = 5) -> torch.Tensor:
    return torch.randn(count, D_MODEL, generator=torch.Generator().manual_seed(rank))


def exit_early_worker(rank: int, world_size: int) -> None:
    """Rank 1 exits (code 3) before the forward; rank 0 is left inside the exchange."""
    layer = make_layer(rank, world_size)
    if rank == 1:
        os._exit(3)
    layer(tokens(rank)).sum().backward()


def stalled_rank_worker(rank: int, world_size: int) -> None:
    """Rank 1 never joins the collective (sleeps); rank 0's exchange must time out, not hang."""
    layer = make_layer(rank, world_size)
    if rank == 1:
        time.sleep(600)
    layer(tokens(rank))


def sleep_worker(rank: int, world_size: int) -> None:
    time.sleep(600)


def assert_all_reaped(failure: WorkerFailure) -> None:
    assert all(code is not None for code in failure.exitcodes), failure.exitcodes
    for pid in failure.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # joined processes no longer exist (not even as zombies)


def run_fault(fn, timeout_s: float = DEADLINE_S) -> tuple[WorkerFailure, float]:
    started = time.monotonic()
    with pytest.raises(WorkerFailure) as info:
        run_workers(fn, 2, timeout_s=timeout_s, pg_timeout_s=PG_TIMEOUT_S, grace_s=GRACE_S)
    return info.value, time.monotonic() - started


def test_rank_exiting_early_fails_fast_and_reaps():
    failure, elapsed = run_fault(exit_early_worker)
    assert elapsed < FAULT_BOUND_S
    assert "exited with code 3" in failure.statuses[1]
    assert failure.statuses[0].startswith("raised"), failure.statuses[0]
    assert "rank 1: exited with code 3" in str(failure)
    assert_all_reaped(failure)


def test_stalled_rank_times_out_and_reaps():
    failure, elapsed = run_fault(stalled_rank_worker)
    assert elapsed < FAULT_BOUND_S
    assert failure.statuses[0].startswith("raised"), failure.statuses[0]
    assert "terminated" in failure.statuses[1]
    assert_all_reaped(failure)


def test_deadline_terminates_every_rank():
    failure, elapsed = run_fault(sleep_worker, timeout_s=8.0)
    assert 8.0 <= elapsed < 8.0 + FAULT_BOUND_S
    assert "timed out after 8 s" in str(failure)
    assert all("killed" in status for status in failure.statuses), failure.statuses
    assert_all_reaped(failure)


def error_of(call) -> str:
    try:
        call()
    except (TypeError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    return "no error"


def bad_input_worker(rank: int, world_size: int) -> dict:
    """Each bad input on 2 ranks; every rank must raise (so none is left waiting), then the group still works."""
    router6 = TopKRouter(D_MODEL, 6, k=1)
    local2 = ExpertBank(2, D_MODEL, D_HIDDEN)
    router5, bank5, bank6 = TopKRouter(D_MODEL, 5, k=1), ExpertBank(5, D_MODEL, D_HIDDEN), ExpertBank(6, D_MODEL, D_HIDDEN)
    errors = {
        "indivisible_layer": error_of(lambda: MoELayer(router5, local2, dispatch=ExpertParallelDispatch(5))),
        "indivisible_shard": error_of(lambda: shard_experts(bank5, rank, world_size)),
        "wrong_local_count": error_of(lambda: MoELayer(router6, bank6, dispatch=ExpertParallelDispatch(6))),
        "plan_expert_count": error_of(lambda: ExpertParallelDispatch(NUM_EXPERTS)(tokens(rank), router6(tokens(rank)), local2)),
    }
    uneven = make_layer(rank, world_size, d_hidden=D_HIDDEN + rank)  # rank 1's experts are wider
    errors["mismatched_hidden"] = error_of(lambda: uneven(tokens(rank)))
    layer = make_layer(rank, world_size)
    with torch.set_grad_enabled(rank == 0):
        errors["grad_mode"] = error_of(lambda: layer(tokens(rank)))
    y = layer(tokens(rank))  # the group is still usable: both ranks raised at the same point
    y.sum().backward()
    errors["after"] = tuple(y.shape)
    errors["deepcopy_equal"] = torch.equal(copy.deepcopy(layer)(tokens(rank)), y)  # a copy shares the group
    return errors


@pytest.fixture(scope="module")
def bad_input_errors():
    return run_workers(bad_input_worker, 2, timeout_s=DEADLINE_S, pg_timeout_s=PG_TIMEOUT_S, grace_s=GRACE_S)


@pytest.mark.parametrize(
    "case,expected",
    [
        ("indivisible_layer", "ValueError: num_experts=5 is not divisible by the process group's world size 2"),
        ("indivisible_shard", "ValueError: num_experts=5 is not divisible by the process group's world size 2"),
        ("wrong_local_count", "ValueError: the local expert bank holds 6 experts but num_experts=6 over world size 2"),
        ("plan_expert_count", "ValueError: plan routes to 6 experts but the dispatch expects 4"),
        ("mismatched_hidden", "ValueError: expert-parallel ranks disagree on in_width"),
        ("grad_mode", "ValueError: expert-parallel ranks disagree on grad_mode"),
    ],
)
def test_bad_input_raises_on_every_rank(bad_input_errors, case, expected):
    for rank, errors in enumerate(bad_input_errors):
        assert errors[case].startswith(expected), f"rank {rank}: {errors[case]}"


def test_mismatch_message_names_both_ranks(bad_input_errors):
    assert "rank 0 has 5 but rank 1 has 6" in bad_input_errors[0]["mismatched_hidden"]
    assert "rank 1 has 6 but rank 0 has 5" in bad_input_errors[1]["mismatched_hidden"]


def test_group_usable_after_bad_input(bad_input_errors):
    assert [errors["after"] for errors in bad_input_errors] == [(5, D_MODEL), (5, D_MODEL)]


def test_deepcopied_layer_shares_the_group(bad_input_errors):
    assert [errors["deepcopy_equal"] for errors in bad_input_errors] == [True, True]


def test_uninitialised_process_group_is_a_clear_error():
    assert not torch.distributed.is_initialized()
    router = TopKRouter(D_MODEL, NUM_EXPERTS, k=1)
    bank = ExpertBank(NUM_EXPERTS, D_MODEL, D_HIDDEN)
    with pytest.raises(ValueError, match="ExpertParallelDispatch"):  # a dispatcher object, not a name
        MoELayer(router, bank, dispatch="expert_parallel")
    with pytest.raises(ValueError, match="torch.distributed is not initialised"):
        ExpertParallelDispatch(NUM_EXPERTS)


def test_process_group_argument_checked():
    router = TopKRouter(D_MODEL, NUM_EXPERTS, k=1)
    bank = ExpertBank(NUM_EXPERTS, D_MODEL, D_HIDDEN)
    with pytest.raises(TypeError, match="process_group must be a torch.distributed.ProcessGroup"):
        ExpertParallelDispatch(NUM_EXPERTS, process_group="world")
    with pytest.raises(TypeError, match="dispatch must be a strategy name or a callable"):
        MoELayer(router, bank, dispatch=object())


@pytest.mark.parametrize("rank,world_size", [(2, 2), (-1, 2), (0, 0)])
def test_shard_experts_rejects_bad_rank(rank, world_size):
    with pytest.raises(ValueError, match="rank|world_size"):
        shard_experts(ExpertBank(4, D_MODEL, D_HIDDEN), rank, world_size)


def test_shard_experts_slices_contiguous_blocks():
    bank = ExpertBank(4, D_MODEL, D_HIDDEN, activation="swiglu", bias=True)
    shards = [shard_experts(bank, rank, 2) for rank in range(2)]
    for name in ("w_in", "w_out", "b_in", "b_out"):
        assert torch.equal(torch.cat([getattr(s, name) for s in shards]), getattr(bank, name))
    assert all(s.activation == "swiglu" and s.num_experts == 2 for s in shards)
