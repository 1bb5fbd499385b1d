"""Fuzz the convolution and pooling blocks: conv2d_im2col, the Toeplitz matrix, pooling plans, LSE pooling,
ConvPoolBlock and kernel composition, against float64 PyTorch references within ``n u M`` bounds (see
test_fuzz_moe.py's docstring; M: the same computation on absolute values)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from fuzzing import (
    rarely,
    assert_finite,
    fuzz,
    in_range,
    is_float,
    is_int,
    is_positive_float,
    malformed,
    maybe_bad,
    outcome,
    tensors,
    unit_roundoff,
)
from sparse_bench.blocks import (
    ConvPoolBlock,
    avgpool_plan,
    compose_conv_kernels,
    conv2d_im2col,
    conv2d_toeplitz_matrix,
    lse_pool,
    maxpool_plan,
    pool_from_plan,
    receptive_field,
)

BAD_PAIRS = (None, -1, 2.5, True, (1, 2, 3), "2", (1, None), [0, 1])


def pair_args(low: int, high: int = 3):
    """An int, a pair of ints, or (one draw in eight) something that is neither or is below ``low``."""
    good = st.one_of(st.integers(low, high), st.tuples(st.integers(low, high), st.integers(low, high)))
    return maybe_bad(good, BAD_PAIRS, odds=7)


def as_pair(value, low: int):
    """(h, w) when value is a valid int-or-pair argument >= low, else None."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    ok = len(items) == 2 and all(is_int(v, low) for v in items)
    return items if ok else None


@st.composite
def images(draw, channels=None, dtypes=None):
    """(x, in range and well shaped, malformed): (N, C, H, W) with N (and rarely H or W) 0, now and then
    another rank."""
    n, c = draw(st.integers(0, 3)), channels if channels is not None else draw(st.integers(1, 3))
    h, w = (draw(st.integers(0, 7)) if rarely(draw, 9) else draw(st.integers(1, 7)) for _ in range(2))
    shape = draw(st.sampled_from([(c, h, w), (1, n, c, h, w)])) if rarely(draw, 15) else (n, c, h, w)
    x = draw(tensors(shape, **({"dtypes": dtypes} if dtypes else {})))
    well_shaped = x.dim() == 4 and x.shape[2] >= 1 and x.shape[3] >= 1  # an image has pixels
    return x, in_range(x) and well_shaped, malformed(x, well_shaped)


