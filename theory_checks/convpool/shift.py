"""Shift invariance of pooling (docs/THEORY.md §B).

k x k stride-k max pooling of iid continuous inputs: a window's output survives a shift iff the maximum of
the union of the old and new windows lies in their intersection, so P(unchanged) = Jaccard index
|A & B| / |A | B|: (k - s)/(k + s) for an axial shift s, (k-1)^2 / (2k^2 - (k-1)^2) for the diagonal shift
(1, 1). Each trial is one window on its own iid map, so the count of unchanged outputs is exactly binomial.
A convolution with circular padding followed by global pooling is exactly invariant to circular shifts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sparse_bench.blocks import conv2d_im2col
from theory_checks.framework import (ALPHA, binomial_test, by_profile, clopper_pearson, figure_spec,
                                     make_result, register_check, result_from_cells, series)

from .common import AREA, SOURCE, gamma, global_avg, global_max


def jaccard(k: int, shift: tuple[int, int]) -> float:
    """|A & B| / |A | B| for k x k windows A and B = A shifted by (dy, dx)."""
    inter = max(k - shift[0], 0) * max(k - shift[1], 0)
    return inter / (2 * k * k - inter)


def _overlap_fraction(k: int, shift: tuple[int, int]) -> float:
    """Planted defect in the prediction: intersection over the window size instead of over the union."""
    return max(k - shift[0], 0) * max(k - shift[1], 0) / (k * k)


def shift_cells() -> list[tuple[int, tuple[int, int]]]:
    """k in {2, 3, 4}; axial shifts s = 1..k-1 along rows and along columns; the diagonal (1, 1)."""
    cells = []
    for k in (2, 3, 4):
        cells += [(k, (s, 0)) for s in range(1, k)] + [(k, (0, s)) for s in range(1, k)] + [(k, (1, 1))]
    return cells


@register_check(
    name="maxpool_shift_invariance", source=SOURCE, area=AREA,
    prediction="P(k x k stride-k max-pool output unchanged by a shift) = Jaccard index of the windows: "
               "(k-s)/(k+s) "
               "axial, (k-1)^2/(2k^2-(k-1)^2) diagonal, k in {2,3,4}",
    unit="probability",
    controls={"average_in_place_of_max": lambda: {"pool": global_avg},
              "overlap_over_window_formula": lambda: {"formula": _overlap_fraction}},
)
def check_maxpool_shift_invariance(seed: int, profile: str = "quick", pool=global_max, formula=jaccard):
    trials = by_profile(profile, quick=2000, full=100_000)
    gen = torch.Generator().manual_seed(seed)
    cells = []
    for k, (dy, dx) in shift_cells():
        x = torch.randn(trials, 1, k + dy, k + dx, generator=gen, dtype=torch.float64)
        before, after = pool(x[:, :, :k, :k]), pool(x[:, :, dy : dy + k, dx : dx + k])  # one window per map
        same = int((before == after).sum())
        predicted = formula(k, (dy, dx))
        cells.append({"k": k, "shift": [dy, dx], "predicted": predicted, "measured": same / trials,
                      "ci": clopper_pearson(same, trials), "p_value": binomial_test(same, trials, predicted)})
    return result_from_cells(
        "maxpool_shift_invariance", cells, head=cells[0], seed=seed, profile=profile, n=trials * len(cells),
        test=f"exact binomial per (k, shift), Holm over {len(cells)}", margin=f"family-wise alpha {ALPHA}",
        params={"trials_per_cell": trials},
        details={"figure": figure_spec(
            "max pooling shift invariance: P(unchanged) against the windows' Jaccard index",
            "predicted P = Jaccard index of old and new windows", "measured P(unchanged)",
            series("measured (k, shift) cells", [c["predicted"] for c in cells],
                   [c["measured"] for c in cells], [c["ci"][0] for c in cells], [c["ci"][1] for c in cells]),
            series("measured = predicted", [0.0, 1.0], [0.0, 1.0], style="predicted"))})


def circular_conv(x, weight):
    """Convolution with circular padding (same size output): wrap-pad, then the library's im2col conv."""
    kh, kw = weight.shape[2:]
    padded = F.pad(x, (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2), mode="circular")
    return conv2d_im2col(padded, weight)


def zero_padded_conv(x, weight):
    """Planted defect: zero padding where circular padding was meant."""
    kh, kw = weight.shape[2:]
    return conv2d_im2col(x, weight, padding=(kh // 2, kw // 2))[..., : x.shape[2], : x.shape[3]]


@register_check(
    name="global_pool_circular_invariance", source=SOURCE, area=AREA,
    prediction="global max and average pooling of a circularly padded convolution are invariant to "
               "circular shifts "
               "of the input (exact; difference within fp32 rounding)",
    unit="× rounding bound",
    controls={"zero_padding": lambda: {"conv": zero_padded_conv}},
)
def check_global_pool_circular_invariance(seed: int, profile: str = "quick", conv=circular_conv):
    images = by_profile(profile, quick=16, full=512)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for k in (3, 4):
        x = torch.randn(images, 2, 9, 10, generator=gen)
        w = torch.randn(3, 2, k, k, generator=gen)
        shift = [int(v) for v in torch.randint(1, 9, (2,), generator=gen)]
        z, z_shifted = conv(x, w), conv(torch.roll(x, shift, dims=(2, 3)), w)
        magnitude = conv(x.abs().double(), w.abs().double())  # sum |w||x| of every conv output
        per_channel = lambda t: t.reshape(images * 3, 1, *t.shape[2:])  # noqa: E731  (T, 1, H, W) maps
        terms = 2 * k * k
        bound_max = 2 * gamma(terms, torch.float32) * magnitude.amax(dim=(2, 3)).reshape(-1)
        gamma_avg = 2 * gamma(terms + z.shape[2] * z.shape[3], torch.float32)
        bound_avg = gamma_avg * magnitude.mean(dim=(2, 3)).reshape(-1)
        for pooled, bound in ((global_max, bound_max), (global_avg, bound_avg)):
            diff = (pooled(per_channel(z)) - pooled(per_channel(z_shifted))).abs().double()
            worst = max(worst, float((diff / bound).max()))
    return make_result("global_pool_circular_invariance", passed=worst <= 1.0, seed=seed, profile=profile,
                       n=images * 3 * 2 * 2, test="max |pool(x) - pool(roll(x))| / rounding bound <= 1",
                       predicted=0.0, measured=worst,
                       margin="bound: 2*gamma_K*max|w||x| (max), 2*gamma_{K+HW}*mean|w||x| (avg)",
                       details={"no_figure": "an invariance exact in real arithmetic: the one number is the "
                                "worst difference over its fp32 rounding bound (<= 1 passes)"})
