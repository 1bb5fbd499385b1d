"""``Kernels``: the table of ops a backend provides, the same fields for every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch


class MatrixProducts(NamedTuple):
    """The 2-D matrix products a backend's fused expert kernels run on.

    mm(a (n, k), b (k, m)) -> (n, m); mm_out(a, b, out (n, m)) -> out, a @ b written into out. b may also be a
    backend's own packed operand where that backend packs weights.
    """

    mm: Callable
    mm_out: Callable


@dataclass(frozen=True)
class Kernels:
    """One backend's ops. Every op computes the function of ``kernels.reference``'s op of the same name; they
    differ in speed, memory and rounding only.

    linear(x (n, k), weight (m, k)) -> (n, m): x @ weight.T, like ``F.linear`` without bias.
    expert_softmax(logits (T, E)) -> (T, E): softmax over the experts.
    experts_grouped(bank, rows (A, d), counts: list[int], first_expert, weights) -> (A, d): expert-sorted
        rows through experts first_expert, first_expert + 1, ... (weights: the bank's ``per_expert_weights()``
        or None).
    experts_batched(bank, slab (G, C, d), weights) -> (G, C, d): one slab per expert; weights: (w_in, w_out,
        b_in, b_out) of those G experts.
    dispatch_sorted(x (T, d), plan, bank) -> (T, d), or None: the backend's own body of dispatch "sorted" on a
        compacted plan with at least one assignment, differentiable; None: the device-neutral body runs.
    dispatch_padded_no_grad(x (T, d), plan, bank) -> (T, d), or None: the same for "padded" without autograd.
    prepacks(bank) -> bool: whether forwards without autograd run on prepacked copies of the bank's weights.
    products: the ``MatrixProducts`` of the fused kernels (the GEMM floor times them too).
    """

    name: str
    products: MatrixProducts
    linear: Callable[..., torch.Tensor]
    expert_softmax: Callable[..., torch.Tensor]
    experts_grouped: Callable[..., torch.Tensor]
    experts_batched: Callable[..., torch.Tensor]
    dispatch_sorted: Callable[..., torch.Tensor] | None
    dispatch_padded_no_grad: Callable[..., torch.Tensor] | None
    prepacks: Callable[..., bool]
