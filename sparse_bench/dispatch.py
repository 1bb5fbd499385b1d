"""Dispatch strategies: move tokens to experts and back. Every one is ``(x, plan, bank) -> y``.

x: (T, d_model); plan: a RoutingPlan over those T tokens; bank: an ExpertBank. Returns y: (T, d_model) with
``y[t] = sum over assignments a of token t of weight[a] * expert_{expert_index[a]}(x[t])`` (0 for a token with no
assignment). All strategies compute the same function; they differ in speed and memory only. Each checks that
x, plan and bank match before it starts, and refuses an output that is not finite (``checked_strategy``).
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from .experts import ExpertBank
from .kernels import expert_chunks, sorted_swiglu
from .routing.plan import RoutingPlan, rank_in_group
from .validation import check_finite_image, check_tokens


def check_plan_matches(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> None:
    """Raise TypeError/ValueError when x is not a finite (T, d_model) tensor in the bank's dtype or the plan
    does not describe x and bank."""
    if not isinstance(bank, ExpertBank):
        raise TypeError(f"bank must be an ExpertBank, got {type(bank).__name__}")
    check_tokens(x, bank.d_model)  # one sum over x: an Inf that relu turns into 0 would pass the output check
    if not isinstance(plan, RoutingPlan):
        raise TypeError(f"plan must be a RoutingPlan, got {type(plan).__name__}")
    if plan.num_tokens != x.shape[0]:
        raise ValueError(f"plan routes {plan.num_tokens} tokens but x has {x.shape[0]}")
    if plan.num_experts != bank.num_experts:
        raise ValueError(f"plan routes to {plan.num_experts} experts but the bank holds {bank.num_experts}")
    bank.check_input(x, "x")


Strategy = Callable[[torch.Tensor, RoutingPlan, ExpertBank], torch.Tensor]


def checked_strategy(strategy: Strategy) -> Strategy:
    """The public form of a strategy: x, plan and bank checked against each other first (x finite), and an
    output holding NaN/Inf refused, naming x (a finite x whose expert outputs overflow the dtype), instead of
    returned. The checks are one sum over x and one over y; the undecorated strategy is ``.__wrapped__``."""
    @functools.wraps(strategy)
    def dispatch(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
        check_plan_matches(x, plan, bank)
        y = strategy(x, plan, bank)
        check_finite_image(y, x, "x", "the experts' combined output")
        return y
    return dispatch


def combine_by_token(rows: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
    """Sum weighted expert outputs per token without atomics (same bits on every run, CPU and CUDA).

    rows: (A, d_model), already multiplied by their weights, in plan order. Returns (T, d_model). Each row is
    written to its own (token, slot) cell of a (T, K, d_model) buffer, K = most assignments of any token, which
    is then summed over slots in a fixed order.
    """
    T, A = plan.num_tokens, plan.num_assignments
    if A == 0:
        return rows.new_zeros(T, rows.shape[1])
    with torch.no_grad():
        slot = rank_in_group(plan.token_index, T)  # (A,) in plan order within each token
        width = int(slot.max()) + 1
    buffer = rows.new_zeros(T, width, rows.shape[1])  # (T, K, d_model)
    buffer = buffer.index_put((plan.token_index, slot), rows)
    return buffer.sum(dim=1)


def weighted(rows: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
    """rows: (A, d_model) expert outputs in plan order, scaled by the plan's combine weights."""
    return rows * plan.weight.to(rows.dtype).unsqueeze(1)


