"""Gathers whose backward is a gather too, never a scatter: the same bits on every run, CUDA included.

Autograd's own backward of index_select, gather and tensor indexing adds into the source with index_add_,
scatter_add_ or index_put_(accumulate=True), which PyTorch documents as nondeterministic on CUDA (atomics; see
``torch.use_deterministic_algorithms``). Here the caller states who reads each source row, and the backward
gathers those rows' gradients and sums them in a fixed order.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class _GatherRows(torch.autograd.Function):
    """``src.index_select(0, index)``; backward: ``grad_src[s] = sum_j w[s, j] * grad[readers[s, j]]``."""

    @staticmethod
    def forward(ctx, src: torch.Tensor, index: torch.Tensor, readers: torch.Tensor,
                reader_weight: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(readers, reader_weight)
        ctx.src_shape = src.shape
        return src.index_select(0, index)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        readers, reader_weight = ctx.saved_tensors
        rows, width = readers.shape
        flat = grad.reshape(grad.shape[0], -1)
        picked = flat.index_select(0, readers.reshape(-1)).view(rows, width, flat.shape[1])
        if reader_weight is not None:  # pad readers carry weight 0 (and point at a finite row)
            summed = torch.bmm(reader_weight.to(flat.dtype).unsqueeze(1), picked).squeeze(1)
        else:
            summed = picked.squeeze(1) if width == 1 else picked.sum(dim=1)
        return summed.view(ctx.src_shape), None, None, None


def gather_rows(src: torch.Tensor, index: torch.Tensor, readers: torch.Tensor,
                reader_weight: torch.Tensor | None = None) -> torch.Tensor:
    """``src[index]``, differentiable in src with an atomics-free backward.

    src: (S, ...); index: (N,) int64 in [0, S); readers: (S, m) int64 in [0, N), the output rows that read
    each source row (every output row ``n`` with ``index[n] == s`` listed once in row s); reader_weight:
    (S, m) float, 1 for a listed reader and 0 for padding (None: every entry is a reader). Returns (N, ...).
    """
    if torch.is_grad_enabled() and src.requires_grad:
        return _GatherRows.apply(src, index, readers, reader_weight)
    return src.index_select(0, index)


def take(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``src[index]`` for an int64 index of any shape, without autograd's scatter in mind (use gather_rows
    for that): one index_select. Python indexing enters a device guard that a CPU-only build lacks for fake
    CUDA tensors, so the device path indexes through this (FakeTensorMode tests run it)."""
    return src.index_select(0, index.reshape(-1)).view(*index.shape, *src.shape[1:])


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    """order: (N,) a permutation of 0..N-1. Returns (N,) int64 with ``inverse[order[i]] = i``; a sort, not
    a scatter (a scatter's writes are unordered on CUDA; here every index is written once, but the sort keeps
    the whole path free of scatters)."""
    return torch.argsort(order)


def permute(src: torch.Tensor, order: torch.Tensor, inverse: torch.Tensor | None = None) -> torch.Tensor:
    """``src[order]`` for a permutation ``order`` (N,) of src's first dimension, differentiable in src with
    the backward ``grad[inverse]``; inverse is computed (a sort) only when a backward will need it."""
    if torch.is_grad_enabled() and src.requires_grad:
        inverse = inverse_permutation(order) if inverse is None else inverse
        return _GatherRows.apply(src, order, inverse.unsqueeze(1), None)
    return src.index_select(0, order)


class _SelectColumns(torch.autograd.Function):
    """``src.gather(1, index)`` for an index whose entries are distinct within each row; the backward finds,
    for every column of a row, the entry that selected it (a sort and a binary search per row)."""

    @staticmethod
    def forward(ctx, src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.columns = src.shape[1]
        return src.gather(1, index)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        rows, width = index.shape
        sorted_index, position = torch.sort(index, dim=1)  # (R, m)
        columns = torch.arange(ctx.columns, device=index.device).expand(rows, ctx.columns).contiguous()
        slot = torch.searchsorted(sorted_index, columns).clamp_(max=max(width - 1, 0))  # (R, C)
        hit = sorted_index.gather(1, slot) == columns
        grad_of_slot = grad.gather(1, position).gather(1, slot)  # (R, C): the grad of the entry at slot
        return torch.where(hit, grad_of_slot, torch.zeros((), dtype=grad.dtype, device=grad.device)), None


def select_columns(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """src: (R, C); index: (R, m) int64, distinct within each row (a top-k's indices). Returns
    ``src.gather(1, index)`` (R, m), differentiable in src with an atomics-free backward."""
    if torch.is_grad_enabled() and src.requires_grad and index.shape[1]:
        return _SelectColumns.apply(src, index)
    return src.gather(1, index)
