"""Expert-parallel dispatch: each of W ranks owns E/W experts, tokens travel to their expert's rank and back.

The dispatch keeps the library's contract ``(x, plan, bank) -> y`` with two differences: ``plan`` routes over all
E experts while ``bank`` holds only this rank's E/W experts (rank r owns experts ``r*E/W .. (r+1)*E/W - 1``), and
every rank of the group must call it together (it runs collectives). One call:

1. exchange headers and per-expert counts with every peer (``all_to_all_single``, W x (H + E/W) int64);
2. send token rows to their owners (``all_to_all_single`` with uneven splits);
3. regroup the received rows by local expert and run the local experts grouped;
4. send the outputs back by the reverse all-to-all and combine them with the plan's weights.

Autograd flows end to end through ``AllToAllRows`` (its backward is the reverse all-to-all). While grad mode is on,
both all-to-alls always stay in the graph (also on a rank with no token or no received row), so every rank runs
the same backward collectives; every rank must therefore call backward on its output, as with DDP.

How to build the layer: give every rank the full router (same weights, E experts) and an ExpertBank of its own
E/W experts, either sliced from a full bank with ``shard_experts(bank, rank, world_size)`` (when all ranks can
build the full bank, as in tests) or built directly as ``ExpertBank(E // W, ...)`` (when the full bank would not
fit one process). Then ``MoELayer(router, local_bank, dispatch=ExpertParallelDispatch(E, pg))``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch

from ..dispatch import combine_rows, gather_tokens, token_layout
from ..experts import ExpertBank
from ..routing.plan import RoutingPlan
from .exchange import (
    all_to_all_rows,
    check_headers_agree,
    exchange_counts,
    inverse_permutation,
    local_expert_count,
    make_header,
    metadata_bytes,
    rows_crossing,
    rows_per_owner,
    source_to_expert_order,
)
from .group import resolve_group

PHASES = ("exchange", "expert_compute", "combine")


@dataclass
class ExchangeStats:
    """What one call of the dispatch moved, and (when timed) where its time went.

    rows_sent: token rows sent to other ranks (rows for this rank's own experts are copied locally, not sent).
    rows_returned: expert outputs sent back to other ranks.
    bytes_sent: (rows_sent + rows_returned) * d_model * element size, the row payload of the forward pass
    (backward sends the same volume again, as gradients).
    metadata_bytes: header and counts sent to the W - 1 peers.
    seconds: phase -> seconds (PHASES), empty when the dispatch is not timed.
    """

    rows_sent: int
    rows_returned: int
    bytes_sent: int
    metadata_bytes: int
    seconds: dict = field(default_factory=dict)


class _PhaseClock:
    """Adds the wall time since the previous lap to a named phase; synchronises CUDA first so GPU work counts."""

    def __init__(self, device: torch.device, enabled: bool):
        self.device, self.enabled = device, enabled
        self.seconds: dict[str, float] = {}
        self.last = self._now() if enabled else 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self, phase: str) -> None:
        if self.enabled:
            now = self._now()
            self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
            self.last = now


def _keep_in_graph(result: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``result`` with the empty tensor ``source`` attached to its autograd graph (adds an exact 0).

    Used where an empty segment would otherwise cut an all-to-all out of the graph on one rank only, which would
    leave the other ranks waiting in backward.
    """
    if source.numel() == 0 and source.requires_grad:
        return result + source.sum()
    return result


class ExpertParallelDispatch:
    """``dispatch(x, plan, bank) -> y`` across the ranks of ``process_group`` (None: the default group).

    num_experts: E, the experts the router routes over (divisible by the world size W).
    timed: record per-phase wall times in ``last_stats.seconds`` (synchronises CUDA at each phase boundary).
    x: (T, d_model) on this rank (T may differ between ranks, and be 0); plan: over those T tokens and E experts;
    bank: this rank's E/W experts. Returns y: (T, d_model). ``last_stats`` describes the latest call.

    Errors: disagreements between ranks (expert shapes, activation, dtype, E, grad mode) are found in the counts
    exchange and raised on every rank, before any row moves. A bad input seen by one rank only is raised there
    before any collective; its peers then fail when the group's timeout expires (or at once if that rank exits).
    """

    name = "expert_parallel"

    def __init__(self, num_experts: int, process_group=None, timed: bool = False):
        self.info = resolve_group(process_group)
        self.num_experts = int(num_experts)
        self.local_experts = local_expert_count(self.num_experts, self.info.world_size)
        self.timed = bool(timed)
        self.last_stats: ExchangeStats | None = None

    def __deepcopy__(self, memo) -> "ExpertParallelDispatch":
        """A copy shares the process group (a communicator is a handle, it cannot be copied); stats start empty."""
        clone = copy.copy(self)
        clone.last_stats = None
        return clone

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def rank(self) -> int:
        return self.info.rank

    def check_bank(self, bank: ExpertBank) -> None:
        """ValueError unless ``bank`` holds this rank's E/W experts."""
        if not isinstance(bank, ExpertBank):
            raise TypeError(f"bank must be an ExpertBank, got {type(bank).__name__}")
        if bank.num_experts != self.local_experts:
            raise ValueError(
                f"the local expert bank holds {bank.num_experts} experts but num_experts={self.num_experts} over "
                f"world size {self.world_size} gives {self.local_experts} per rank (use shard_experts)"
            )

    def check_layer(self, num_experts: int, bank: ExpertBank) -> None:
        """ValueError unless the router routes over this dispatch's E experts and ``bank`` holds this rank's E/W
        (``MoELayer`` calls it when it is built)."""
        if num_experts != self.num_experts:
            raise ValueError(f"router has {num_experts} experts but the dispatch splits {self.num_experts}")
        self.check_bank(bank)

    def check_call(self, x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> None:
        """ValueError/TypeError when x, plan and bank do not fit each other (checked before any collective)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise ValueError(f"x must be a (tokens, d_model) tensor, got {getattr(x, 'shape', type(x).__name__)}")
        self.check_bank(bank)
        if plan.num_tokens != x.shape[0]:
            raise ValueError(f"plan routes {plan.num_tokens} tokens but x has {x.shape[0]}")
        if plan.num_experts != self.num_experts:
            raise ValueError(f"plan routes to {plan.num_experts} experts but the dispatch expects {self.num_experts}")
        bank.check_input(x)

    def __call__(self, x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank) -> torch.Tensor:
        self.check_call(x, plan, bank)
        plan = plan.compact()  # the splits are read on the host anyway: no dropped tail to send
        group, rank, world = self.info.group, self.rank, self.world_size
        clock = _PhaseClock(x.device, self.timed)

        header = make_header(self.num_experts, bank, x)
        headers, recv_counts = exchange_counts(header, plan.expert_counts.to(x.device), world, group)
        check_headers_agree(headers, rank)
        send_splits = rows_per_owner(plan.expert_counts, world).tolist()  # rows to each owner
        recv_splits = recv_counts.sum(dim=1).tolist()  # rows from each source
        layout = token_layout(plan) if plan.num_entries else None
        # (A, d): owner segments are contiguous because the plan is sorted by expert
        rows = gather_tokens(x, plan.token_index, layout.cells, layout.cell_valid) if layout else x[:0]
        if torch.is_grad_enabled() and not rows.requires_grad:
            rows = rows.detach().requires_grad_()  # keeps the dispatch all-to-all in every rank's backward
        received = all_to_all_rows(rows, send_splits, recv_splits, group)  # (R, d), source-major
        clock.lap("exchange")

        order = source_to_expert_order(recv_counts, x.device)  # (R,)
        out = bank.forward_grouped(received[order], recv_counts.sum(dim=0))  # (R, d), expert-major
        out = _keep_in_graph(out[inverse_permutation(order)], received)  # back to source-major
        clock.lap("expert_compute")

        returned = all_to_all_rows(out, recv_splits, send_splits, group)  # (A, d), plan order
        clock.lap("exchange")

        y = _keep_in_graph(combine_rows(returned, plan, layout), returned)  # (T, d)
        clock.lap("combine")

        element = x.element_size()
        rows_sent, rows_returned = rows_crossing(send_splits, recv_splits, rank)
        self.last_stats = ExchangeStats(
            rows_sent=rows_sent,
            rows_returned=rows_returned,
            bytes_sent=(rows_sent + rows_returned) * x.shape[1] * element,
            metadata_bytes=metadata_bytes(world, self.local_experts),
            seconds=clock.seconds,
        )
        return y


def shard_experts(bank: ExpertBank, rank: int, world_size: int) -> ExpertBank:
    """A new ExpertBank holding copies of experts ``rank*E/W .. (rank+1)*E/W - 1`` of ``bank``.

    ValueError when E is not divisible by ``world_size`` or ``rank`` is outside [0, world_size).
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, {world_size}), got {rank!r}")
    local = local_expert_count(bank.num_experts, world_size)
    part = slice(rank * local, (rank + 1) * local)
    shard = ExpertBank(local, bank.d_model, bank.d_hidden, activation=bank.activation, bias=bank.has_bias)
    shard = shard.to(device=bank.w_in.device, dtype=bank.w_in.dtype)
    with torch.no_grad():
        for name in ("w_in", "w_out", "b_in", "b_out"):
            full = getattr(bank, name)
            if full is not None:
                getattr(shard, name).copy_(full[part])
    return shard
