"""Collectives of the expert-parallel dispatch and the bookkeeping of what they move.

Experts are owned in contiguous blocks: with E experts on W ranks, rank r owns experts
``[r * E/W, (r + 1) * E/W)``. Because a RoutingPlan is sorted by expert, the rows a rank sends to each owner are
contiguous segments of the plan, so the send buffer is ``x[plan.token_index]`` with no extra permutation.

Each call first exchanges a small int64 block per peer (a header describing the sender's experts and input, then
its assignment counts for the receiver's experts), so every rank can check that all ranks agree before any token
row moves, and knows how many rows it will receive. Rows then travel by ``all_to_all_single`` with uneven splits,
through ``AllToAllRows``, whose backward is the reverse all-to-all.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..experts import ACTIVATIONS, ExpertBank

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
HEADER_FIELDS = (
    "num_experts", "local_experts", "d_model", "in_width", "d_hidden", "bias", "activation", "dtype", "grad_mode",
)
INT64_BYTES = 8


def local_expert_count(num_experts: int, world_size: int) -> int:
    """E/W, the experts each rank owns; ValueError when E is not divisible by W."""
    if num_experts % world_size != 0:
        raise ValueError(
            f"num_experts={num_experts} is not divisible by the process group's world size {world_size}: "
            "expert parallelism gives every rank the same number of experts"
        )
    return num_experts // world_size


def rows_per_owner(expert_counts: torch.Tensor, world_size: int) -> torch.Tensor:
    """expert_counts: (E,) assignments per expert. Returns (W,) int64: rows this rank sends to each owner rank."""
    return expert_counts.reshape(world_size, -1).sum(dim=1)


def make_header(num_experts: int, bank: ExpertBank, x: torch.Tensor) -> list[int]:
    """What every rank must agree on, as ints in the order of HEADER_FIELDS."""
    if x.dtype not in DTYPES:
        raise TypeError(f"x must be one of {DTYPES}, got {x.dtype}")
    return [
        num_experts,
        bank.num_experts,
        bank.d_model,
        int(bank.w_in.shape[2]),
        int(bank.w_out.shape[1]),
        int(bank.has_bias),
        ACTIVATIONS.index(bank.activation),
        DTYPES.index(x.dtype),
        int(torch.is_grad_enabled()),
    ]


def _describe(field: str, value: int) -> str:
    if field == "activation":
        return repr(ACTIVATIONS[value])
    if field == "dtype":
        return str(DTYPES[value])
    return str(value)


def check_headers_agree(headers: torch.Tensor, rank: int) -> None:
    """headers: (W, len(HEADER_FIELDS)) int64, row s from rank s. ValueError naming the first disagreement."""
    rows = headers.tolist()
    mine = rows[rank]
    for source, theirs in enumerate(rows):
        for field, a, b in zip(HEADER_FIELDS, mine, theirs):
            if a != b:
                hint = (
                    " (every rank must run the forward with the same torch.is_grad_enabled(), or backward deadlocks)"
                    if field == "grad_mode" else " (every rank must hold experts of the same shapes and kind)"
                )
                raise ValueError(
                    f"expert-parallel ranks disagree on {field}: rank {rank} has {_describe(field, a)} but rank "
                    f"{source} has {_describe(field, b)}{hint}"
                )


def exchange_counts(
    header: list[int], expert_counts: torch.Tensor, world_size: int, group
) -> tuple[torch.Tensor, torch.Tensor]:
    """Send every peer this rank's header and its counts for the peer's experts; receive theirs.

    expert_counts: (E,) int64 on the compute device. Returns (headers (W, H), recv_counts (W, E/W)) on the CPU:
    ``recv_counts[s, e]`` = rows rank s will send for this rank's local expert e.
    """
    device = expert_counts.device
    head = torch.tensor(header, dtype=torch.int64, device=device).expand(world_size, -1)  # (W, H)
    block = torch.cat([head, expert_counts.reshape(world_size, -1)], dim=1).contiguous()  # (W, H + E/W), row j to rank j
    received = torch.empty_like(block)
    dist.all_to_all_single(received, block, group=group)
    received = received.cpu()
    return received[:, : len(header)], received[:, len(header) :]


class AllToAllRows(torch.autograd.Function):
    """Differentiable uneven all-to-all of rows: forward sends ``rows`` split by ``send_splits`` (rows to each rank)
    and receives ``sum(recv_splits)`` rows; backward sends the gradient the reverse way (splits swapped)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, send_splits: list[int], recv_splits: list[int], group) -> torch.Tensor:
        ctx.splits = (send_splits, recv_splits)
        ctx.group = group
        return _all_to_all(rows, send_splits, recv_splits, group)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        send_splits, recv_splits = ctx.splits
        return _all_to_all(grad, recv_splits, send_splits, ctx.group), None, None, None


def _all_to_all(rows: torch.Tensor, send_splits: list[int], recv_splits: list[int], group) -> torch.Tensor:
    """rows: (sum(send_splits), d). Returns (sum(recv_splits), d), grouped by source rank."""
    out = rows.new_empty(sum(recv_splits), rows.shape[1])
    dist.all_to_all_single(out, rows.contiguous(), recv_splits, send_splits, group=group)
    return out


def all_to_all_rows(rows: torch.Tensor, send_splits: list[int], recv_splits: list[int], group) -> torch.Tensor:
    """Functional form of ``AllToAllRows``: rows (sum(send_splits), d) -> (sum(recv_splits), d)."""
    return AllToAllRows.apply(rows, send_splits, recv_splits, group)


def source_to_expert_order(recv_counts: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Permutation that regroups received rows by local expert.

    recv_counts: (W, E/W) rows per (source rank, local expert); received rows arrive source-major. Returns (R,)
    int64 ``order`` such that ``received[order]`` is expert-major (and source-major within an expert).
    """
    world_size, local = recv_counts.shape
    counts = recv_counts.to(device).reshape(-1)  # (W * E/W,) source-major blocks
    block = torch.repeat_interleave(torch.arange(world_size * local, device=device), counts)  # (R,)
    expert_major = (block % local) * world_size + block // local  # (R,)
    return torch.argsort(expert_major, stable=True)


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    """(R,) int64 inverse of the permutation ``order``."""
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return inverse


def rows_crossing(send_splits: list[int], recv_splits: list[int], rank: int) -> tuple[int, int]:
    """(rows sent to other ranks, outputs returned to other ranks) in one forward of rank ``rank``.

    send_splits: rows this rank sends to each rank; recv_splits: rows it receives from each. The rank's own
    split is a local copy, not communication. Each received row goes back once, so returns = received from others.
    """
    return sum(send_splits) - send_splits[rank], sum(recv_splits) - recv_splits[rank]


def metadata_bytes(world_size: int, local_experts: int) -> int:
    """Bytes of header + counts one rank sends to its W - 1 peers per call."""
    return (world_size - 1) * (len(HEADER_FIELDS) + local_experts) * INT64_BYTES
