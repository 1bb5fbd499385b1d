"""``mm(a, b)``: a 2-D matrix product on the fastest kernel this build has for the operands' layout.

On CPU, torch.mm calls MKL, whose fp32 GEMM is slow on few-row products with a weight matrix read from memory
(an expert with a handful of tokens). This build also has oneDNN, reachable through the op
``torch.ops.mkldnn._linear_pointwise`` (which Inductor uses for CPU linears). Measured here (AMD EPYC, AVX-512,
2 threads, fp32, 2026-11-24; ``torch.utils.benchmark``, 64 distinct expert weights per timed call so they come
from memory as in a MoE layer; d=512, h=256; ratio = MKL time / oneDNN time, > 1: oneDNN faster):

    rows per product            8      32     128    1024 (one weight, cache-hot)
    rows @ w_in  (n,512)@(512,512)     1.39   1.28   1.17   1.12
    act @ w_out  (n,256)@(256,512)     1.23   1.22   1.19   1.08
    grad @ w.T   (input gradients)     1.06-1.17  1.05-1.21  1.11-1.13  1.07-1.08
    rows.T @ grad (weight gradients)   0.72-0.80  0.75-0.80  0.86-0.87  0.95-0.96

so oneDNN takes the products whose left operand is row-major (activations and input gradients; the right
operand may be a transposed view, which oneDNN reads in place) and MKL keeps the rest (a transposed left
operand: weight gradients; a strided left operand, where oneDNN measured no faster). The results are the same
run to run (oneDNN is deterministic for a fixed shape and thread count) and a row's result does not depend on
the other rows; they may differ from MKL's in the last bits (the summation order differs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# PyTorch's grouped GEMM (torch >= 2.10; one CUTLASS kernel for all groups on CUDA bf16, sm90/sm100), or None.
_GROUPED_MM = getattr(F, "grouped_mm", None)
GROUPED_MM_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # it takes these; float64: group by group
GROUPED_MM_ALIGN = 16  # bytes: it refuses operands whose strides (or start) are not multiples of this

# The oneDNN linear op, or None where this build lacks it (then every product is torch.mm).
_ONEDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None) if (
    torch.backends.mkldnn.is_available()) else None
# oneDNN's weight reorder into its blocked layout (Inductor's CPU "freezing" uses it), or None.
_ONEDNN_PACK = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None) if _ONEDNN_LINEAR is not None else None


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
    few-row products. Measured here (2 threads, fp32, 64 distinct (512, 512) weights per timed call, so they
    come from memory as in a MoE layer; unpacked / packed time, > 1: packed faster): 8 rows 1.67-1.76,
    32 rows 1.32-1.46, 128 rows 1.11, 1024 rows 1.16-1.23; one cache-hot weight at 1024 rows (the floor's
    block): 0.95-1.05. The results are the bits the unpacked oneDNN product gives (checked at 1-300 rows).
    The copy costs as much memory as b, and goes stale if b changes: the owner repacks (see
    ``ExpertBank.prepack``). ``original`` serves the products oneDNN does not take (autograd, MKL's layouts).
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
    """Whether ``PackedOperand(b)`` makes a oneDNN copy (CPU fp32 in a build with oneDNN); else it keeps b only."""
    return _ONEDNN_PACK is not None and b.device.type == "cpu" and b.dtype == torch.float32


def mm_out(a: torch.Tensor, b: torch.Tensor | PackedOperand, out: torch.Tensor) -> torch.Tensor:
    """``mm(a, b)`` written into out, (n, m): straight from MKL, or copied from oneDNN's result (which has no
    out= form; one pass over the product, and the caller's buffer holds at most one product beside it)."""
    plain = b.original if isinstance(b, PackedOperand) else b
    if uses_onednn(a, plain):
        return out.copy_(mm(a, b))
    return torch.mm(a, plain, out=out)


def mm(a: torch.Tensor, b: torch.Tensor | PackedOperand) -> torch.Tensor:
    """a: (n, k), b: (k, m) or its ``PackedOperand``. Returns a @ b, (n, m), without autograd through the oneDNN
    path (callers that need gradients call it inside an autograd.Function, where grad mode is off)."""
    if a.dim() != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"mm needs (n, k) @ (k, m), got {tuple(a.shape)} @ {tuple(b.shape)}")
    if isinstance(b, PackedOperand):
        if b.packed is not None and uses_onednn(a, b.original):
            return _ONEDNN_LINEAR(a, b.packed, None, "none", [], "")
        b = b.original
    if uses_onednn(a, b):
        return _ONEDNN_LINEAR(a, b.t(), None, "none", [], "")  # linear(a, W) = a @ W.T with W = b.T
    return torch.mm(a, b)


def grouped_mm(a: torch.Tensor, b: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """a: (n, k) rows grouped by expert, counts[g] rows for expert g (counts: (E,) int, summing to n); b: (E,
    k, m). Returns (n, m), each group's rows times its b[g], differentiable in a and b: one
    ``torch.nn.functional.grouped_mm`` call (PyTorch's grouped GEMM), or group by group where it is missing or
    does not take the dtype (float64)."""
    if a.dim() != 2 or b.dim() != 3 or a.shape[1] != b.shape[1] or counts.shape != (b.shape[0],):
        raise ValueError(f"grouped_mm needs (n, k) rows, (E, k, m) weights and (E,) counts, got "
                         f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(counts.shape)}")
    if _GROUPED_MM is not None and a.dtype in GROUPED_MM_DTYPES and _aligned(a) and _aligned(b) and (
            b.shape[2] * b.element_size() % GROUPED_MM_ALIGN == 0):  # the output's rows too
        return _GROUPED_MM(a, b, offs=counts.cumsum(0).to(device=a.device, dtype=torch.int32))
    pieces = [rows @ b[g] for g, rows in enumerate(a.split(counts.tolist())) if rows.shape[0]]
    return torch.cat(pieces) if pieces else a.new_zeros(0, b.shape[2])


def _aligned(t: torch.Tensor) -> bool:
    """Whether t is row-major in its last dimension with its start and every other stride a multiple of
    GROUPED_MM_ALIGN bytes. The op checks the strides of dimensions of size 1 too: a (2, 1) operand, row
    stride 4 bytes, is refused."""
    size = t.element_size()
    *outer, inner = t.stride()
    return (inner == 1 and t.data_ptr() % GROUPED_MM_ALIGN == 0
            and all(s * size % GROUPED_MM_ALIGN == 0 for s in outer))
