"""The CUDA backend: the fused SwiGLU kernels on torch.mm products, the reference ops for the rest. CUDA-only
kernels go in this package."""

from __future__ import annotations

import dataclasses

from .. import reference, swiglu


def experts_grouped(bank, rows, counts, first_expert, weights):
    """``Kernels.experts_grouped``: the fused SwiGLU on torch.mm products."""
    return swiglu.experts_grouped(bank, rows, counts, first_expert, weights, reference.TORCH_PRODUCTS)


KERNELS = dataclasses.replace(
    reference.KERNELS,
    name="cuda",
    experts_grouped=experts_grouped,
    experts_batched=swiglu.experts_batched,
)
