"""The hand-written backward of the padded SwiGLU experts (the fast path's kernel) against autograd's numerical
gradients in float64, with a negative control: the same check must reject a backward with a planted error."""

from __future__ import annotations

import pytest
import torch

from torch.autograd.gradcheck import GradcheckError

from sparse_bench import ExpertBank
from sparse_bench.experts import _SwiGLUSlab


def inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    bank = ExpertBank(3, 5, 4, activation="swiglu", generator=gen).double()
    slab = torch.randn(3, 6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    return slab, bank.w_in, bank.w_out


def test_gradcheck_float64():
    assert torch.autograd.gradcheck(_SwiGLUSlab.apply, inputs(), eps=1e-6, atol=1e-8)


class _BrokenSlab(_SwiGLUSlab):
    """Planted defect: the up-projection gradient is dropped (as if silu(gate) were treated as constant 0)."""

    @staticmethod
    def backward(ctx, grad_out):
        grad_slab, grad_w_in, grad_w_out = _SwiGLUSlab.backward(ctx, grad_out)
        grad_w_in = grad_w_in.clone()
        grad_w_in[..., grad_w_in.shape[-1] // 2 :] = 0
        return grad_slab, grad_w_in, grad_w_out


def test_gradcheck_rejects_a_broken_backward():
    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(_BrokenSlab.apply, inputs(), eps=1e-6, atol=1e-8)


def test_inference_path_equals_graph_path():
    slab, w_in, w_out = inputs()
    with torch.no_grad():
        assert torch.equal(_SwiGLUSlab.inference(slab, w_in, w_out), _SwiGLUSlab.apply(slab, w_in, w_out))
