"""The CPU backend: oneDNN products (``onednn``), prepacked expert weights (``prepack``), chunked bodies of
dispatch "sorted" and "padded" (``dispatch``; with autograd the SwiGLU Function ``sorted_swiglu``), softmax
on the transposed layout (``softmax``) and the fused SwiGLU kernels on oneDNN products; the reference ops for
the rest."""

from __future__ import annotations

import dataclasses

from .. import reference, swiglu
from .dispatch import dispatch_padded_no_grad, dispatch_sorted
from .onednn import ONEDNN_PRODUCTS, linear
from .prepack import packs_for, prepacks
from .softmax import expert_softmax


def experts_grouped(bank, rows, counts, first_expert, weights):
    """``Kernels.experts_grouped``: the fused SwiGLU on oneDNN products, on prepacked weights where the bank
    asks for them and autograd is off."""
    return swiglu.experts_grouped(bank, rows, counts, first_expert, weights, ONEDNN_PRODUCTS, packs_for(bank))


KERNELS = dataclasses.replace(
    reference.KERNELS,
    name="cpu",
    products=ONEDNN_PRODUCTS,
    linear=linear,
    expert_softmax=expert_softmax,
    experts_grouped=experts_grouped,
    experts_batched=swiglu.experts_batched,
    dispatch_sorted=dispatch_sorted,
    dispatch_padded_no_grad=dispatch_padded_no_grad,
    prepacks=prepacks,
)
