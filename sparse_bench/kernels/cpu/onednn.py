"""Matrix products on oneDNN, where this build has it: CPU fp32, row-major left operand, no autograd.

On CPU, torch.mm calls MKL, whose fp32 GEMM is slow on few-row products with a weight matrix read from memory
(an expert with a handful of tokens); oneDNN, reached through the op ``torch.ops.mkldnn._linear_pointwise``
(which Inductor uses for CPU linears), is faster there (docs/performance-notes.md). oneDNN takes the products
whose left operand is row-major (activations and input gradients; the right operand may be a transposed view,
which oneDNN reads in place), MKL keeps the rest (a transposed or strided left operand, where oneDNN was no
faster). Results are the same run to run (oneDNN is deterministic for a fixed shape and thread count) and a
row's result does not depend on the other rows; they may differ from MKL's in the last bits (another summation
order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backend import MatrixProducts

# The oneDNN linear op, or None where this build lacks it (then every product is torch.mm / F.linear).
_ONEDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None) if (
    torch.backends.mkldnn.is_available()) else None
# oneDNN's weight reorder into its blocked layout (Inductor's CPU "freezing" uses it), or None.
_ONEDNN_PACK = (getattr(torch.ops.mkldnn, "_reorder_linear_weight", None) if _ONEDNN_LINEAR is not None
                else None)


def onednn_available() -> bool:
    """Whether products can run on oneDNN in this build (CPU only)."""
    return _ONEDNN_LINEAR is not None


def uses_onednn(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``mm(a, b)`` runs on oneDNN: CPU fp32 operands, a non-empty and row-major, no autograd."""
    return (
        _ONEDNN_LINEAR is not None
        and a.device.type == "cpu"
        and a.dtype == torch.float32
        and b.dtype == torch.float32
        and a.shape[0] > 0
        and a.is_contiguous()
        and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
    )


class PackedOperand:
    """A right operand b (k, m) of ``mm`` with a copy in oneDNN's blocked weight layout, made once.

    Unpacked, oneDNN reorders b into that layout on every product: a pass over the weights that dominates
    few-row products. The packed product gives the bits of the unpacked oneDNN product. The copy costs as much
    memory as b, and goes stale if b changes: its owner repacks (``prepack.packs_for``). ``original`` serves
    the products oneDNN does not take (autograd, MKL's layouts).
    """

    def __init__(self, b: torch.Tensor):
        if b.dim() != 2:
            raise ValueError(f"a packed operand is a matrix (k, m), got shape {tuple(b.shape)}")
        self.original = b
        self.packed = _ONEDNN_PACK(b.detach().t()) if packing_available(b) else None  # (m, k), blocked

    @property
    def shape(self) -> torch.Size:
        return self.original.shape


def packing_available(b: torch.Tensor) -> bool:
    """Whether ``PackedOperand(b)`` makes a oneDNN copy (CPU fp32 in a build with oneDNN); else it keeps b
    only."""
    return _ONEDNN_PACK is not None and b.device.type == "cpu" and b.dtype == torch.float32


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x: (n, k), weight: (m, k). Returns x @ weight.T, (n, m): on oneDNN where ``uses_onednn``, else
    ``F.linear`` (which autograd goes through)."""
    if uses_onednn(x, weight):
        return _ONEDNN_LINEAR(x, weight, None, "none", [], "")
    return F.linear(x, weight)


def mm(a: torch.Tensor, b: torch.Tensor | PackedOperand) -> torch.Tensor:
    """a: (n, k), b: (k, m) or its ``PackedOperand``. Returns a @ b, (n, m), without autograd through the
    oneDNN path (callers that need gradients call it inside an autograd.Function, where grad mode is off)."""
    if a.dim() != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"mm needs (n, k) @ (k, m), got {tuple(a.shape)} @ {tuple(b.shape)}")
    if isinstance(b, PackedOperand):
        if b.packed is not None and uses_onednn(a, b.original):
            return _ONEDNN_LINEAR(a, b.packed, None, "none", [], "")
        b = b.original
    if uses_onednn(a, b):
        return _ONEDNN_LINEAR(a, b.t(), None, "none", [], "")  # linear(a, W) = a @ W.T with W = b.T
    return torch.mm(a, b)


def mm_out(a: torch.Tensor, b: torch.Tensor | PackedOperand, out: torch.Tensor) -> torch.Tensor:
    """``mm(a, b)`` written into out, (n, m): straight from MKL, or copied from oneDNN's result (which has no
    out= form; one pass over the product, and the caller's buffer holds at most one product beside it)."""
    plain = b.original if isinstance(b, PackedOperand) else b
    if uses_onednn(a, plain):
        return out.copy_(mm(a, b))
    return torch.mm(a, plain, out=out)


ONEDNN_PRODUCTS = MatrixProducts(mm=mm, mm_out=mm_out)