def out_size(size, kernel, stride, padding, dilation=(1, 1)):
    """(H_out, W_out), or None when the dilated window is larger than the padded input."""
    out = []
    for i in range(2):
        span = dilation[i] * (kernel[i] - 1) + 1
        if span > size[i] + 2 * padding[i]:
            return None
        out.append((size[i] + 2 * padding[i] - span) // stride[i] + 1)
    return tuple(out)


def bounded_close(y, expected, magnitude, n, what, dtype=None):
    """|y - expected| <= n u M + u |expected| + tiny, u: the unit roundoff of dtype (default y's)."""
    dtype = dtype or y.dtype
    u = unit_roundoff(dtype)
    allowed = n * u * magnitude + u * expected.abs() + torch.finfo(dtype).tiny
    excess = (y.detach().double() - expected.detach()).abs() - allowed.detach()
    worst = float(excess.max()) if excess.numel() else 0.0
    assert worst <= 0, f"{what}: off the float64 reference by more than n u M (excess {worst:.3g})"


def check_conv2d_im2col(stride, padding, dilation, groups, kernel, with_bias, c_out_per_group, data):
    g = groups if is_int(groups, 1) else 1
    x, x_ok, x_bad = data.draw(images(channels=g * data.draw(st.integers(1, 2))))
    c_in = x.shape[1] if x.dim() == 4 else 1
    c_g = c_in + 1 if data.draw(st.integers(0, 7)) == 7 else max(1, c_in // g)
    dtypes = (x.dtype,) if is_float(x) else (torch.float32,)
    weight = data.draw(tensors((g * c_out_per_group, c_g, *kernel), dtypes=dtypes * 5 + (torch.float64,),
                               other_dtypes=False))
    bias = data.draw(tensors((g * c_out_per_group,), dtypes=(weight.dtype,) * 7 + (torch.float64,),
                             other_dtypes=False)) if with_bias else None
    s, p, dl = as_pair(stride, 1), as_pair(padding, 0), as_pair(dilation, 1)
    valid = (not x_bad and not malformed(weight) and weight.dtype == x.dtype and is_int(groups, 1)
             and c_g * g == c_in and (bias is None or (not malformed(bias) and bias.dtype == x.dtype))
             and None not in (s, p, dl) and out_size(x.shape[2:], kernel, s, p, dl) is not None)
    ok = valid and x_ok and in_range(weight) and (bias is None or in_range(bias))
    names = {"x", "weight", "bias", "stride", "padding", "dilation", "groups", "weight kernel"}
    y = outcome(lambda: conv2d_im2col(x, weight, bias, stride, padding, dilation, groups), names, ok,
                not valid)
    if y is None:
        return
    assert y.dtype == x.dtype and y.is_contiguous()
    assert_finite(y, "conv2d_im2col")
    ref = F.conv2d(x.double(), weight.double(), None if bias is None else bias.double(), s, p, dl, g)
    mag = F.conv2d(x.double().abs(), weight.double().abs(), None if bias is None else bias.double().abs(),
                   s, p, dl, g)
    assert y.shape == ref.shape
    bounded_close(y, ref, mag, c_g * kernel[0] * kernel[1] + 2, "conv2d_im2col")


test_conv2d_im2col, test_conv2d_im2col_long = fuzz(
    stride=pair_args(1), padding=pair_args(0), dilation=pair_args(1),
    groups=maybe_bad(st.integers(1, 3), (0, -1, True, 1.0, None), odds=15),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), with_bias=st.booleans(),
    c_out_per_group=st.integers(1, 2), data=st.data(),
)(check_conv2d_im2col)


def check_toeplitz(kernel, c_in, c_out, stride, padding, dilation, input_hw, data):
    weight = data.draw(tensors((c_out, c_in, *kernel), other_dtypes=False))
    s, p, dl = as_pair(stride, 1), as_pair(padding, 0), as_pair(dilation, 1)
    valid = not malformed(weight) and None not in (s, p, dl) and (
        out_size(input_hw, kernel, s, p, dl) is not None)
    names = {"weight", "stride", "padding", "dilation", "weight kernel", "input_shape"}
    matrix = outcome(lambda: conv2d_toeplitz_matrix(weight, (c_in, *input_hw), stride, padding, dilation),
                     names, valid and in_range(weight), not valid)
    if matrix is None:
        return
    assert_finite(matrix, "Toeplitz matrix")
    if in_range(weight):  # the product below is float64: no overflow
        x = torch.randn(1, c_in, *input_hw, dtype=torch.float64)
        ref = F.conv2d(x, weight.double(), None, s, p, dl).reshape(-1)
        mag = F.conv2d(x.abs(), weight.double().abs(), None, s, p, dl).reshape(-1)
        bounded_close(matrix.double() @ x.reshape(-1), ref, mag, c_in * kernel[0] * kernel[1], "Toeplitz",
                      torch.float64)


test_toeplitz, test_toeplitz_long = fuzz(
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), c_in=st.integers(1, 2), c_out=st.integers(1, 2),
    stride=pair_args(1), padding=pair_args(0), dilation=pair_args(1),
    input_hw=st.tuples(st.integers(1, 5), st.integers(1, 5)), data=st.data(),
)(check_toeplitz)


