"""The GEMM floor of a routed SwiGLU expert FFN, and the grouped floor at realised per-expert row counts.

For A routed rows, model width d and expert width h (SwiGLU: w_in is d x 2h), the forward is two GEMMs per row
block, ``pre = rows @ w_in`` (2·A·d·2h FLOPs) and ``out = act @ w_out`` (2·A·h·d FLOPs); the backward is four more
of the same sizes (input and weight gradients of each). The **floor** times that GEMM sequence on well-shaped
blocks of ``FLOOR_BLOCK_ROWS`` rows and scales to A rows (one huge GEMM over all A rows is slower than
cache-sized blocks on CPU, so it is not the floor). The **grouped floor** runs the same GEMMs at the realised
per-expert counts, one expert's weights per segment: the cost of uneven small GEMMs, which belongs to the
routing outcome. Only GEMMs are timed (every operand is preallocated, nothing else runs), on the products the
layer's fused expert kernels use (``kernels.matrix_products``), so a faster GEMM back-end lowers the floor as
much as the layer.

The FLOP floor assumes the weights stream from cache, as they do for one expert's block. A layer must read every
used expert's weights at least once per call (forward; backward reads them again and writes their gradients),
so the **weight-traffic floor** is those bytes over the memory bandwidth measured in the same run: where it
exceeds the FLOP floor (many experts, few rows each), no implementation can reach R = 1.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .. import kernels

FLOOR_BLOCK_ROWS = 1024  # rows per well-shaped GEMM block (1024 x d x 2h)
STREAM_BYTES = 256 * 2**20  # the buffer read to measure memory bandwidth: larger than any cache here


def routed_flops(num_rows: int, d_model: int, d_hidden: int, backward: bool) -> float:
    """FLOPs of the SwiGLU expert GEMMs for ``num_rows`` routed rows: F forward, 3F forward+backward."""
    forward = 2.0 * num_rows * d_model * (2 * d_hidden) + 2.0 * num_rows * d_hidden * d_model
    return 3.0 * forward if backward else forward


class _GemmBlock:
    """Preallocated operands of the expert GEMMs for one block of ``rows`` rows and one expert's weights."""

    def __init__(self, rows: int, w_in: torch.Tensor, w_out: torch.Tensor, generator: torch.Generator):
        d_model, in_width = w_in.shape
        d_hidden = w_out.shape[0]

        def rand(*shape):
            return torch.randn(*shape, generator=generator, dtype=w_in.dtype).to(w_in.device)

        self.w_in, self.w_out = w_in, w_out
        self.mm = kernels.matrix_products(w_in).mm
        self.x, self.act = rand(rows, d_model), rand(rows, d_hidden)
        self.grad_out, self.grad_pre = rand(rows, d_model), rand(rows, in_width)

    def forward(self) -> None:
        self.mm(self.x, self.w_in)  # (rows, 2h)
        self.mm(self.act, self.w_out)  # (rows, d)

    def backward(self) -> None:
        self.mm(self.grad_out, self.w_out.t())  # (rows, h)
        self.mm(self.act.t(), self.grad_out)  # (h, d)
        self.mm(self.grad_pre, self.w_in.t())  # (rows, d)
        self.mm(self.x.t(), self.grad_pre)  # (d, 2h)


def floor_block_fn(w_in: torch.Tensor, w_out: torch.Tensor, backward: bool, seed: int = 0) -> Callable[[], None]:
    """A callable running the GEMMs of one FLOOR_BLOCK_ROWS block; time it and scale by A / FLOOR_BLOCK_ROWS.

    w_in: (d, 2h), w_out: (h, d), one expert's weights.
    """
    block = _GemmBlock(FLOOR_BLOCK_ROWS, w_in.detach(), w_out.detach(), torch.Generator().manual_seed(seed))

    def run() -> None:
        block.forward()
        if backward:
            block.backward()

    return run


def grouped_floor_fn(
    w_in: torch.Tensor, w_out: torch.Tensor, counts: Sequence[int], backward: bool, seed: int = 0
) -> Callable[[], None]:
    """A callable running the expert GEMMs at the realised per-expert row ``counts`` (empty experts skipped).

    w_in: (E, d, 2h), w_out: (E, h, d); counts: E row counts.
    """
    if len(counts) != w_in.shape[0]:
        raise ValueError(f"counts has {len(counts)} entries but there are {w_in.shape[0]} experts")
    gen = torch.Generator().manual_seed(seed)
    blocks = [_GemmBlock(n, w_in[e].detach(), w_out[e].detach(), gen) for e, n in enumerate(counts) if n > 0]

    def run() -> None:
        for block in blocks:
            block.forward()
        if backward:
            for block in blocks:
                block.backward()

    return run


def weight_traffic_bytes(w_in: torch.Tensor, w_out: torch.Tensor, counts: Sequence[int], backward: bool) -> int:
    """Bytes of expert weights a layer must move per call: w_in (E, d, 2h) and w_out (E, h, d) of every expert with
    at least one row, read once forward; forward+backward also reads them again and writes their gradients (3x)."""
    used = sum(1 for n in counts if n > 0)
    per_expert = (w_in[0].numel() + w_out[0].numel()) * w_in.element_size()
    return used * per_expert * (3 if backward else 1)


def stream_read_fn(device: torch.device | str = "cpu", nbytes: int = STREAM_BYTES) -> Callable[[], None]:
    """A callable summing an ``nbytes`` float32 buffer: time it for the memory read bandwidth (nbytes / t)."""
    buffer = torch.ones(nbytes // 4, device=device)

    def run() -> None:
        buffer.sum()

    return run
