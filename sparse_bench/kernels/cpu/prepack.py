"""oneDNN-prepacked copies of an ExpertBank's weights, for forwards without autograd on CPU fp32.

Opt-in (``ExpertBank(prepack=True)``): the copies take as much memory as the weights. Few-row expert products
are memory-bound on the weights, and unpacked oneDNN reorders each weight on every product, which packing does
once. The copies are kept here, by bank, not on the bank: a copy, deep copy or pickle of a bank carries none,
and packs its own on first use.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import torch

from ..swiglu import fused_applies
from .onednn import PackedOperand, packing_available

if TYPE_CHECKING:
    from ...experts import ExpertBank


class PackedExperts:
    """Per-expert ``PackedOperand`` copies of stacked weights w_in (E, d, 2h) and w_out (E, h, d), with the
    stamp (storage, version counter, shape) of the weights they were packed from."""

    def __init__(self, w_in: torch.Tensor, w_out: torch.Tensor):
        self.stamp = weights_stamp(w_in, w_out)
        self.w_in = [PackedOperand(w) for w in w_in.detach().unbind(0)]
        self.w_out = [PackedOperand(w) for w in w_out.detach().unbind(0)]


def weights_stamp(*weights: torch.Tensor) -> tuple:
    """What changes when a weight is replaced, moved or updated in place (an optimizer step bumps the version
    counter; an edit through ``.data`` does not, and goes unseen)."""
    return tuple((w.data_ptr(), w._version, tuple(w.shape), w.dtype, w.device) for w in weights)


_PACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # bank -> its PackedExperts


def prepacks(bank: ExpertBank) -> bool:
    """Whether the bank's forwards without autograd run on prepacked weights: ``prepack`` set, bias-free
    SwiGLU, CPU fp32 weights in a build with oneDNN."""
    return bank.prepack and fused_applies(bank) and packing_available(bank.w_in)


def packs_for(bank: ExpertBank) -> tuple[list, list] | None:
    """The bank's packed (w_in, w_out) operand lists for a forward without autograd where ``prepacks(bank)``;
    None otherwise (grad mode on: the packs stay, unused; prepacking off or not applicable: they are dropped).
    Packed on first use and again whenever the weights were replaced, moved or updated in place since (see
    ``weights_stamp``)."""
    if not prepacks(bank):
        _PACKS.pop(bank, None)
        return None
    if torch.is_grad_enabled():
        return None
    packs = _PACKS.get(bank)
    if packs is None or packs.stamp != weights_stamp(bank.w_in, bank.w_out):
        _PACKS.pop(bank, None)  # free the stale copies before packing the new ones
        packs = _PACKS[bank] = PackedExperts(bank.w_in, bank.w_out)
    return packs.w_in, packs.w_out


def cached_packs(bank: ExpertBank) -> PackedExperts | None:
    """The packs kept for this bank, if any (packs nothing)."""
    return _PACKS.get(bank)
