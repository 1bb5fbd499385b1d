"""Dispatch strategies: move tokens to experts and back. Each is an object ``strategy(x, plan, bank) -> y``.

x: (T, d_model); plan: a RoutingPlan over those T tokens; bank: an ExpertBank. Returns y: (T, d_model) with
``y[t] = sum over assignments a of token t of weight[a] * expert_{expert_index[a]}(x[t])`` (0 for a token with no
assignment). All strategies compute the same function; they differ in speed and memory only. Each checks that
x, plan and bank match before it starts, and refuses an output that is not finite (``Strategy``).

Every strategy gathers rows and combines them without atomics: outputs and gradients have the same bits on
every run, CUDA included (``gather.gather_rows``: the backward of a gather is a gather). On the device path
(``sparse_bench.device_path``; CUDA) nothing reads a value on the host, except where a strategy needs a size:
"sorted" and "loop" (per-expert counts), "padded" and "einsum" on a dropless plan (the largest count), and any
strategy on a plan whose router does not record its token cells (expert choice: the most assignments of one
token). Where the backend of x's device has its own body of "sorted" or "padded" (``Kernels``; the CPU's,
chunked, add into y with ``index_add_``, a serial loop on CPU, hence deterministic too), that body runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import kernels
from .device_path import host_path
from .experts import ExpertBank
from .gather import gather_rows, inverse_permutation, take
from .routing.plan import RoutingPlan, group_offsets
from .validation import check_finite_image, check_tokens


def check_plan_matches(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> None:
    """Raise TypeError/ValueError when x is not a finite (T, d_model) tensor in the bank's dtype or the plan
    does not describe x and bank."""
    if not isinstance(bank, ExpertBank):
        raise TypeError(f"bank must be an ExpertBank, got {type(bank).__name__}")
    check_tokens(x, bank.d_model)  # one scan of x: an Inf that relu turns into 0 would pass the output check
    if not isinstance(plan, RoutingPlan):
        raise TypeError(f"plan must be a RoutingPlan, got {type(plan).__name__}")
    if plan.num_tokens != x.shape[0]:
        raise ValueError(f"plan routes {plan.num_tokens} tokens but x has {x.shape[0]}")
    if plan.num_experts != bank.num_experts:
        raise ValueError(f"plan routes to {plan.num_experts} experts but the bank holds {bank.num_experts}")
    bank.check_input(x, "x")


Body = Callable[[torch.Tensor, RoutingPlan, ExpertBank], torch.Tensor]


class Strategy:
    """A local dispatch strategy as an object: ``strategy(x, plan, bank) -> y`` with x, plan and bank checked
    against each other first (x finite), and an output holding NaN/Inf refused, naming x (a finite x whose
    expert outputs overflow the dtype), instead of returned. ``name``: its key in ``DISPATCHERS``;
    ``__wrapped__``: the unchecked body. ``MoELayer`` calls ``check_layer`` once when it is built."""

    def __init__(self, name: str, body: Body):
        self.name = name
        functools.update_wrapper(self, body)

    def __call__(self, x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
        check_plan_matches(x, plan, bank)
        y = self.__wrapped__(x, plan, bank)
        check_finite_image(y, x, "x", "the experts' combined output")
        return y

    def check_layer(self, num_experts: int, bank: ExpertBank) -> None:
        """ValueError unless ``bank`` holds the router's ``num_experts`` experts (a local strategy runs
        all)."""
        if num_experts != bank.num_experts:
            raise ValueError(f"router has {num_experts} experts but the bank holds {bank.num_experts}")

    def __repr__(self) -> str:
        return f"Strategy({self.name!r})"

    def __reduce__(self):
        """Pickled by name: the registry's instance on the other side."""
        return get_dispatcher, (self.name,)


def strategy(name: str) -> Callable[[Body], Strategy]:
    """Decorator: the body as a checked ``Strategy`` named ``name``."""
    return lambda body: Strategy(name, body)


@dataclass
class TokenLayout:
    """Where each token's assignments sit among the N rows a strategy computes, both ways; built without a
    scatter.

    cells: (T, K) int64, the row of each token's j-th assignment (K: the most assignments of one token); a
    cell a token does not fill, or whose choice capacity dropped, points at row 0 and is marked in cell_valid.
    cell_valid: (T, K) bool, or None when every cell is filled.
    row_cell: (N,) int64, the cell ``t * K + j`` each row feeds; rows that feed none (padding, a dropped
    tail) are marked in row_valid. row_valid: (N,) bool, or None when every row feeds its cell.
    """

    cells: torch.Tensor
    cell_valid: torch.Tensor | None
    row_cell: torch.Tensor
    row_valid: torch.Tensor | None


