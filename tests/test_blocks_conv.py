"""conv2d_im2col, the Toeplitz matrix, kernel composition and receptive fields against torch.nn.functional."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse_bench.blocks import compose_conv_kernels, conv2d_im2col, conv2d_toeplitz_matrix, receptive_field

# (stride, padding, dilation, groups)
GRID = list(itertools.product([1, 2, (2, 3)], [0, 1, (2, 0)], [1, 2, (1, 3)], [1, 2]))


def _case(seed, dtype=torch.float64, n=2, c_in=4, c_out=6, size=(9, 10), kernel=(3, 2), groups=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, *size, generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn(c_out, c_in // groups, *kernel, generator=gen, dtype=dtype, requires_grad=True)
    b = torch.randn(c_out, generator=gen, dtype=dtype, requires_grad=True)
    return x, w, b


def _forward_backward(fn, x, w, b, kw):
    out = fn(x, w, b, **kw)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=out.dtype)
    grads = torch.autograd.grad(out, (x, w, b), upstream)
    return out, grads


@pytest.mark.parametrize("stride,padding,dilation,groups", GRID)
def test_im2col_matches_conv2d_forward_and_backward(stride, padding, dilation, groups):
    x, w, b = _case(0, groups=groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out, grads = _forward_backward(conv2d_im2col, x, w, b, kw)
    ref, ref_grads = _forward_backward(F.conv2d, x, w, b, kw)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-11)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 2), groups=st.integers(1, 3), c_g=st.integers(1, 2), o_g=st.integers(1, 2),
    k=st.tuples(st.integers(1, 3), st.integers(1, 3)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    p=st.tuples(st.integers(0, 2), st.integers(0, 2)), d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    extra=st.tuples(st.integers(0, 4), st.integers(0, 4)), bias=st.booleans(),
)
def test_im2col_matches_conv2d_on_drawn_shapes(n, groups, c_g, o_g, k, s, p, d, extra, bias):
    size = tuple(max(1, d[a] * (k[a] - 1) + 1 - 2 * p[a] + extra[a]) for a in range(2))
    x, w, b = _case(1, torch.float32, n, c_g * groups, o_g * groups, size, k, groups)
    b = b if bias else None
    kw = dict(stride=s, padding=p, dilation=d, groups=groups)
    out = conv2d_im2col(x, w, b, **kw)
    torch.testing.assert_close(out, F.conv2d(x, w, b, **kw), rtol=1e-5, atol=1e-5)
    grad_x, grad_w = torch.autograd.grad(out.sum(), (x, w))
    ref_x, ref_w = torch.autograd.grad(F.conv2d(x, w, b, **kw).sum(), (x, w))
    torch.testing.assert_close(grad_x, ref_x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_w, ref_w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,padding,dilation,groups", GRID[::3])
def test_toeplitz_matrix_times_vec_x_is_vec_conv(stride, padding, dilation, groups):
    x, w, _ = _case(2, groups=groups, n=1)
    x, w = x.detach(), w.detach()
    t = conv2d_toeplitz_matrix(w, x.shape[1:], stride, padding, dilation, groups=groups)
    ref = F.conv2d(x, w, None, stride, padding, dilation, groups)
    assert t.shape == (ref.numel(), x.numel()) and t.dtype == torch.float64
    torch.testing.assert_close(t @ x.reshape(-1), ref.reshape(-1), rtol=0, atol=1e-12)


def test_toeplitz_matrix_is_toeplitz_for_one_channel_stride_one():
    w = torch.arange(1.0, 5.0, dtype=torch.float64).reshape(1, 1, 2, 2)
    t = conv2d_toeplitz_matrix(w, (1, 3, 3))  # (4, 9)
    expected = torch.tensor([[1, 2, 0, 3, 4, 0, 0, 0, 0], [0, 1, 2, 0, 3, 4, 0, 0, 0],
                             [0, 0, 0, 1, 2, 0, 3, 4, 0], [0, 0, 0, 0, 1, 2, 0, 3, 4]], dtype=torch.float64)
    assert torch.equal(t, expected)


@pytest.mark.parametrize("first_stride,second_stride", [(1, 1), (2, 1), ((2, 1), (1, 3)), (3, 2)])
def test_composed_kernel_equals_two_convolutions(first_stride, second_stride):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 17, 16, generator=gen, dtype=torch.float64)
    w1 = torch.randn(4, 3, 3, 2, generator=gen, dtype=torch.float64)
    w2 = torch.randn(5, 4, 2, 3, generator=gen, dtype=torch.float64)
    s1 = first_stride if isinstance(first_stride, tuple) else (first_stride,) * 2
    s2 = second_stride if isinstance(second_stride, tuple) else (second_stride,) * 2
    two = F.conv2d(F.conv2d(x, w1, stride=s1), w2, stride=s2)
    one = F.conv2d(x, compose_conv_kernels(w1, w2, s1), stride=(s1[0] * s2[0], s1[1] * s2[1]))
    torch.testing.assert_close(one, two, rtol=0, atol=1e-12)


def test_receptive_field_formula_values():
    assert receptive_field([3]) == 3
    assert receptive_field([3, 3, 3]) == 7
    assert receptive_field([3, 3, 3], [2, 2, 1]) == 1 + 2 + 2 * 2 + 2 * 4
    assert receptive_field([3, 3], [1, 1], [1, 2]) == 1 + 2 + 4
    with pytest.raises(ValueError, match="strides"):
        receptive_field([3, 3], [0, 1])
    with pytest.raises(ValueError, match="one entry per layer"):
        receptive_field([3, 3], [1])


def _good():
    x = torch.randn(1, 4, 5, 5)
    w = torch.randn(6, 2, 3, 3)
    return x, w


@pytest.mark.parametrize(
    "mutate,exc,match",
    [
        (lambda x, w: (x[0], w, {}), ValueError, "x must have shape"),
        (lambda x, w: (x, w[0], {}), ValueError, "weight must have shape"),
        (lambda x, w: (x, w, {"groups": 2, "stride": 0}), ValueError, "stride"),
        (lambda x, w: (x, w, {"groups": 2, "stride": (1, -1)}), ValueError, "stride"),
        (lambda x, w: (x, w, {"groups": 2, "padding": -1}), ValueError, "padding"),
        (lambda x, w: (x, w, {"groups": 2, "dilation": 0}), ValueError, "dilation"),
        (lambda x, w: (x, w, {}), ValueError, "x has 4 channels"),
        (lambda x, w: (x, w, {"groups": 4}), ValueError, "groups=4 does not divide"),
        (lambda x, w: (x, w, {"groups": 0}), ValueError, "groups"),
        (lambda x, w: (x[:, :, :2], w, {"groups": 2}), ValueError, "larger than the padded input"),
        (lambda x, w: (x, w, {"groups": 2, "dilation": 3}), ValueError, "larger than the padded input"),
        (lambda x, w: (x.double(), w, {"groups": 2}), TypeError, "dtype"),
        (lambda x, w: (x.long(), w, {"groups": 2}), TypeError, "floating"),
        (lambda x, w: (x, w, {"groups": 2, "stride": 1.5}), TypeError, "stride"),
        (lambda x, w: (x * float("nan"), w, {"groups": 2}), ValueError, "NaN"),
    ],
)
def test_conv_bad_input_names_the_argument(mutate, exc, match):
    x, w, kw = mutate(*_good())
    with pytest.raises(exc, match=match):
        conv2d_im2col(x, w, **kw)


def test_conv_bad_bias_and_toeplitz_shape():
    x, w = _good()
    with pytest.raises(ValueError, match="bias"):
        conv2d_im2col(x, w, torch.zeros(5), groups=2)
    with pytest.raises(ValueError, match="input_shape"):
        conv2d_toeplitz_matrix(w, (4, 5))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d_toeplitz_matrix(w, (4, 2, 2), groups=2)
    with pytest.raises(ValueError, match="second expects"):
        compose_conv_kernels(w, torch.randn(2, 5, 1, 1))


@pytest.mark.parametrize("stride,padding,dilation", [(s, p, d) for s, p, d, _ in GRID[::2]])
def test_patch_columns_equal_unfold(stride, padding, dilation):
    """The strided-copy patch matrix is F.unfold's, also for a non-contiguous (channels-last) input."""
    from sparse_bench.blocks._args import output_size, pair
    from sparse_bench.blocks.patch import patch_columns

    x = torch.randn(2, 3, 9, 10, generator=torch.Generator().manual_seed(1))
    args = [pair(v, "arg", 0) for v in (stride, padding, dilation)]
    out_hw = output_size((9, 10), (3, 2), args[0], args[1], args[2])
    for image in (x, x.to(memory_format=torch.channels_last)):
        expected = F.unfold(image, (3, 2), dilation=dilation, padding=padding, stride=stride)
        assert torch.equal(patch_columns(image, (3, 2), *args, out_hw), expected)
