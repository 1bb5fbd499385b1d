"""Exact identities of convolution (docs/THEORY.md §B): im2col, Toeplitz matrix, composition, receptive field.

Each is exact in real arithmetic; the tolerance is the floating-point rounding bound of the two computations
(Higham's gamma, see ``gamma``), evaluated per output from the float64 magnitudes sum |w| |x|. The measured
value is the worst ratio |difference| / bound over all drawn cases; the check passes iff it is <= 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from sparse_bench.blocks import compose_conv_kernels, conv2d_im2col, conv2d_toeplitz_matrix, receptive_field
from sparse_bench.blocks._args import pair
from theory_checks.framework import by_profile, make_result, register_check

from .common import AREA, SOURCE, gamma, run_hypothesis_draws

BOUND_MARGIN = "bound: 2*gamma_K*sum|w||x| per output (Higham, any summation order), K = terms per output"
ROUNDING_ONLY = ("an identity exact in real arithmetic: the one number is the worst difference over its "
                 "rounding bound across all draws (<= 1 passes), with the worst case in the details")


@st.composite
def conv_shapes(draw):
    """A conv2d problem: (n, groups, C_in/g, C_out/g, kernel, stride, padding, dilation, (H, W), bias)."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    size = tuple(max(1, d[a] * (k[a] - 1) + 1 - 2 * p[a] + draw(st.integers(0, 5))) for a in range(2))
    n, groups, c_g, o_g = (draw(st.integers(1, 3)) for _ in range(4))
    return n, groups, c_g, o_g, k, s, p, d, size, draw(st.booleans())


def _problem(shape, gen, dtype):
    n, groups, c_g, o_g, k, s, p, d, size, use_bias = shape
    x = torch.randn(n, c_g * groups, *size, generator=gen, dtype=dtype)
    w = torch.randn(o_g * groups, c_g, *k, generator=gen, dtype=dtype)
    b = torch.randn(o_g * groups, generator=gen, dtype=dtype) if use_bias else None
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=groups)


def _ratio(diff, magnitude, terms, dtype) -> float:
    bound = 2 * gamma(terms, dtype) * magnitude + torch.finfo(torch.float64).tiny
    return float((diff.detach().abs().to(torch.float64) / bound).max())


def _identity_result(name, worst, cases, seed, profile, test, params):
    return make_result(name, passed=worst["ratio"] <= 1.0, seed=seed, profile=profile, n=cases, test=test,
                       predicted=0.0, measured=worst["ratio"], margin=BOUND_MARGIN, params=params,
                       details={"worst_case": worst, "no_figure": ROUNDING_ONLY})


def _flattened_column_major(x, w, b=None, **kw):
    """Planted defect: the kernel flattened with rows and columns swapped (a transposed patch layout)."""
    return conv2d_im2col(x, w.transpose(2, 3).reshape(w.shape), b, **kw)


@register_check(
    name="im2col_identity", source=SOURCE, area=AREA,
    prediction="conv2d_im2col == F.conv2d (forward, grad x, grad w) on hypothesis-drawn shapes, "
               "within fp32 rounding",
    unit="× rounding bound",
    controls={"kernel_flattened_transposed": lambda: {"conv": _flattened_column_major}},
)
def check_im2col_identity(seed: int, profile: str = "quick", conv=conv2d_im2col):
    examples = by_profile(profile, quick=20, full=300)
    gen = torch.Generator().manual_seed(seed)
    worst = {"ratio": 0.0}

    def body(shape):
        x, w, b, kw = _problem(shape, gen, torch.float32)
        x.requires_grad_(True)
        w.requires_grad_(True)
        out, ref = conv(x, w, b, **kw), F.conv2d(x, w, b, **kw)
        if out.shape != ref.shape:
            worst.update(ratio=float("inf"), shape=repr(shape))
            return
        up = torch.randn(ref.shape, generator=gen)
        grads = torch.autograd.grad(out, (x, w), up)
        ref_grads = torch.autograd.grad(ref, (x, w), up)
        x64, w64, u64 = (t.detach().abs().double().requires_grad_(True) for t in (x, w, up))
        b64 = None if b is None else b.abs().double()
        mag = F.conv2d(x64, w64, b64, **kw)  # sum |w||x| (+|b|) per output
        mag_x, mag_w = torch.autograd.grad(mag, (x64, w64), u64)  # sum |g||w| per input, |g||x| per weight
        k_out = w.shape[1] * w.shape[2] * w.shape[3] + 1
        k_x = w.shape[0] * w.shape[2] * w.shape[3]  # terms per input gradient
        k_w = ref.shape[0] * ref.shape[2] * ref.shape[3]  # terms per weight gradient
        ratios = [_ratio(out - ref, mag.detach(), k_out, torch.float32),
                  _ratio(grads[0] - ref_grads[0], mag_x, k_x, torch.float32),
                  _ratio(grads[1] - ref_grads[1], mag_w, k_w, torch.float32)]
        if max(ratios) > worst["ratio"]:
            worst.update(ratio=max(ratios), shape=repr(shape), forward_grad_x_grad_w=ratios)

    cases = run_hypothesis_draws(seed, examples, conv_shapes(), body)
    return _identity_result("im2col_identity", worst, cases, seed, profile,
                            "max |diff|/rounding bound over hypothesis draws <= 1", {"examples": examples})


