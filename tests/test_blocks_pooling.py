"""Pooling plans, lse_pool, patch classifiers and ConvPoolBlock against torch.nn.functional and sklearn."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sparse_bench.blocks import (
    ConvPoolBlock,
    avgpool_plan,
    from_linear_classifier,
    image_patches,
    lse_pool,
    maxpool_plan,
    patch_classifier,
    pool_from_plan,
)
from sparse_bench.blocks.pooling import row_sums
from sparse_bench.routing import RoutingPlan

WINDOWS = [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 1)), (2, 1, 1), ((1, 4), (1, 4), 0)]


def _ties(seed, shape=(2, 3, 7, 8)):
    """Small integers: many ties inside windows, to pin the tie-breaking rule."""
    return torch.randint(0, 3, shape, generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("kernel,stride,padding", WINDOWS)
def test_maxpool_plan_reproduces_max_pool2d_and_its_indices(kernel, stride, padding):
    x = _ties(0)
    plan = maxpool_plan(x, kernel, stride, padding).validate()
    y, idx = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
    assert isinstance(plan, RoutingPlan) and plan.num_assignments == y.numel() == plan.num_experts
    assert torch.equal(plan.expert_counts, torch.ones_like(plan.expert_counts))
    assert torch.equal(pool_from_plan(x, plan), y)
    plane_size = x.shape[2] * x.shape[3]
    assert torch.equal(plan.token_index.reshape(y.shape) % plane_size, idx)  # same tie-breaking as PyTorch
    planes = torch.arange(6).reshape(2, 3, 1, 1).expand_as(y)
    assert torch.equal(plan.token_index.reshape(y.shape) // plane_size, planes)


def test_maxpool_tie_goes_to_first_in_row_major_order():
    x = torch.tensor([[0.0, 5.0], [5.0, 5.0]]).reshape(1, 1, 2, 2)
    assert maxpool_plan(x, 2).token_index.tolist() == [1]


@pytest.mark.parametrize("kernel,stride,padding", WINDOWS)
def test_maxpool_plan_assignments_are_exactly_where_the_gradient_goes(kernel, stride, padding):
    x = _ties(1).requires_grad_(True)
    y = F.max_pool2d(x, kernel, stride, padding)
    upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    (grad,) = torch.autograd.grad(y, x, upstream)
    plan = maxpool_plan(x, kernel, stride, padding)
    routed = torch.zeros(x.numel(), dtype=x.dtype)
    routed.index_add_(0, plan.token_index, upstream.reshape(-1)[plan.expert_index])
    assert torch.equal(grad.reshape(-1), routed)
    (grad_plan,) = torch.autograd.grad(pool_from_plan(x, plan), x, upstream)
    assert torch.equal(grad_plan, grad)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kernel,stride,padding", WINDOWS)
def test_avgpool_plan_reproduces_avg_pool2d_forward_and_backward(kernel, stride, padding, count_include_pad):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 7, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    plan = avgpool_plan(x, kernel, stride, padding, count_include_pad).validate()
    y = pool_from_plan(x, plan)
    ref = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-14)
    (grad,), (ref_grad,) = torch.autograd.grad(y.sum(), x), torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-15)


def test_avgpool_plan_weights_are_uniform_over_each_window():
    plan = avgpool_plan(torch.zeros(1, 1, 4, 4), 2)
    assert torch.equal(plan.expert_counts, torch.full((4,), 4))
    assert torch.equal(plan.weight, torch.full((16,), 0.25))


@pytest.mark.parametrize("width", [0, 1, 2, 4, 8, 9, 16])
def test_row_sums_match_float64_on_both_paths(width):
    """Column additions (width <= NARROW_ROWS = 8) and the reduction (wider) against float64 row sums, with
    autograd."""
    table = torch.randn(300, width, generator=torch.Generator().manual_seed(width), requires_grad=True)
    got = row_sums(table)
    want = table.detach().double().sum(dim=1)
    assert got.shape == (300,)
    # width fp32 additions of O(1) terms: error well under width * 2^-23 * sum |x|
    assert (got.detach().double() - want).abs().max() <= width * 2**-23 * table.detach().abs().sum(1).max()
    got.sum().backward()
    assert torch.equal(table.grad, torch.ones_like(table))


def test_lse_pool_limits_and_bounds():
    x = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    avg, mx = F.avg_pool2d(x, 3), F.max_pool2d(x, 3)
    for temperature in (0.1, 1.0, 10.0):
        y = lse_pool(x, 3, temperature)
        assert bool((y >= avg - 1e-12).all() and (y <= mx + 1e-12).all())
    torch.testing.assert_close(lse_pool(x, 3, 1e-3), mx, rtol=0, atol=1e-3 * np.log(9) + 1e-12)
    torch.testing.assert_close(lse_pool(x, 3, 1e5), avg, rtol=0, atol=1e-4)
    manual = 2.0 * torch.log(torch.exp(x[0, 0, :3, :3] / 2.0).mean())
    torch.testing.assert_close(lse_pool(x, 3, 2.0)[0, 0, 0, 0], manual)
    padded = lse_pool(x, 3, 1.0, stride=1, padding=1)  # padding excluded: the corner averages its 4 positions
    torch.testing.assert_close(padded[0, 0, 0, 0], torch.log(torch.exp(x[0, 0, :2, :2]).mean()))


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: maxpool_plan(torch.zeros(3, 4, 4), 2), ValueError, "x must have shape"),
        (lambda: maxpool_plan(torch.zeros(1, 1, 4, 4), 5), ValueError, "larger than the padded input"),
        (lambda: maxpool_plan(torch.zeros(1, 1, 4, 4), 2, stride=0), ValueError, "stride"),
        (lambda: maxpool_plan(torch.zeros(1, 1, 4, 4), 0), ValueError, "kernel_size"),
        (lambda: maxpool_plan(torch.zeros(1, 1, 4, 4), 2, padding=2), ValueError, "at most half"),
        (lambda: avgpool_plan(torch.zeros(1, 1, 4, 4), (2, 2, 2)), ValueError, "kernel_size"),
        (lambda: avgpool_plan(torch.zeros(1, 1, 4, 4, dtype=torch.long), 2), TypeError, "floating"),
        (lambda: lse_pool(torch.zeros(1, 1, 4, 4), 2, 0.0), ValueError, "temperature"),
        (lambda: lse_pool(torch.zeros(1, 1, 4, 4), 2, 1.0, stride=-1), ValueError, "stride"),
        (lambda: pool_from_plan(torch.zeros(1, 1, 4, 5), maxpool_plan(torch.zeros(1, 1, 4, 4), 2)),
         ValueError, "tokens"),
    ],
)
def test_pooling_bad_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_patch_classifier_round_trip_with_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 2, 7, 7, generator=gen, dtype=torch.float64)
    patches = image_patches(x, 3).numpy()  # (6*25, 18)
    labels = (patches @ np.linspace(-1, 1, 18) > 0).astype(int)
    model = LogisticRegression(max_iter=500).fit(patches, labels)
    conv = from_linear_classifier(model.coef_, model.intercept_, 3, 2)
    scores = conv(x).detach().permute(0, 2, 3, 1).reshape(-1).numpy()  # rows ordered (n, i, j) like patches
    np.testing.assert_allclose(scores, model.decision_function(patches), rtol=0, atol=1e-10)
    back = patch_classifier(conv.weight, conv.bias)
    np.testing.assert_array_equal(back.coef_, model.coef_)
    np.testing.assert_allclose(
        back.decision_function(patches), model.decision_function(patches), rtol=0, atol=1e-12
    )
    with pytest.raises(ValueError, match="coef must have"):
        from_linear_classifier(model.coef_, model.intercept_, 3, 1)
    with pytest.raises(ValueError, match="intercept"):
        from_linear_classifier(model.coef_, [0.0, 1.0], 3, 2)
    with pytest.raises(ValueError, match="channels"):
        from_linear_classifier(model.coef_, model.intercept_, 3, 0)


@pytest.mark.parametrize("pool", ["max", "avg", "lse"])
def test_conv_pool_block_native_and_im2col_agree(pool):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 2, 10, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    blocks = [
        ConvPoolBlock(2, 4, 3, pool=pool, impl=impl, padding=1, generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64)
        for impl in ("native", "im2col")
    ]
    native, im2col = blocks
    assert torch.equal(native.weight, im2col.weight)
    y, y2 = native(x), im2col(x)
    assert y.shape == (3, 4, 5, 4)
    torch.testing.assert_close(y, y2, rtol=0, atol=1e-12)
    (grad,), (grad2,) = torch.autograd.grad(y.sum(), x), torch.autograd.grad(y2.sum(), x)
    torch.testing.assert_close(grad, grad2, rtol=0, atol=1e-12)
    if pool != "lse":
        assert native.routing_plan(x).num_experts == y.numel()


def test_conv_pool_block_bad_arguments():
    with pytest.raises(ValueError, match="pool"):
        ConvPoolBlock(1, 1, 3, pool="median")
    with pytest.raises(ValueError, match="impl"):
        ConvPoolBlock(1, 1, 3, impl="fft")
    with pytest.raises(ValueError, match="in_ch"):
        ConvPoolBlock(0, 1, 3)
    with pytest.raises(ValueError, match="x has 3 channels"):
        ConvPoolBlock(2, 1, 3)(torch.zeros(1, 3, 6, 6))
    with pytest.raises(ValueError, match="routing_plan"):
        ConvPoolBlock(1, 1, 3, pool="lse").routing_plan(torch.zeros(1, 1, 6, 6))
