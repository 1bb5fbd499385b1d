"""The hand-written backwards of the SwiGLU expert kernels (padded slab, grouped rows, CPU sorted dispatch) against
autograd's numerical gradients in float64, with negative controls: the same check must reject a backward with a
planted error."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.gradcheck import GradcheckError

from sparse_bench import ExpertBank
from sparse_bench.kernels.cpu.onednn import ONEDNN_PRODUCTS
from sparse_bench.kernels.cpu.sorted_swiglu import SortedSwiGLU
from sparse_bench.kernels.segments import expert_blocks, expert_segments
from sparse_bench.kernels.swiglu import SwiGLUGrouped, SwiGLUSlab, WeightGradients
from sparse_bench.routing.plan import plan_from_assignments


def inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    bank = ExpertBank(3, 5, 4, activation="swiglu", generator=gen).double()
    slab = torch.randn(3, 6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    return slab, bank.w_in, bank.w_out


def test_gradcheck_float64():
    assert torch.autograd.gradcheck(SwiGLUSlab.apply, inputs(), eps=1e-6, atol=1e-8)


class _BrokenSlab(SwiGLUSlab):
    """Planted defect: the up-projection gradient is dropped (as if silu(gate) were treated as constant 0)."""

    @staticmethod
    def backward(ctx, grad_out):
        grad_slab, grad_w_in, grad_w_out = SwiGLUSlab.backward(ctx, grad_out)
        grad_w_in = grad_w_in.clone()
        grad_w_in[..., grad_w_in.shape[-1] // 2 :] = 0
        return grad_slab, grad_w_in, grad_w_out


def test_gradcheck_rejects_a_broken_backward():
    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(_BrokenSlab.apply, inputs(), eps=1e-6, atol=1e-8)


def test_inference_path_equals_graph_path():
    slab, w_in, w_out = inputs()
    with torch.no_grad():
        assert torch.equal(SwiGLUSlab.inference(slab, w_in, w_out), SwiGLUSlab.apply(slab, w_in, w_out))


def grouped_bank(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return ExpertBank(4, 5, 3, activation="swiglu", generator=gen).double(), gen


def test_grouped_gradcheck_float64_and_zero_gradient_for_an_empty_expert():
    bank, gen = grouped_bank()
    segments = expert_segments([3, 0, 4, 2])  # expert 1 gets no rows
    rows = torch.randn(9, 5, generator=gen, dtype=torch.float64, requires_grad=True)

    def grouped(r, w_in, w_out):
        return SwiGLUGrouped.apply(r, segments, w_in, w_out, ONEDNN_PRODUCTS)

    assert torch.autograd.gradcheck(grouped, (rows, bank.w_in, bank.w_out), eps=1e-6, atol=1e-8)
    grouped(rows, bank.w_in, bank.w_out).sum().backward()
    assert not bank.w_in.grad[1].any() and not bank.w_out.grad[1].any()


def sorted_inputs():
    """6 tokens, k = 2 over 4 experts (4, 2, 6 and 0 rows), cut into chunks of 2 rows: experts 0 and 2 are split
    across chunks, so their weight gradients must accumulate; expert 3's are zero."""
    bank, gen = grouped_bank(2)
    experts = torch.tensor([0, 1, 0, 2, 2, 0, 2, 1, 2, 2, 0, 2])
    plan = plan_from_assignments(torch.arange(6).repeat_interleave(2), experts,
                                 torch.rand(12, generator=gen, dtype=torch.float64), 6, 4)
    chunks = expert_blocks(plan.expert_counts.tolist(), max_rows=2)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = plan.weight.detach().requires_grad_()

    def sorted_layer(x, weight, w_in, w_out):
        return SortedSwiGLU.apply(x, weight, w_in, w_out, plan.token_index, chunks)

    return sorted_layer, (x, weight, bank.w_in, bank.w_out)


def test_sorted_swiglu_gradcheck_float64():
    sorted_layer, args = sorted_inputs()
    assert torch.autograd.gradcheck(sorted_layer, args, eps=1e-6, atol=1e-8)


def test_sorted_swiglu_gradcheck_rejects_overwritten_weight_gradients(monkeypatch):
    """Planted defect: every chunk overwrites its experts' weight gradients instead of adding to them."""
    add = WeightGradients.add

    def overwrite(self, *args):
        self.written = (set(), set())
        add(self, *args)

    monkeypatch.setattr(WeightGradients, "add", overwrite)
    sorted_layer, args = sorted_inputs()
    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(sorted_layer, args, eps=1e-6, atol=1e-8)