def _flipped_toeplitz(weight, input_shape, stride, padding, dilation, groups):
    """Planted defect: a true convolution (flipped kernel) instead of PyTorch's cross-correlation."""
    return conv2d_toeplitz_matrix(weight.flip(2, 3), input_shape, stride, padding, dilation, groups)


@register_check(
    name="toeplitz_identity", source=SOURCE, area=AREA,
    prediction="T @ vec(x) == vec(conv2d(x)) in float64 on hypothesis-drawn shapes", unit="× rounding bound",
    controls={"flipped_kernel": lambda: {"toeplitz": _flipped_toeplitz}},
)
def check_toeplitz_identity(seed: int, profile: str = "quick", toeplitz=conv2d_toeplitz_matrix):
    examples = by_profile(profile, quick=20, full=300)
    gen = torch.Generator().manual_seed(seed)
    worst = {"ratio": 0.0}

    def body(shape):
        x, w, _, kw = _problem(shape, gen, torch.float64)
        ref = F.conv2d(x, w, None, **kw)
        for image in range(x.shape[0]):
            t = toeplitz(w, x.shape[1:], kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
            diff = t @ x[image].reshape(-1) - ref[image].reshape(-1)
            mag = F.conv2d(x[image : image + 1].abs(), w.abs(), None, **kw).reshape(-1)
            ratio = _ratio(diff, mag, w.shape[1] * w.shape[2] * w.shape[3], torch.float64)
            if ratio > worst["ratio"]:
                worst.update(ratio=ratio, shape=repr(shape))

    cases = run_hypothesis_draws(seed, examples, conv_shapes(), body)
    return _identity_result("toeplitz_identity", worst, cases, seed, profile,
                            "max |diff|/rounding bound over hypothesis draws <= 1", {"examples": examples})


def _correlated_composition(first, second, first_stride=1):
    """Planted defect: composing kernels by cross-correlation (second kernel flipped)."""
    return compose_conv_kernels(first, second.flip(2, 3), first_stride)


@register_check(
    name="conv_composition", source=SOURCE, area=AREA,
    prediction="conv(conv(x, w1, s1), w2, s2) == conv(x, w1 * w2 (full convolution, w2 dilated by s1), "
               "s1*s2)",
    unit="× rounding bound",
    controls={"composed_by_correlation": lambda: {"compose": _correlated_composition},
              "first_stride_ignored": lambda: {"compose": lambda a, b, s=1: compose_conv_kernels(a, b, 1)}},
)
def check_conv_composition(seed: int, profile: str = "quick", compose=compose_conv_kernels):
    cases = by_profile(profile, quick=30, full=400)
    gen = torch.Generator().manual_seed(seed)
    worst = {"ratio": 0.0}
    for _ in range(cases):
        draws = torch.randint(1, 4, (10,), generator=gen).tolist()
        c_in, c_mid, c_out, k1h, k1w, k2h, k2w, s1h, s1w, s2 = draws
        w1 = torch.randn(c_mid, c_in, k1h, k1w, generator=gen, dtype=torch.float64)
        w2 = torch.randn(c_out, c_mid, k2h, k2w, generator=gen, dtype=torch.float64)
        size = (k1h + s1h * (k2h - 1) + int(torch.randint(0, 6, (1,), generator=gen)),
                k1w + s1w * (k2w - 1) + int(torch.randint(0, 6, (1,), generator=gen)))
        x = torch.randn(2, c_in, *size, generator=gen, dtype=torch.float64)
        two = F.conv2d(F.conv2d(x, w1, stride=(s1h, s1w)), w2, stride=s2)
        kernel = compose(w1, w2, (s1h, s1w))
        one = F.conv2d(x, kernel, stride=(s1h * s2, s1w * s2)) if kernel.shape[2:] <= x.shape[2:] else None
        if one is None or one.shape != two.shape:
            worst.update(ratio=float("inf"), case=[c_in, c_mid, c_out, k1h, k1w, k2h, k2w, s1h, s1w, s2])
            continue
        mag = F.conv2d(F.conv2d(x.abs(), w1.abs(), stride=(s1h, s1w)), w2.abs(), stride=s2)
        k1, k2 = c_in * k1h * k1w, c_mid * k2h * k2w  # terms per output of each layer
        k_one = c_in * kernel.shape[2] * kernel.shape[3]
        # Higham's lemma 3.3 (gamma_a + gamma_b + gamma_a gamma_b <= gamma_{a+b}) for each side
        bound = (gamma(k1 + k2, torch.float64) + 2 * gamma(k_one + k2, torch.float64)) * mag
        ratio = float(((one - two).abs() / (bound + torch.finfo(torch.float64).tiny)).max())
        if ratio > worst["ratio"]:
            worst.update(ratio=ratio, case=[c_in, c_mid, c_out, k1h, k1w, k2h, k2w, s1h, s1w, s2])
    return make_result("conv_composition", passed=worst["ratio"] <= 1.0, seed=seed, profile=profile, n=cases,
                       test="max |diff|/rounding bound over random chains <= 1", predicted=0.0,
                       measured=worst["ratio"],
                       margin="bound: gamma_{K1+K2} M + 2 gamma_{K+K2} M, M = |w2|*(|w1|*|x|)",
                       details={"worst_case": worst, "no_figure": ROUNDING_ONLY})


def _rf_without_strides(kernel_sizes, strides, dilations):
    """Planted defect: the receptive field summed without the product of earlier strides."""
    return receptive_field(kernel_sizes, None, dilations)


@register_check(
    name="receptive_field_gradient_support", source=SOURCE, area=AREA,
    prediction="extent of d(output)/d(input) support == 1 + sum_l d_l (k_l - 1) prod_{i<l} s_i, every chain",
    unit="fraction of chains",
    controls={"strides_ignored": lambda: {"formula": _rf_without_strides}},
)
def check_receptive_field_gradient_support(seed: int, profile: str = "quick", formula=receptive_field):
    chains = by_profile(profile, quick=40, full=500)
    gen = torch.Generator().manual_seed(seed)
    mismatches = []
    for chain in range(chains):
        layers = int(torch.randint(1, 5, (1,), generator=gen))
        ks, ss, ds = (torch.randint(1, hi, (layers, 2), generator=gen).tolist() for hi in (6, 4, 4))
        per_axis = [([k[a] for k in ks], [s[a] for s in ss], [d[a] for d in ds]) for a in range(2)]
        predicted = [formula(*axis) for axis in per_axis]
        true_extent = [receptive_field(*axis) for axis in per_axis]  # sizes the input; the formula is tested
        x = torch.randn(1, 2, true_extent[0] + 3, true_extent[1] + 3, generator=gen, dtype=torch.float64,
                        requires_grad=True)
        h = x
        for k, s, d in zip(ks, ss, ds):
            w = torch.randn(2, 2, *k, generator=gen, dtype=torch.float64)
            h = F.conv2d(h, w, stride=s, dilation=d)
        (grad,) = torch.autograd.grad(h[0, 0, 0, 0], x)  # the first output's dependence on the input
        support = grad.abs().sum(dim=(0, 1)) > 0  # (H, W)
        rows, cols = support.any(dim=1).nonzero(), support.any(dim=0).nonzero()
        measured = [int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)]
        if measured != predicted:
            mismatches.append({"chain": chain, "k": ks, "s": ss, "d": ds, "measured": measured,
                               "formula": predicted})
    return make_result("receptive_field_gradient_support", passed=not mismatches, seed=seed, profile=profile,
                       n=chains, test="exact equality on every random chain", predicted=1.0,
                       measured=1 - len(mismatches) / chains,
                       margin="exact (random weights: no cancellation a.s.)",
                       details={"mismatches": mismatches[:5],
                                "no_figure": "exact equality of integer extents on every chain (the share of "
                                "chains that match must be 1); mismatching chains are in the details"})


