"""The CPU backend's oneDNN products (``kernels.cpu.onednn``) against float64 products, for every operand
layout they route, and their routing rules."""

from __future__ import annotations

import pytest
import torch

from sparse_bench.kernels.cpu import onednn

needs_onednn = pytest.mark.skipif(not onednn.onednn_available(), reason="this torch build has no oneDNN")


def operands(n, k, m, a_layout, b_layout, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, k, generator=gen) if a_layout == "rows" else torch.randn(k, n, generator=gen).t()
    b = torch.randn(k, m, generator=gen) if b_layout == "rows" else torch.randn(m, k, generator=gen).t()
    return a, b


@pytest.mark.parametrize("b_layout", ["rows", "transposed"])
@pytest.mark.parametrize("a_layout", ["rows", "transposed"])
@pytest.mark.parametrize("n", [1, 7, 300])
def test_mm_matches_float64(n, a_layout, b_layout):
    a, b = operands(n, 96, 40, a_layout, b_layout)
    got = onednn.mm(a, b)
    want = a.double() @ b.double()
    assert got.dtype == torch.float32 and got.shape == (n, 40)
    # fp32 products of K = 96 terms: error well under 1e-5 of the output's scale
    assert (got.double() - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("weight_layout", ["rows", "transposed"])
@pytest.mark.parametrize("n", [1, 7, 300])
def test_linear_matches_float64(n, weight_layout):
    x, b = operands(n, 96, 40, "rows", weight_layout)
    got = onednn.linear(x, b.t())  # weight (40, 96): row-major for a transposed b, else a transposed view
    want = x.double() @ b.double()
    assert got.shape == (n, 40)
    assert (got.double() - want).abs().max() <= 1e-5 * want.abs().max()
    assert torch.equal(got, onednn.mm(x, b))  # the same oneDNN call


@needs_onednn
def test_routing_rules():
    a, b = operands(8, 16, 4, "rows", "transposed")
    assert onednn.uses_onednn(a, b)  # row-major left operand, any right operand
    assert not onednn.uses_onednn(a.t().contiguous().t(), b)  # a transposed left operand: MKL (weight grads)
    assert not onednn.uses_onednn(a.double(), b.double())  # fp32 only
    assert not onednn.uses_onednn(a[:0], b)  # empty
    assert not onednn.uses_onednn(a.requires_grad_(), b)  # autograd needs torch.mm


def test_same_bits_every_run_and_rows_independent_of_batch():
    a, b = operands(50, 64, 32, "rows", "transposed", seed=3)
    first = onednn.mm(a, b)
    assert all(torch.equal(first, onednn.mm(a, b)) for _ in range(3))
    assert torch.equal(first[:9], onednn.mm(a[:9], b))


def test_autograd_flows_through_the_fallback():
    a, b = operands(5, 6, 3, "rows", "rows")
    a.requires_grad_()
    onednn.mm(a, b).sum().backward()
    assert torch.allclose(a.grad, b.sum(dim=1).expand(5, 6))


def test_shape_errors():
    with pytest.raises(ValueError, match="mm needs"):
        onednn.mm(torch.ones(2, 3), torch.ones(4, 5))
    with pytest.raises(ValueError, match="mm needs"):
        onednn.mm(torch.ones(2, 3, 1), torch.ones(3, 5))
