"""Process-group handling: resolve the group a dispatch runs on, and start one from torchrun's environment.

A group is a ``torch.distributed.ProcessGroup``; ``None`` means the default (world) group, which must already be
initialised (``torch.distributed.init_process_group``, or a launch by torchrun plus ``init_from_env``).
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 60.0  # seconds a collective may wait for a peer before it raises (instead of hanging)


@dataclass(frozen=True)
class GroupInfo:
    """The group a dispatch runs on, with this process's rank in it and its size W."""

    group: object  # torch.distributed.ProcessGroup
    rank: int
    world_size: int


def resolve_group(process_group=None) -> GroupInfo:
    """The group to use: ``process_group``, or the default group when None.

    Raises ValueError when torch.distributed is unavailable or no default group is initialised, TypeError when
    ``process_group`` is not a ProcessGroup.
    """
    if not dist.is_available():
        raise ValueError("process_group: this torch build has no torch.distributed support")
    if process_group is None:
        if not dist.is_initialized():
            raise ValueError(
                "process_group is None and torch.distributed is not initialised: call "
                "torch.distributed.init_process_group(...) first (torchrun sets the environment it needs), "
                "or pass process_group=<a ProcessGroup>"
            )
        process_group = dist.group.WORLD
    elif not isinstance(process_group, dist.ProcessGroup):
        raise TypeError(
            f"process_group must be a torch.distributed.ProcessGroup or None, got {type(process_group).__name__}"
        )
    return GroupInfo(process_group, dist.get_rank(process_group), dist.get_world_size(process_group))


def default_backend() -> str:
    """"nccl" when CUDA (and NCCL) is available, else "gloo"."""
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def device_for_backend(backend: str) -> torch.device:
    """The device a rank computes on: its local GPU (LOCAL_RANK) for nccl, the CPU for gloo."""
    if backend == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_from_env(backend: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> GroupInfo:
    """Initialise the default group from the environment torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR/PORT).

    backend: "gloo", "nccl" or None for ``default_backend()``. For nccl, also selects the local GPU.
    """
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(
            f"environment variables {missing} are not set: launch with torchrun "
            "(e.g. torchrun --nproc_per_node=2 -m sparse_bench.distributed.bench)"
        )
    backend = backend or default_backend()
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl":
        torch.cuda.set_device(device_for_backend(backend))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return resolve_group(None)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