def _inverse_map(f: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """f: (N,) int64, distinct values in [0, size). Returns ((size,) int64 g with g[f[i]] = i and 0 where no
    i maps, (size,) bool: whether one does): one sort and a binary search per value."""
    sorted_f, order = torch.sort(f)
    values = torch.arange(size, device=f.device)
    at = torch.searchsorted(sorted_f, values).clamp_(max=max(f.numel() - 1, 0))
    found = take(sorted_f, at) == values
    return torch.where(found, take(order, at), 0), found


def token_layout(plan: RoutingPlan) -> TokenLayout:
    """The plan's ``TokenLayout`` over its N entries (rows in plan order). Needs N >= 1.

    From ``plan.token_cells`` when the router recorded them (a permutation of the cells when dropless or with
    a static tail: one sort); otherwise from token_index, with one host read of K.
    """
    T, N = plan.num_tokens, plan.num_entries
    K = plan.cells_per_token
    if plan.token_cells is not None and T * K == N:  # every cell holds an entry
        cells = inverse_permutation(plan.token_cells).view(T, K)
        if plan.kept is None:
            return TokenLayout(cells, None, plan.token_cells, None)
        valid = cells < plan.kept  # dropped choices feed nothing
        rows_kept = torch.arange(N, device=cells.device) < plan.kept
        return TokenLayout(torch.where(valid, cells, 0), valid, plan.token_cells, rows_kept)
    if plan.token_cells is not None:  # a compacted plan: dropped cells hold no entry
        cells, valid = _inverse_map(plan.token_cells, T * K)
        return TokenLayout(cells.view(T, K), valid.view(T, K), plan.token_cells, None)
    sorted_tokens, order = torch.sort(plan.token_index, stable=True)  # (N,) entries grouped by token
    offsets = group_offsets(sorted_tokens, T)
    counts, starts = offsets.diff(), offsets.narrow(0, 0, T)  # (T,) each
    K = int(counts.max())  # the one host read
    slot = torch.arange(K, device=counts.device)
    valid = slot < counts.unsqueeze(1)  # (T, K)
    cells = torch.where(valid, take(order, (starts.unsqueeze(1) + slot).clamp_(max=N - 1)), 0)
    rank = torch.arange(N, device=counts.device) - take(starts, sorted_tokens)  # within its token
    row_cell = take(sorted_tokens * K + rank, inverse_permutation(order))
    return TokenLayout(cells, None if T * K == N else valid, row_cell, None)


def gather_tokens(x: torch.Tensor, row_token: torch.Tensor, cells: torch.Tensor,
                  cell_valid: torch.Tensor | None) -> torch.Tensor:
    """x: (T, d). Returns (R, d) rows ``x[row_token]``; cells (T, K): the rows that read each token (the
    backward sums their gradients in a fixed order), cell_valid marking the real ones."""
    return gather_rows(x, row_token, cells, cell_valid)


def cell_weights(plan: RoutingPlan, layout: TokenLayout) -> torch.Tensor:
    """(T, K) combine weight of each cell of ``token_layout(plan)`` (0 for unfilled cells), differentiable in
    plan.weight."""
    T, K = layout.cells.shape
    weight = gather_rows(plan.weight, layout.cells.reshape(-1), layout.row_cell.unsqueeze(1),
                         None if layout.row_valid is None else layout.row_valid.unsqueeze(1))
    weight = weight.view(T, K)
    if layout.cell_valid is None:
        return weight
    return torch.where(layout.cell_valid, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))


def combine(rows: torch.Tensor, layout: TokenLayout, weights: torch.Tensor) -> torch.Tensor:
    """``y[t] = sum_j weights[t, j] * rows[cells[t, j]]`` in the order j = 0, 1, ...: one gather into token
    order and a (T, 1, K) @ (T, K, d) batched matmul (K = 1: a scaled gather). rows: (N, d); weights: (T, K).
    Returns (T, d); no atomics in either direction."""
    T, K = layout.cells.shape
    row_valid = None if layout.row_valid is None else layout.row_valid.unsqueeze(1)
    picked = gather_rows(rows, layout.cells.reshape(-1), layout.row_cell.unsqueeze(1), row_valid)  # (T*K, d)
    weights = weights.to(rows.dtype)
    if K == 1:
        return picked * weights
    return torch.bmm(weights.unsqueeze(1), picked.view(T, K, rows.shape[1])).squeeze(1)


