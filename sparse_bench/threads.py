"""Pinning torch's intra-op thread count for a block (benchmarks and checks), restored afterwards."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def pinned_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(num_threads)``; None leaves the count as it is."""
    if num_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