def check_pooling_plans(kind, kernel_size, stride, padding, count_include_pad, data):
    x, x_ok, x_bad = data.draw(images())
    k, s, p = as_pair(kernel_size, 1), (as_pair(kernel_size, 1) if stride is None else as_pair(stride, 1)), \
        as_pair(padding, 0)
    valid = not x_bad and None not in (k, s, p) and all(2 * pi <= ki for pi, ki in zip(p, k)) and \
        out_size(x.shape[2:], k, s, p) is not None
    names = {"x", "kernel_size", "stride", "padding", "count_include_pad"}
    if kind == "max":
        plan = outcome(lambda: maxpool_plan(x, kernel_size, stride, padding), names, valid and x_ok,
                       not valid)
    else:
        valid = valid and isinstance(count_include_pad, bool)
        plan = outcome(lambda: avgpool_plan(x, kernel_size, stride, padding, count_include_pad), names,
                       valid and x_ok, not valid)
    if plan is None:
        return
    plan.validate()
    y = pool_from_plan(x, plan)
    assert y.dtype == x.dtype
    assert_finite(y, f"{kind} pooling from its plan")
    if kind == "max":
        ref = F.max_pool2d(x.double(), k, s, p)
        assert torch.equal(y.double(), ref), "max pooling from the plan differs from F.max_pool2d"
    else:
        ref = F.avg_pool2d(x.double(), k, s, p, count_include_pad=count_include_pad)
        mag = F.avg_pool2d(x.double().abs(), k, s, p, count_include_pad=count_include_pad)
        assert y.shape == ref.shape
        bounded_close(y, ref, mag, k[0] * k[1] + 2, "avg pooling from its plan")


test_pooling_plans, test_pooling_plans_long = fuzz(
    kind=st.sampled_from(["max", "avg"]), kernel_size=pair_args(1), stride=st.one_of(st.none(), pair_args(1)),
    padding=pair_args(0, 1), count_include_pad=maybe_bad(st.booleans(), (None, 1, "no")),
    data=st.data(),
)(check_pooling_plans)


def lse_reference(x64, k, s, p, temperature):
    """log-mean-exp pooling in float64, each window's maximum taken out first and expm1/log1p used so that
    a large temperature keeps the mean's digits. Returns (value, magnitude bound) per output."""
    n, c, h, w = x64.shape
    pads = (p[1], p[1], p[0], p[0])
    windows = F.unfold(F.pad(x64.reshape(n * c, 1, h, w), pads, value=-math.inf), k, stride=s)  # (NC, kk, L)
    inside = torch.isfinite(windows)
    top = windows.amax(dim=1, keepdim=True)
    shifted = torch.where(inside, (windows - top) / temperature, torch.zeros_like(windows))
    mean = torch.where(inside, torch.expm1(shifted), torch.zeros_like(windows)).sum(1) / inside.sum(1)
    value = top.squeeze(1) + temperature * torch.log1p(mean)
    spread = torch.where(inside, (windows - top).abs(), torch.zeros_like(windows)).amax(dim=1)
    out = out_size((h, w), k, s, p)
    return value.reshape(n, c, *out), (spread + top.squeeze(1).abs()).reshape(n, c, *out)


def check_lse_pool(kernel_size, stride, padding, temperature, data):
    x, x_ok, x_bad = data.draw(images())
    k, s, p = as_pair(kernel_size, 1), (as_pair(kernel_size, 1) if stride is None else as_pair(stride, 1)), \
        as_pair(padding, 0)
    valid = not x_bad and None not in (k, s, p) and all(2 * pi <= ki for pi, ki in zip(p, k)) and \
        out_size(x.shape[2:], k, s, p) is not None and is_positive_float(temperature)
    # temperatures within a few decades of the dtype's range may be refused (named); others must work
    sane = valid and x_ok and 1e-3 <= temperature <= 1e3 * (1 if x.dtype != torch.float16 else 1e-2)
    names = {"x", "kernel_size", "stride", "padding", "temperature"}
    y = outcome(lambda: lse_pool(x, kernel_size, temperature, stride, padding), names, sane, not valid)
    if y is None:
        return
    assert y.dtype == x.dtype
    assert_finite(y, "lse_pool")
    ref, mag = lse_reference(x.double(), k, s, p, temperature)
    assert y.shape == ref.shape
    window = k[0] * k[1]
    bounded_close(y, ref, mag, window * (window + 3) + 3, "lse_pool")