def combine_rows(rows: torch.Tensor, plan: RoutingPlan, layout: TokenLayout | None = None) -> torch.Tensor:
    """rows: (N, d) unweighted expert outputs in plan order. Returns y (T, d), the plan's weighted sum per
    token, without atomics (``combine``)."""
    if plan.num_entries == 0:
        return rows.new_zeros(plan.num_tokens, rows.shape[1])
    layout = token_layout(plan) if layout is None else layout
    return combine(rows, layout, cell_weights(plan, layout))


def _entry_rows(x: torch.Tensor, plan: RoutingPlan) -> tuple[torch.Tensor, TokenLayout]:
    """(the plan's N rows of x in plan order, its ``TokenLayout``)."""
    layout = token_layout(plan)
    return gather_tokens(x, plan.token_index, layout.cells, layout.cell_valid), layout


def _with_tail(out: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
    """out: (A, d) outputs of the kept rows; zero rows appended for a dropped tail (never combined)."""
    missing = plan.num_entries - out.shape[0]
    return torch.cat([out, out.new_zeros(missing, out.shape[1])]) if missing else out


@strategy("loop")
def dispatch_loop(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """The simple reference: gather the plan's rows, run each expert on its segment with its own products,
    combine."""
    if plan.num_entries == 0:
        return x.new_zeros(x.shape)
    rows, layout = _entry_rows(x, plan)
    counts = plan.expert_counts.tolist()
    weights = bank.per_expert_weights()
    kept = rows.narrow(0, 0, sum(counts))
    pieces = [bank.apply_expert(part, weights[e]) for e, part in enumerate(kept.split(counts))
              if part.shape[0]]
    return combine(_with_tail(torch.cat(pieces), plan), layout, cell_weights(plan, layout))


def slab_capacity(plan: RoutingPlan) -> int:
    """C of the (E, C, d) slabs of "padded" and "einsum": the largest expert count (a host read on the device
    path, so there the router's static capacity where it has one)."""
    capacity = plan.aux.get("capacity")
    if not host_path(plan.expert_counts) and isinstance(capacity, int):
        return max(1, min(capacity, plan.num_entries))
    return int(plan.expert_counts.max())


def _slab_layout(plan: RoutingPlan, layout: TokenLayout, capacity: int) -> tuple[torch.Tensor, TokenLayout]:
    """For (E, C) slabs of rows: ((E * C,) token each slab row reads, the ``TokenLayout`` over slab rows).
    Slab rows past an expert's count are padding: they read the token of entry 0 and feed no cell."""
    ends = plan.expert_counts.cumsum(0)
    slot = torch.arange(capacity, device=ends.device)
    slab_valid = slot < plan.expert_counts.unsqueeze(1)  # (E, C)
    entry = torch.where(slab_valid, (ends - plan.expert_counts).unsqueeze(1) + slot, 0).reshape(-1)  # (E*C,)
    slab_of_entry = plan.expert_index * capacity + plan.slot_in_expert  # (N,); the tail's never read
    cells = take(slab_of_entry, layout.cells)  # (T, K)
    if layout.cell_valid is not None:
        cells = torch.where(layout.cell_valid, cells, 0)
    row_valid = slab_valid.reshape(-1)
    slab = TokenLayout(cells, layout.cell_valid, take(layout.row_cell, entry), row_valid)
    return take(plan.token_index, entry), slab


@strategy("einsum")
def dispatch_einsum(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """GShard-style: one-hot (T, E * C) dispatch and combine matrices built by comparison, matrix products in
    and out of (E, C, d) slabs."""
    if plan.num_entries == 0:
        return x.new_zeros(x.shape)
    T, E = plan.num_tokens, plan.num_experts
    capacity = slab_capacity(plan)
    layout = token_layout(plan)
    _, slab = _slab_layout(plan, layout, capacity)
    weights = cell_weights(plan, layout)  # (T, K)
    cells = slab.cells if slab.cell_valid is None else torch.where(slab.cell_valid, slab.cells, -1)
    columns = torch.arange(E * capacity, device=x.device)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    dispatch = x.new_zeros(T, E * capacity)
    combine_matrix = x.new_zeros(T, E * capacity)
    for j in range(cells.shape[1]):  # a token's cells are distinct slab rows: each (t, row) is hit once
        hit = cells.narrow(1, j, 1) == columns  # (T, E * C)
        dispatch = dispatch + hit.to(x.dtype)
        combine_matrix = combine_matrix + torch.where(hit, weights.narrow(1, j, 1).to(x.dtype), zero)
    expert_in = (dispatch.t() @ x).view(E, capacity, -1)  # (E, C, d)
    expert_out = bank.forward_batched(expert_in).view(E * capacity, -1)
    return combine_matrix @ expert_out


@strategy("sorted")
def dispatch_sorted(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Rows in expert order, one GEMM pair per expert segment, weighted sum per token: one gather of all rows,
    ``ExpertBank.forward_grouped`` on the per-expert counts (read on the host) and ``combine``; a backend with
    its own body (CPU: chunk by chunk, ``Kernels.dispatch_sorted``) runs that instead."""
    if plan.num_entries == 0:
        return x.new_zeros(x.shape)
    own = kernels.backend_for(x).dispatch_sorted
    if own is not None:
        return own(x, plan.compact(), bank)
    rows, layout = _entry_rows(x, plan)
    counts = plan.expert_counts.tolist()
    out = bank.forward_grouped(rows.narrow(0, 0, sum(counts)), counts)
    return combine(_with_tail(out, plan), layout, cell_weights(plan, layout))


def _grouped_mm_takes(*operands: torch.Tensor) -> bool:
    """Whether ``F.grouped_mm`` takes these operands: a dtype it has, row-major, every other stride a
    multiple of 16 bytes (read from strides alone, so the same under FakeTensorMode and torch.compile; the
    gathered rows and the bank's parameters start their storage, which allocators align)."""
    if not hasattr(F, "grouped_mm"):
        return False
    for t in operands:
        size = t.element_size()
        *outer, inner = t.stride()
        if t.dtype not in (torch.float32, torch.bfloat16, torch.float16) or inner != 1 or any(
                s * size % 16 for s in outer):
            return False
    return True


def _per_row(bias: torch.Tensor, expert_of_row: torch.Tensor) -> torch.Tensor:
    """bias: (E, m); expert_of_row: (N,). Returns (N, m) ``bias[expert_of_row]`` as a one-hot matrix product,
    whose backward is a product too (a gather's is a scatter)."""
    one_hot = expert_of_row.unsqueeze(1) == torch.arange(bias.shape[0], device=bias.device)  # (N, E)
    return one_hot.to(bias.dtype) @ bias


def grouped_experts(rows: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """rows: (N, d) in plan order. Returns the experts' outputs (N, d), differentiable: each projection one
    ``torch.nn.functional.grouped_mm`` over all experts with its offsets on the device (rows of a dropped tail
    are not computed: their outputs are unspecified and never combined); where the op does not take the
    operands (float64, unaligned widths), ``ExpertBank.forward_grouped`` on counts read on the host."""
    d_hidden = bank.w_out.shape[1]
    width_ok = all(n * rows.element_size() % 16 == 0 for n in (bank.w_in.shape[2], d_hidden, bank.d_model))
    if not (width_ok and _grouped_mm_takes(rows, bank.w_in, bank.w_out)):
        counts = plan.expert_counts.tolist()
        return _with_tail(bank.forward_grouped(rows.narrow(0, 0, sum(counts)), counts), plan)
    offsets = plan.expert_counts.cumsum(0).to(torch.int32)  # (E,) group ends, on the device
    pre = F.grouped_mm(rows, bank.w_in, offs=offsets)  # (N, in_width)
    if bank.has_bias:
        pre = pre + _per_row(bank.b_in, plan.expert_index)
    out = F.grouped_mm(bank.activate(pre), bank.w_out, offs=offsets)  # (N, d)
    if bank.has_bias:
        out = out + _per_row(bank.b_out, plan.expert_index)
    return out


@strategy("grouped")
def dispatch_grouped(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Rows in expert order, each projection one grouped GEMM over all experts (``grouped_experts``: a single
    CUTLASS kernel on CUDA bf16 at sm90/sm100, where "sorted" launches two products per expert), autograd
    through its own derivative, ``combine``. Nothing is read on the host, on any plan a token-choice router
    makes: the default of "auto" on CUDA."""
    if plan.num_entries == 0:
        return x.new_zeros(x.shape)
    rows, layout = _entry_rows(x, plan)
    return combine(grouped_experts(rows, plan, bank), layout, cell_weights(plan, layout))


@strategy("padded")
def dispatch_padded(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Gather rows into (E, C, d) slabs, two batched matmuls per slab, combine straight from the slab.

    C (``slab_capacity``) never drops an assignment. Pad slots read a real token: their outputs are never
    combined and their gradients are exactly zero. Without autograd, a backend with its own body (CPU: several
    slabs of a few experts each, ``Kernels.dispatch_padded_no_grad``) runs that instead; with autograd every
    slab's activations are kept for backward anyway, and split weights would get their gradients
    concatenated, a second copy.
    """
    if plan.num_entries == 0:
        return x.new_zeros(x.shape)
    own = kernels.backend_for(x).dispatch_padded_no_grad
    if own is not None and not torch.is_grad_enabled():
        return own(x, plan.compact(), bank)
    capacity = slab_capacity(plan)
    layout = token_layout(plan)
    row_token, slab = _slab_layout(plan, layout, capacity)
    rows = gather_tokens(x, row_token, slab.cells, slab.cell_valid)  # (E * C, d)
    out = bank.forward_batched(rows.view(bank.num_experts, capacity, -1)).view(-1, x.shape[1])  # (E * C, d)
    return combine(out, slab, cell_weights(plan, layout))


# Crossovers of dispatch="auto", per device, each set by the measurements in docs/performance-notes.md
# ("auto" crossovers); re-measure with `sparse-bench calibrate` (and `--device cuda` on a GPU).
# CPU: "padded" for many small experts with few rows each (one batched matmul beats many small products).
AUTO_PADDED_MIN_THREADS = 2
AUTO_PADDED_MIN_EXPERTS = 16
AUTO_PADDED_MAX_ROWS_PER_EXPERT = 64
AUTO_PADDED_MAX_EXPERT_BYTES = 3 * 2**20  # between the 1.5 MiB (padded wins) and 6 MiB (sorted wins) measured
AUTO_PADDED_MAX_EXPERT_BYTES_WITH_GRAD = 6 * 2**20  # the largest measured; padded won there at <= 16 rows
AUTO_PADDED_MAX_ROWS_PER_LARGE_EXPERT = 32
AUTO_PADDED_MAX_WASTE = 3.0
# CUDA (and any device other than the CPU): "grouped" was the fastest strategy at every point measured.
AUTO_DEVICE_STRATEGY = "grouped"


def padding_waste(plan: RoutingPlan) -> float:
    """E * C_max / A: slab rows computed per routed row by "padded" (1.0 = perfectly balanced)."""
    if plan.num_assignments == 0:
        return 1.0
    return plan.num_experts * int(plan.expert_counts.max()) / plan.num_assignments


def choose_dispatch(plan: RoutingPlan, bank: ExpertBank, device: torch.device, num_threads: int | None = None,
                    backward: bool | None = None) -> str:
    """The strategy "auto" runs for this plan and bank on ``device``.

    Any device but the CPU: AUTO_DEVICE_STRATEGY, read nothing. CPU: "padded" when there are >= 2 threads, at
    least AUTO_PADDED_MIN_EXPERTS experts, at most AUTO_PADDED_MAX_ROWS_PER_EXPERT rows per expert on average,
    at most AUTO_PADDED_MAX_EXPERT_BYTES of weights per expert (when a backward follows: up to
    AUTO_PADDED_MAX_EXPERT_BYTES_WITH_GRAD, with at most AUTO_PADDED_MAX_ROWS_PER_LARGE_EXPERT rows per expert
    above the forward's cap) and padding waste <= AUTO_PADDED_MAX_WASTE; "sorted" otherwise, and always
    "sorted" for a forward without autograd on prepacked weights. backward: whether the call is recorded for a
    backward through the expert weights (None: grad mode is on and the bank's weights require grad).
    """
    if device.type != "cpu":
        return AUTO_DEVICE_STRATEGY
    threads = torch.get_num_threads() if num_threads is None else num_threads
    if backward is None:
        backward = torch.is_grad_enabled() and (bank.w_in.requires_grad or bank.w_out.requires_grad)
    if bank.prepack_applies() and not torch.is_grad_enabled():
        return "sorted"
    if threads < AUTO_PADDED_MIN_THREADS or plan.num_experts < AUTO_PADDED_MIN_EXPERTS:
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


@strategy("auto")
def dispatch_auto(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
    """Runs the strategy ``choose_dispatch`` picks for this plan, device and thread count (same results)."""
    return DISPATCHERS[choose_dispatch(plan, bank, x.device)].__wrapped__(x, plan, bank)  # checked here


DISPATCHERS: dict[str, Strategy] = {
    s.name: s for s in (dispatch_loop, dispatch_einsum, dispatch_sorted, dispatch_padded, dispatch_grouped,
                        dispatch_auto)
}


def get_dispatcher(name: str) -> Strategy:
    """The dispatch strategy registered under ``name``."""
    if name not in DISPATCHERS:
        raise ValueError(f"dispatch must be one of {sorted(DISPATCHERS)} or a dispatcher object (expert "
                         f"parallelism: sparse_bench.distributed.ExpertParallelDispatch), got {name!r}")
    return DISPATCHERS[name]
