"""Pinning the thread count of a block (benchmarks and checks), restored afterwards."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def pinned_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body on ``num_threads`` threads: torch's intra-op pool (``torch.set_num_threads``) and, through
    threadpoolctl, the BLAS and OpenMP pools that numpy, scipy and scikit-learn use. None leaves them as
    they are."""
    if num_threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        with threadpool_limits(limits=num_threads):
            yield
    finally:
        torch.set_num_threads(before)