test_lse_pool, test_lse_pool_long = fuzz(
    kernel_size=pair_args(1), stride=st.one_of(st.none(), pair_args(1)), padding=pair_args(0, 1),
    temperature=maybe_bad(st.sampled_from([1.0, 0.1, 10.0, 1e-3, 1e3, 1e6, 1e30, 1e-30, 1e-45, 1e39]),
                          (0.0, -1.0, math.nan, None, True)),
    data=st.data(),
)(check_lse_pool)


def check_conv_pool_block(in_ch, out_ch, kernel_size, pool, pool_size, stride, padding, temperature, dtype,
                          data):
    valid = {"in_ch": is_int(in_ch, 1), "out_ch": is_int(out_ch, 1), "pool": pool in ("max", "avg", "lse"),
             "kernel_size": as_pair(kernel_size, 1) is not None,
             "pool_size": as_pair(pool_size, 1) is not None,
             "stride": as_pair(stride, 1) is not None, "padding": as_pair(padding, 0) is not None,
             "temperature": is_positive_float(temperature),
             "dtype": isinstance(dtype, torch.dtype) and dtype.is_floating_point}
    bad = {name for name, good in valid.items() if not good}
    blocks = {}
    for impl in ("native", "im2col"):
        gen = torch.Generator().manual_seed(7)
        blocks[impl] = outcome(lambda: ConvPoolBlock(in_ch, out_ch, kernel_size, pool, impl, pool_size,
                                                     stride, padding, temperature, gen, dtype),
                               bad, not bad, bool(bad))
    if blocks["native"] is None:
        return
    x, x_ok, x_bad = data.draw(images(channels=in_ch + 1 if data.draw(st.integers(0, 9)) == 9 else in_ch,
                               dtypes=(dtype, dtype, torch.float32)))
    k, s, p, q = (as_pair(v, low) for v, low in ((kernel_size, 1), (stride, 1), (padding, 0), (pool_size, 1)))
    conv_hw = out_size(x.shape[2:], k, s, p) if x.dim() == 4 else None
    valid = (not x_bad and x.dtype == dtype and x.shape[1] == in_ch and conv_hw is not None
             and out_size(conv_hw, q, q, (0, 0)) is not None)
    ok = valid and x_ok and 1e-3 <= temperature <= 1e3
    names = {"x", "weight", "weight kernel", "kernel_size", "pool_size", "temperature"}
    outputs = {impl: outcome(lambda: block(x), names, ok, not valid) for impl, block in blocks.items()}
    if None in outputs.values():
        assert all(v is None for v in outputs.values()), "one implementation refused what the other took"
        return
    block = blocks["native"]
    z = F.relu(F.conv2d(x.double(), block.weight.double(), block.bias.double(), s, p))
    mag = F.conv2d(x.double().abs(), block.weight.double().abs(), block.bias.double().abs(), s, p)
    if pool == "max":
        ref, mag = F.max_pool2d(z, q), F.max_pool2d(mag, q)
    elif pool == "avg":
        ref, mag = F.avg_pool2d(z, q), F.avg_pool2d(mag, q)
    else:
        ref, lse_mag = lse_reference(z, q, q, (0, 0), temperature)
        mag = F.max_pool2d(mag, q) * (q[0] * q[1] * (q[0] * q[1] + 3) + 3) + lse_mag
    n = in_ch * k[0] * k[1] + q[0] * q[1] + 4
    for impl, y in outputs.items():
        assert y.dtype == dtype and y.shape == ref.shape
        assert_finite(y, f"ConvPoolBlock({impl})")
        bounded_close(y, ref, mag, n, f"ConvPoolBlock({impl}, {pool})")