def uniform_token_order(plan: RoutingPlan) -> tuple[torch.Tensor, int] | None:
    """(order, k) when every token has the same number k >= 1 of assignments (dropless top-k), else None.

    order: (A,) int64, the assignments listed token by token (by expert within a token), so that
    ``rows[order].view(T, k, d)`` holds each token's k rows.
    """
    T, A = plan.num_tokens, plan.num_assignments
    if T == 0 or A == 0 or A % T:
        return None
    with torch.no_grad():
        if not bool((plan.token_counts() == A // T).all()):
            return None
        order = torch.argsort(plan.token_index, stable=True)  # (A,)
    return order, A // T


def combine_rows(
    source: torch.Tensor,
    row_of_assignment: torch.Tensor,
    plan: RoutingPlan,
    uniform: tuple[torch.Tensor, int] | None | str = "compute",
) -> torch.Tensor:
    """``y[t] = sum of weight[a] * source[row_of_assignment[a]]`` over t's assignments, fixed order, no atomics.

    source: (R, d_model) unweighted expert outputs; row_of_assignment: (A,) int64, each assignment's row in source.
    uniform: ``uniform_token_order(plan)`` when the caller has it. Returns (T, d_model). Uniform k: one gather in token order and a (T, 1, k) @ (T, k, d) batched matmul, so no
    (T, K, d) zero buffer and no separate weighting pass. Otherwise: ``index_add`` on CPU (a serial loop over
    rows there, hence deterministic) and the atomics-free ``combine_by_token`` elsewhere.
    """
    T, d = plan.num_tokens, source.shape[1]
    if plan.num_assignments == 0:
        return source.new_zeros(T, d)
    if isinstance(uniform, str):  # not given: compute it (callers that already have it pass it, or None)
        uniform = uniform_token_order(plan)
    if uniform is not None:
        order, k = uniform
        if k == 1:  # one row per token: a scaled gather (a (T, 1, 1) @ (T, 1, d) bmm is slower)
            return source.index_select(0, row_of_assignment[order]) * plan.weight[order].to(source.dtype)[:, None]
        rows = source.index_select(0, row_of_assignment[order]).view(T, k, d)  # (T, k, d)
        weights = plan.weight[order].to(source.dtype).view(T, 1, k)  # (T, 1, k)
        return torch.bmm(weights, rows).squeeze(1)
    rows = weighted(source.index_select(0, row_of_assignment), plan)  # (A, d)
    if source.device.type == "cpu":
        return rows.new_zeros(T, d).index_add(0, plan.token_index, rows)
    return combine_by_token(rows, plan)


class _GatherTokens(torch.autograd.Function):
    """``rows = x_ext[source]`` (x_ext = x plus a zero row at index T), whose backward sums each token's k copies
    in token order: ``grad_x[t] = sum_j grad_rows[copies[t, j]]``. No scatter, so no atomics and the same bits on
    every run on CUDA too (autograd's own index_select backward is an index_add, atomic on CUDA)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, source: torch.Tensor, copies: torch.Tensor) -> torch.Tensor:
        """x: (T, d); source: (R,) int64 in [0, T] (T = zero row); copies: (T, k) rows of ``rows`` per token."""
        ctx.save_for_backward(copies)
        x_ext = torch.cat([x, x.new_zeros(1, x.shape[1])])  # (T + 1, d)
        return x_ext.index_select(0, source)  # (R, d)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_rows: torch.Tensor):
        (copies,) = ctx.saved_tensors
        T, k = copies.shape
        grad_x = grad_rows.index_select(0, copies.reshape(-1)).view(T, k, grad_rows.shape[1]).sum(dim=1)
        return grad_x, None, None


def gather_tokens(x: torch.Tensor, source: torch.Tensor, row_of_assignment: torch.Tensor, uniform) -> torch.Tensor:
    """Rows ``x[source]`` (source == T reads zeros), differentiable in x.

    row_of_assignment: (A,) row of each plan assignment among the gathered rows; uniform: the plan's
    ``uniform_token_order`` or None. Uniform plans get the atomics-free backward of ``_GatherTokens``.
    """
    if uniform is not None:
        order, k = uniform
        return _GatherTokens.apply(x, source, row_of_assignment[order].view(x.shape[0], k))
    x_ext = torch.cat([x, x.new_zeros(1, x.shape[1])])  # (T + 1, d)
    return x_ext.index_select(0, source)


@checked_strategy
def dispatch_loop(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """The simple reference: one boolean mask per expert, gather, expert FFN, index_add into y."""
    y = x.new_zeros(x.shape)
    weights = bank.per_expert_weights()
    for expert in range(bank.num_experts):
        mask = plan.expert_index == expert  # (A,)
        if not bool(mask.any()):
            continue
        tokens = plan.token_index[mask]
        out = bank.apply_expert(x[tokens], weights[expert]) * plan.weight[mask].to(x.dtype).unsqueeze(1)
        y = y.index_add(0, tokens, out)
    return y


@checked_strategy
def dispatch_einsum(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """GShard-style: one-hot (T, E, C) dispatch and combine tensors, einsum in and out of (E, C, d) slabs."""
    if plan.num_assignments == 0:
        return x.new_zeros(x.shape)
    T, E = plan.num_tokens, plan.num_experts
    capacity = int(plan.expert_counts.max())
    slot = plan.slot_in_expert  # (A,)
    index = (plan.token_index, plan.expert_index, slot)
    dispatch = x.new_zeros(T, E, capacity).index_put(index, x.new_ones(plan.num_assignments))  # (T, E, C)
    combine = x.new_zeros(T, E, capacity).index_put(index, plan.weight.to(x.dtype))  # (T, E, C)
    expert_in = torch.einsum("tec,td->ecd", dispatch, x)  # (E, C, d)
    expert_out = bank.forward_batched(expert_in)  # (E, C, d)
    return torch.einsum("tec,ecd->td", combine, expert_out)


# CPU chunking of "sorted": glibc serves every allocation above 32 MiB with a fresh mmap, so a full-size (A, d)
# temporary is page-faulted in again on every call. Measured here (1 thread, 2026-11-24): gathering 32,768 rows
# of 512 floats (64 MiB) took 41.2 ms into a new tensor vs 13.1 ms into a reused one. Chunks are recycled by the
# heap instead. Forward medians (2 threads, d=512, torch.utils.benchmark, alternating runs) by chunk size:
#   E=8 k=8 T=4096 h=256:  1024 rows 289/286/303/337 ms, 2048 rows 311/307/341/302, unchunked 422 (HF 336-363)
#   E=8 k=2 T=4096 h=1024:  256 rows 313/307, 512 rows 299/301, 1024 rows 297, unchunked 320 (HF 300-306)
#   E=8 k=8 T=4096 h=1024:  256 rows 1170, 512 rows 1130, 1024 rows 1147, unchunked 1360 (HF 1271)
# So chunks of SORTED_CHUNK_ROWS rows (the floor's block), fewer if a row's widest temporary would push a chunk
# past SORTED_CHUNK_BYTES (large d or h).
SORTED_CHUNK_ROWS = 1024
SORTED_CHUNK_BYTES = 16 * 2**20


@checked_strategy
def dispatch_sorted(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Rows in expert order, one GEMM pair per expert segment, weighted sum per token.

    CPU: chunk by chunk (``expert_chunks``), each chunk's outputs added into y with ``index_add_`` (a serial,
    hence deterministic, loop on CPU), so temporaries stay small and are reused; with autograd, bias-free SwiGLU
    runs the same chunks inside one Function (``sorted_swiglu``: one buffer per weight gradient). Other
    devices: one gather of all A rows, one grouped call and the atomics-free ``combine_rows``.
    """
    T, d = x.shape
    if plan.num_assignments == 0:
        return x.new_zeros(T, d)
    if x.device.type != "cpu":
        uniform = uniform_token_order(plan)
        row = torch.arange(plan.num_assignments, device=x.device)  # (A,) assignment a is row a
        rows = bank.forward_grouped(gather_tokens(x, plan.token_index, row, uniform), plan.expert_counts)
        return combine_rows(rows, row, plan, uniform)
    row_bytes = max(d, bank.w_in.shape[2]) * x.element_size()  # the widest temporary per row
    max_rows = max(1, min(SORTED_CHUNK_ROWS, SORTED_CHUNK_BYTES // row_bytes))
    if torch.is_grad_enabled() and bank.activation == "swiglu" and not bank.has_bias:
        return sorted_swiglu(x, plan, bank, max_rows)
    weight = plan.weight.to(x.dtype).unsqueeze(1)  # (A, 1)
    y = x.new_zeros(T, d)
    experts = bank.per_expert_weights()
    for first, start, counts in expert_chunks(plan.expert_counts.tolist(), max_rows):
        stop = start + sum(counts)
        tokens = plan.token_index[start:stop]
        out = bank.forward_grouped(x.index_select(0, tokens), counts, first, experts)  # (rows, d)
        scaled = out * weight[start:stop] if torch.is_grad_enabled() else out.mul_(weight[start:stop])
        y.index_add_(0, tokens, scaled)
    return y


@checked_strategy
def dispatch_grouped(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Rows in expert order, each projection one grouped GEMM over all experts
    (``ExpertBank.forward_grouped_mm``: ``torch.nn.functional.grouped_mm``, a single CUTLASS kernel on CUDA
    bf16 at sm90/sm100, where "sorted" launches two products per expert), autograd through its own derivative,
    combined like "sorted" off the CPU (the atomics-free ``combine_rows``). Opt-in: "auto" does not take it
    before its crossover is measured."""
    if plan.num_assignments == 0:
        return x.new_zeros(x.shape)
    uniform = uniform_token_order(plan)
    row = torch.arange(plan.num_assignments, device=x.device)  # (A,) assignment a is row a
    rows = bank.forward_grouped_mm(gather_tokens(x, plan.token_index, row, uniform), plan.expert_counts)
    return combine_rows(rows, row, plan, uniform)


def padded_slots(plan: RoutingPlan) -> tuple[torch.Tensor, int]:
    """(A,) row of each assignment in a flattened (E, C, d) slab, and C = the largest realised expert count."""
    capacity = int(plan.expert_counts.max())
    return plan.expert_index * capacity + plan.slot_in_expert, capacity


@checked_strategy
def dispatch_padded(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Gather rows into (E, C_max, d) slabs, two batched matmuls per slab, combine straight from the slab.

    C_max is the largest realised expert count, so padding never drops an assignment. Pad slots read an
    appended zero row (on CPU, token T - 1): their outputs are never combined and their gradients are exactly
    zero. CPU without autograd: the experts go in several slabs (``_padded_by_expert_groups``), each group's
    outputs added into y with ``index_add_``. With autograd (where every slab's activations are kept for backward
    anyway, and split weights would get their gradients concatenated, a second copy) and on other devices: one
    slab for all experts and the atomics-free ``combine_rows``.
    """
    if plan.num_assignments == 0:
        return x.new_zeros(x.shape)
    T, d = x.shape  # tokens, d_model
    in_slabs = x.device.type == "cpu" and not torch.is_grad_enabled()
    with torch.no_grad():
        slab_row, capacity = padded_slots(plan)  # (A,)
        pad_token = T - 1 if in_slabs else T  # T: the appended zero row
        source = torch.full((bank.num_experts * capacity,), pad_token, dtype=torch.int64, device=x.device)
        source[slab_row] = plan.token_index  # (E * C,) token read by each slab row
    if in_slabs:
        return _padded_by_expert_groups(x, plan, bank, source, slab_row, capacity)
    uniform = uniform_token_order(plan)
    slab = gather_tokens(x, source, slab_row, uniform).view(bank.num_experts, capacity, d)  # (E, C, d)
    out = bank.forward_batched(slab).view(-1, d)  # (E * C, d)
    return combine_rows(out, slab_row, plan, uniform)


PADDED_MIN_GROUPS = 4  # CPU "padded" cuts the experts into at least this many slabs (peak memory, see below)


def _padded_by_expert_groups(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank, source: torch.Tensor,
                             slab_row: torch.Tensor, capacity: int) -> torch.Tensor:
    """The CPU inference body of ``dispatch_padded``: source (E * C,) and slab_row (A,) as built there.

    At least PADDED_MIN_GROUPS slabs, each under SORTED_CHUNK_BYTES: one slab for all experts held the padded
    input, pre-activation and output of every slot at once, 1.4-2.0x the layer's activation budget at E=64,
    T=512 (waste up to 2.4). Pad slots read token T - 1 instead of an appended zero row (no copy of x): their
    outputs are never combined, so their values do not matter.
    """
    T, d = x.shape
    row_bytes = max(d, bank.w_in.shape[2]) * x.element_size()  # the widest temporary per slab row
    group = -(-bank.num_experts // PADDED_MIN_GROUPS)  # experts per slab
    group = max(1, min(group, SORTED_CHUNK_BYTES // (capacity * row_bytes)))
    ends = plan.expert_counts.cumsum(0).tolist()  # assignments are in expert order
    weight = plan.weight.to(x.dtype).unsqueeze(1)  # (A, 1)
    y = x.new_zeros(T, d)
    for first, weights in zip(range(0, bank.num_experts, group), bank.weight_groups(group)):
        last = first + weights[0].shape[0]  # experts [first, last)
        start, stop = ends[first - 1] if first else 0, ends[last - 1]
        if start == stop:
            continue
        slab = x.index_select(0, source[first * capacity:last * capacity]).view(-1, capacity, d)
        out = bank.forward_batched(slab, weights).view(-1, d)  # (G * C, d)
        rows = out.index_select(0, slab_row[start:stop] - first * capacity)  # (assignments of the group, d)
        y.index_add_(0, plan.token_index[start:stop], rows.mul_(weight[start:stop]))  # no autograd here: in place
    return y


# Crossover for dispatch="auto" (CPU fp32, d_model=512, SwiGLU, top-k router): `python -m sparse_bench.bench.calibrate
# --threads 2 --min-run-time 0.3`, 2026-11-24, after "sorted" moved its products to oneDNN (``gemm.mm``) and
# "padded" went to expert-group slabs. sorted / padded forward time (> 1: padded faster):
#   E=8, all 12 points: 0.62-0.97 (sorted wins everywhere)
#   E=64, h=256 (1.5 MiB of weights per expert):  T=512: 1.10 (k=1, waste 2.38), 1.18 (k=2), 1.17 (k=8, 64 rows/expert);
#         T=4096 (64-512 rows/expert): 0.78-0.85
#   E=64, h=1024 (6 MiB per expert): 0.69-0.88 at all 6 points, T=512 included
# One batched matmul (MKL) beats many separate products only when there are many experts with few rows each
# *and* each expert's product is small; for larger experts oneDNN's per-expert products win despite the
# barriers. Padding waste stays <= 2.4 on the grid; the waste bound caps the FLOPs and memory padding may add on
# skewed plans. Before the oneDNN move, padded also won at h=1024 (1.17-1.31); with 1 thread "sorted" won at all
# 7 points measured (CPU time, sorted/padded 0.80-0.92). Re-measure with the command above.
# With prepacked expert weights (``ExpertBank.prepack``): `python -m sparse_bench.bench.calibrate --threads 2
# --min-run-time 0.3 --prepack`, 2026-11-24, sorted (packed) / padded forward time: 0.50-0.99 at 22 of the 24
# grid points (E=64: 0.50-0.99; h=1024: 0.50-0.79); E=8 T=512 h=256 k=1 and k=2 read 1.10 and 1.53 in that run,
# which overlapped other work, and 0.76-0.96 and 0.76-0.80 re-measured alone (two runs each). Packing speeds up
# only the per-expert products, so "sorted" wins everywhere and auto always takes it on packed weights.
# Re-measured 2026-11-25 under the benchmarks' default host allocator ("retain", ``bench/allocator.py``), same
# command: the same decisions. E=8: 0.74-0.93 (1.03 at k=8 T=512 h=256); E=64 h=1024: 0.65-0.87; E=64 h=256:
# T=512 1.07, 1.11, 1.02 (padded, as chosen), T=4096 0.95-0.99 (k=1, where auto takes padded: 0.96).
# Forward+backward (the layer's weights require grad, autograd on), same build and allocator: `python -m
# sparse_bench.bench.calibrate --threads 2 --min-run-time 0.3 --backward`, 2026-11-25, sorted / padded fwd+bwd
# time, two runs (a script doing the same, then that command). E=64, h=1024, T=512: 1.45 / 1.14 (k=1), 1.27 /
# 1.07 (k=2), 1.05 / 0.96 (k=8): padded wins with 6 MiB experts too, where the forward alone favours sorted,
# at 8 and 16 rows per expert; at 64 (k=8 here, and k=1 T=4096: 0.92 / 0.84, where the full ratio table read
# fwd+bwd R 1.94 with padded against 1.71 with sorted) it does not. So with autograd,
# experts up to AUTO_PADDED_MAX_EXPERT_BYTES_WITH_GRAD take padded at <= AUTO_PADDED_MAX_ROWS_PER_LARGE_EXPERT
# rows per expert (between the 16 where padded won and the 64 where it did not).
# E=64 h=256 T=512: 1.10-1.38 (padded, as chosen); E=64 T=4096: 0.84-1.05 (k=1 h=256: 1.05 / 1.04, padded as
# chosen; k=2 and k=8 h=256: 0.94-1.03 with 128-512 rows per expert, sorted as chosen); E=8: 0.79-1.10 (sorted;
# 1.10 / 0.95 and 1.05 / 1.02 at k=8 T=512, where every token goes to every expert: noise).
# Re-measured 2026-12-03 with the opt-in "grouped" strategy beside them (same command, --threads 2, forward
# and --backward): the same decisions (forward E=64 h=256 T=512: 1.12 / 1.24 / 1.03; h=1024 and E=8:
# 0.64-1.01). grouped / sorted: forward 0.90-1.44 (1.0-1.2 at 19 of 24 points), forward+backward 0.84-1.25;
# where auto takes padded, grouped came within 0.94-1.02 of it. So auto does not take grouped on CPU; its CUDA
# crossover (one CUTLASS kernel for all experts in bf16) is for a GPU run to measure
# (scripts/device_check.sh).
AUTO_PADDED_MIN_THREADS = 2
AUTO_PADDED_MIN_EXPERTS = 16
AUTO_PADDED_MAX_ROWS_PER_EXPERT = 64
AUTO_PADDED_MAX_EXPERT_BYTES = 3 * 2**20  # between the 1.5 MiB (padded wins) and 6 MiB (sorted wins) measured
AUTO_PADDED_MAX_EXPERT_BYTES_WITH_GRAD = 6 * 2**20  # the largest measured; padded won there at <= 16 rows
AUTO_PADDED_MAX_ROWS_PER_LARGE_EXPERT = 32
AUTO_PADDED_MAX_WASTE = 3.0


def padding_waste(plan: RoutingPlan) -> float:
    """E * C_max / A: slab rows computed per routed row by "padded" (1.0 = perfectly balanced)."""
    if plan.num_assignments == 0:
        return 1.0
    return plan.num_experts * int(plan.expert_counts.max()) / plan.num_assignments


def choose_dispatch(plan: RoutingPlan, bank: ExpertBank, device: torch.device, num_threads: int | None = None,
                    backward: bool | None = None) -> str:
    """The strategy "auto" runs for this plan and bank: "padded" or "sorted" (see the crossover notes above).

    "padded" when there are >= 2 threads (or a GPU), at least AUTO_PADDED_MIN_EXPERTS experts, at most
    AUTO_PADDED_MAX_ROWS_PER_EXPERT rows per expert on average, at most AUTO_PADDED_MAX_EXPERT_BYTES of weights
    per expert (when a backward follows: up to AUTO_PADDED_MAX_EXPERT_BYTES_WITH_GRAD, with at most
    AUTO_PADDED_MAX_ROWS_PER_LARGE_EXPERT rows per expert above the forward's cap) and padding waste <=
    AUTO_PADDED_MAX_WASTE; "sorted" otherwise, and always "sorted" for a forward without autograd on prepacked
    weights. backward: whether the call is recorded for a backward through the expert weights (None: grad mode
    is on and the bank's weights require grad). The CUDA crossover is not measured yet.
    """
    threads = torch.get_num_threads() if num_threads is None else num_threads
    if backward is None:
        backward = torch.is_grad_enabled() and (bank.w_in.requires_grad or bank.w_out.requires_grad)
    if bank.prepack_applies() and not torch.is_grad_enabled():
        return "sorted"
    if device.type == "cpu" and threads < AUTO_PADDED_MIN_THREADS or plan.num_experts < AUTO_PADDED_MIN_EXPERTS:
        return "sorted"
    expert_bytes = (bank.w_in[0].numel() + bank.w_out[0].numel()) * bank.w_in.element_size()
    if expert_bytes <= AUTO_PADDED_MAX_EXPERT_BYTES:
        max_rows = AUTO_PADDED_MAX_ROWS_PER_EXPERT
    elif backward and expert_bytes <= AUTO_PADDED_MAX_EXPERT_BYTES_WITH_GRAD:
        max_rows = AUTO_PADDED_MAX_ROWS_PER_LARGE_EXPERT
    else:
        return "sorted"
    small = plan.num_assignments <= max_rows * plan.num_experts
    return "padded" if small and padding_waste(plan) <= AUTO_PADDED_MAX_WASTE else "sorted"


@checked_strategy
def dispatch_auto(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Runs the strategy ``choose_dispatch`` picks for this plan, device and thread count (same results)."""
    return DISPATCHERS[choose_dispatch(plan, bank, x.device)].__wrapped__(x, plan, bank)  # checked here


DISPATCHERS: dict[str, Strategy] = {
    "loop": dispatch_loop,
    "einsum": dispatch_einsum,
    "sorted": dispatch_sorted,
    "padded": dispatch_padded,
    "grouped": dispatch_grouped,
    "auto": dispatch_auto,
}


def get_dispatcher(name: str) -> Strategy:
    """The dispatch function registered under ``name``."""
    if name not in DISPATCHERS:
        raise ValueError(f"dispatch must be one of {sorted(DISPATCHERS)}, got {name!r}")
    return DISPATCHERS[name]
