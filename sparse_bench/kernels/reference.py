"""The reference ops: device-neutral, readable PyTorch that every backend's kernels must agree with.

They run on any device (the CPU and CUDA backends take the ops they have no kernel of their own for from here)
and, forced with ``kernels.use_backend("reference")``, on CPU tensors, where tests compare them with the CPU
kernels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .backend import Kernels, MatrixProducts

if TYPE_CHECKING:
    from ..experts import ExpertBank
    from ..routing.plan import RoutingPlan

# PyTorch's grouped GEMM (torch >= 2.10; one CUTLASS kernel for all groups on CUDA bf16, sm90/sm100), or None.
_GROUPED_MM = getattr(F, "grouped_mm", None)
GROUPED_MM_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # it takes these; float64: group by group
GROUPED_MM_ALIGN = 16  # bytes: it refuses operands whose strides (or start) are not multiples of this


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x: (n, k), weight: (m, k). Returns x @ weight.T, (n, m)."""
    return F.linear(x, weight)


def expert_softmax(logits: torch.Tensor) -> torch.Tensor:
    """logits: (T, E). Returns the softmax over the experts, (T, E)."""
    return torch.softmax(logits, dim=-1)


def grouped_mm(a: torch.Tensor, b: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """a: (n, k) rows grouped by expert, counts[g] rows for expert g (counts: (E,) int, summing to n); b: (E,
    k, m). Returns (n, m), each group's rows times its b[g], differentiable in a and b: one
    ``torch.nn.functional.grouped_mm`` call (offsets on a's device), or group by group where the op is missing
    or does not take the dtype (float64) or the operands' alignment."""
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


def experts_grouped(bank: ExpertBank, rows: torch.Tensor, counts: list[int], first_expert: int,
                    weights: list[tuple] | None) -> torch.Tensor:
    """Each expert's segment of rows (A, d) through ``bank.apply_expert``, autograd throughout. Returns
    (A, d)."""
    weights = (weights or bank.per_expert_weights())[first_expert:first_expert + len(counts)]
    pieces = [bank.apply_expert(part, weights[e]) for e, part in enumerate(rows.split(counts))
              if part.shape[0]]
    return torch.cat(pieces) if pieces else rows.new_zeros(0, bank.d_model)


def experts_batched(bank: ExpertBank, slab: torch.Tensor, weights: tuple) -> torch.Tensor:
    """slab: (G, C, d), one expert per slab; weights: (w_in, w_out, b_in, b_out) of those G experts, biases
    None if absent. Two batched matmuls, autograd throughout. Returns (G, C, d)."""
    w_in, w_out, b_in, b_out = weights
    pre = torch.bmm(slab, w_in)  # (G, C, in_width)
    if b_in is not None:
        pre = pre + b_in.unsqueeze(1)
    out = torch.bmm(bank.activate(pre), w_out)  # (G, C, d)
    return out + b_out.unsqueeze(1) if b_out is not None else out


def sorted_swiglu(x: torch.Tensor, plan: RoutingPlan, bank: ExpertBank, max_rows: int) -> torch.Tensor:
    """One gather of all A rows in plan (expert) order, ``experts_grouped``, weighted, summed per token with
    ``index_add`` (max_rows unused: the reference does not chunk). Returns (T, d)."""
    rows = experts_grouped(bank, x.index_select(0, plan.token_index), plan.expert_counts.tolist(), 0, None)
    weighted = rows * plan.weight.to(x.dtype).unsqueeze(1)  # (A, d)
    return x.new_zeros(x.shape).index_add(0, plan.token_index, weighted)


def _mm_out(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.mm(a, b, out=out)


TORCH_PRODUCTS = MatrixProducts(mm=torch.mm, mm_out=_mm_out)

KERNELS = Kernels(
    name="reference",
    products=TORCH_PRODUCTS,
    linear=linear,
    expert_softmax=expert_softmax,
    grouped_mm=grouped_mm,
    experts_grouped=experts_grouped,
    experts_batched=experts_batched,
    sorted_swiglu=sorted_swiglu,
    prepacks=lambda bank: False,
)