def conv_macs(n: int, c_out: int, out_hw: tuple[int, int], c_in_per_group: int,
              kernel: tuple[int, int]) -> int:
    """docs/THEORY.md §B: multiply-accumulates of a direct or im2col convolution,
    N C_out H_o W_o (C_in / g) k_h k_w."""
    return n * c_out * out_hw[0] * out_hw[1] * c_in_per_group * kernel[0] * kernel[1]


def _stride_one_then_subsample(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Planted defect: a strided convolution computed at stride 1 and then subsampled (the right output, with
    up to s_h s_w times the multiply-accumulates)."""
    s_h, s_w = pair(stride, "stride", 1)
    return conv2d_im2col(x, w, b, 1, padding, dilation, groups)[:, :, ::s_h, ::s_w].contiguous()


@register_check(
    name="conv_mac_count", source=SOURCE, area=AREA,
    prediction="native conv2d and conv2d_im2col each perform N C_out H_o W_o (C_in/g) k_h k_w multiply-"
               "accumulates, as counted by PyTorch's FlopCounterMode (2 FLOPs per MAC)",
    unit="mismatched draws",
    controls={"stride_one_then_subsample": lambda: {"conv": _stride_one_then_subsample}},
)
def check_conv_mac_count(seed: int, profile: str = "quick", conv=conv2d_im2col):
    """On hypothesis-drawn shapes (groups, stride, padding, dilation), the FLOPs that
    ``torch.utils.flop_counter.FlopCounterMode`` (which nobody here wrote) counts for F.conv2d and for
    ``conv`` must both be exactly twice the formula. x requires grad, so every product of the im2col path is
    an ATen GEMM the counter sees (without autograd the ungrouped product runs on oneDNN, the same shapes)."""
    from torch.utils.flop_counter import FlopCounterMode

    examples = by_profile(profile, quick=30, full=300)
    gen = torch.Generator().manual_seed(seed)
    mismatches = []

    def body(shape):
        x, w, b, kw = _problem(shape, gen, torch.float32)
        x.requires_grad_(True)
        counted = {}
        for name, fn in (("native", F.conv2d), ("im2col", conv)):
            with FlopCounterMode(display=False) as counter:
                out = fn(x, w, None, **kw)
            counted[name] = counter.get_total_flops() / 2
        predicted = conv_macs(x.shape[0], w.shape[0], tuple(out.shape[2:]), w.shape[1], tuple(w.shape[2:]))
        if any(macs != predicted for macs in counted.values()):
            mismatches.append({"shape": repr(shape), "formula": predicted, **counted})

    cases = run_hypothesis_draws(seed, examples, conv_shapes(), body)
    worst = max(mismatches, key=lambda m: abs(m["im2col"] - m["formula"]), default=None)
    return make_result("conv_mac_count", passed=not mismatches, seed=seed, profile=profile, n=cases,
                       test="exact equality of counted and predicted MACs on every draw", predicted=0.0,
                       measured=len(mismatches), margin="exact (counts of whole numbers)",
                       params={"examples": examples},
                       details={"mismatches": mismatches[:5], "worst": worst,
                                "no_figure": "exact equality of counted and predicted multiply-accumulates "
                                "on every draw (a count of mismatches, 0 or the check fails)"})