test_conv_pool_block, test_conv_pool_block_long = fuzz(
    in_ch=maybe_bad(st.integers(1, 3), (0, -1, True, 2.0), odds=9),
    out_ch=maybe_bad(st.integers(1, 2), (0, None), odds=9),
    kernel_size=pair_args(1), pool=maybe_bad(st.sampled_from(["max", "avg", "lse"]), ("median",), odds=9),
    pool_size=pair_args(1, 2), stride=pair_args(1, 2), padding=pair_args(0, 1),
    temperature=maybe_bad(st.sampled_from([1.0, 0.5, 4.0]), (0.0, math.inf, None), odds=9),
    dtype=maybe_bad(st.sampled_from([torch.float32, torch.float64, torch.bfloat16]), (torch.int64, "float32"),
                    odds=9),
    data=st.data(),
)(check_conv_pool_block)


def check_compose(first_shape, second_out, first_stride, data):
    first = data.draw(tensors(first_shape, dtypes=(torch.float64, torch.float32), other_dtypes=False))
    second = data.draw(tensors((second_out, first_shape[0], 2, 2), dtypes=(first.dtype,), other_dtypes=False))
    s = as_pair(first_stride, 1)
    valid = not malformed(first) and not malformed(second) and s is not None
    names = {"first", "second", "first_stride"}
    composed = outcome(lambda: compose_conv_kernels(first, second, first_stride), names,
                       valid and in_range(first) and in_range(second), not valid)
    if composed is None:
        return
    assert_finite(composed, "composed kernel")
    if not (in_range(first) and in_range(second)):  # the float64 convolutions below could overflow
        return
    size = (first_shape[2] + s[0] * 3 + 2, first_shape[3] + s[1] * 3 + 2)
    x = torch.randn(1, first_shape[1], *size, dtype=torch.float64)
    two = F.conv2d(F.conv2d(x, first.double(), stride=s), second.double())
    one = F.conv2d(x, composed.double(), stride=s)
    mag = F.conv2d(F.conv2d(x.abs(), first.double().abs(), stride=s), second.double().abs())
    n = first_shape[1] * first_shape[2] * first_shape[3] + first_shape[0] * 4 + 8
    bounded_close(one, two, mag, n, "composed kernel", first.dtype)


test_compose, test_compose_long = fuzz(
    first_shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3)),
    second_out=st.integers(1, 2), first_stride=pair_args(1), data=st.data(),
)(check_compose)


def check_receptive_field(kernel_sizes, strides, dilations):
    layers = len(kernel_sizes) if isinstance(kernel_sizes, list) else None
    ok = bool(layers) and all(is_int(v, 1) for v in kernel_sizes) and all(
        seq is None or (len(seq) == layers and all(is_int(v, 1) for v in seq))
        for seq in (strides, dilations))
    field = outcome(lambda: receptive_field(kernel_sizes, strides, dilations),
                    {"kernel_sizes", "strides", "dilations"}, ok, not ok)
    if field is None:
        return
    expected, jump = 1, 1
    for i, k in enumerate(kernel_sizes):
        expected += (1 if dilations is None else dilations[i]) * (k - 1) * jump
        jump *= 1 if strides is None else strides[i]
    assert field == expected


ints_list = st.lists(st.integers(1, 4), min_size=0, max_size=4)
bad_list = st.lists(st.sampled_from([0, -1, 2.5, None, True, 2]), min_size=1, max_size=3)
test_receptive_field, test_receptive_field_long = fuzz(
    kernel_sizes=st.one_of(ints_list, ints_list, bad_list),
    strides=st.one_of(st.none(), ints_list, bad_list), dilations=st.one_of(st.none(), ints_list, bad_list),
)(check_receptive_field)
