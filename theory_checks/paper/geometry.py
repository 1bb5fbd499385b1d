"""docs/THEORY.md §A items 5 and 8: the buckets of the p-stable hash meeting a disk of a 2-dimensional
subspace against their expected count, and uncovered buckets against sum_b (1 - p_b)^N.

Geometry on a subspace Gamma with orthonormal basis U (d, k): hash i cuts Gamma along the lines
g_i . z = j w - b_i with g_i = U^T a_i ~ N(0, I_k). Lemma 4.2's claims about these cells (diameter / width
flat in d and shrinking with C, the bucket count (sqrt(d) / w)^O(k)) are findings
(``theory_checks.findings.lemma42_geometry``), not checks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from sparse_bench.hashing import PStableHash
from sparse_bench.targets import random_subspace, uniform_cube
from theory_checks.framework import (ALPHA, by_profile, figure_spec, loglog_slope, make_result,
                                     register_check, result_from_cells, series)

from . import cases
from .common import AREA, source, squared_width_pstable


def unit_ball_points(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """n points uniform in the unit ball of R^k: (n, k) float64."""
    g = torch.randn(n, k, generator=gen, dtype=torch.float64)
    radius = torch.rand(n, 1, generator=gen, dtype=torch.float64) ** (1.0 / k)
    return g / g.norm(dim=1, keepdim=True) * radius


def _hash_on_subspace(make_hash, d, D, width, basis, z, seed):
    """The hash, its projection (k, D) onto Gamma, and the number of points whose black-box codes disagree
    with the parametric ones (away from cell boundaries): must be 0 for the geometry to describe the
    implementation."""
    h = make_hash(d, D, width, seed)
    proj = basis.T @ h.directions  # (k, D)
    raw = (z @ proj + h.offsets) / width  # (M, D)
    agree = h.codes(z @ basis.T) == torch.floor(raw).to(torch.int64)
    near_edge = (raw - raw.round()).abs() < 1e-9
    return h, proj, int((~agree & ~near_edge).sum())


def expected_disk_count(proj: torch.Tensor, width: float) -> float:
    """E over offsets of the number of cells meeting the unit disk of Gamma (k = 2), given the directions:
    1 + (lines crossing the disk) + (crossings inside it)
    = 1 + sum_i 2 |g_i| / w + pi sum_{i<j} |det(g_i, g_j)| / w^2."""
    D = proj.shape[1]
    lines = float(2 * proj.norm(dim=0).sum()) / width
    dets = sum(abs(float(torch.det(proj[:, [i, j]]))) for i in range(D) for j in range(i + 1, D))
    return 1 + lines + math.pi * dets / width**2


def weighted_slope(x: np.ndarray, y: np.ndarray, weights: np.ndarray, conf: float = 1 - ALPHA):
    """Weighted least-squares slope of y on x with a Student-t interval (n - 2 dof). Returns (slope, lo, hi).

    Used where Var(y_i) ∝ 1 / weights_i: the log of a count with mean E has variance about 1 / E."""
    design = np.stack([np.ones_like(x), x], axis=1)  # (n, 2)
    gram = design.T @ (weights[:, None] * design)
    beta = np.linalg.solve(gram, design.T @ (weights * y))
    resid = y - design @ beta
    sigma2 = float(weights @ resid**2) / (x.size - 2)
    half = stats.t.ppf(0.5 + conf / 2, x.size - 2) * np.sqrt(sigma2 * np.linalg.inv(gram)[1, 1])
    return float(beta[1]), float(beta[1] - half), float(beta[1] + half)


def exact_disk_regions(proj: torch.Tensor, offsets: torch.Tensor, width: float) -> int:
    """Exact number of hash cells meeting the unit disk of Gamma (k = 2): 1 + chords + crossings inside.

    proj: (2, D) projected directions g_i; offsets: (D,). Cell boundaries are the lines g_i . z = j w - b_i;
    a line meets the disk when |j w - b_i| < |g_i|. Euler's formula for chords of a disk in general position.
    """
    normals, values, family = [], [], []
    for i in range(proj.shape[1]):
        g, b, reach = proj[:, i], float(offsets[i]), float(proj[:, i].norm())
        j = torch.arange(math.floor((b - reach) / width), math.ceil((b + reach) / width) + 1, dtype=torch.float64)
        c = j * width - b
        c = c[c.abs() < reach]
        normals.append(g.expand(c.numel(), 2))
        values.append(c)
        family.append(torch.full((c.numel(),), i))
    n, c, fam = torch.cat(normals), torch.cat(values), torch.cat(family)  # (L, 2), (L,), (L,)
    a, b = torch.triu_indices(n.shape[0], n.shape[0], offset=1)
    keep = fam[a] != fam[b]  # lines of one hash are parallel
    a, b = a[keep], b[keep]
    det = n[a, 0] * n[b, 1] - n[a, 1] * n[b, 0]
    x = (c[a] * n[b, 1] - c[b] * n[a, 1]) / det
    y = (n[a, 0] * c[b] - n[b, 0] * c[a]) / det
    return 1 + int(c.numel()) + int((x * x + y * y < 1).sum())


@register_check(
    name="paper_bucket_count_vs_width", source=source(5), area=AREA,
    prediction="the buckets of D p-stable hashes meeting the unit disk of a 2-dim subspace number their "
    "expectation given the projected directions g_i, 1 + sum_i 2|g_i|/w + pi sum_{i<j} |det(g_i, g_j)|/w^2, at "
    "every width w (slope 0 of log(count / expectation) on log(1/w)), and the hash's codes are those cells'",
    unit="slope",
    controls={"width_squared": lambda: {"make_hash": squared_width_pstable}},
)
def check_bucket_count_vs_width(seed: int, profile: str = "quick", make_hash=PStableHash):
    """Buckets meeting the unit disk of Gamma, one fresh hash per (replicate, width), counted exactly from the
    hash's own parameters (``exact_disk_regions``: no sampling, so counts are never sample-limited) after
    checking on sampled points that the black-box codes are those of that geometry. Expected count given the
    directions (Euler, ``expected_disk_count`` at the nominal width): w -> 0 slope k, at these widths a little
    less (the 1/w boundary term). Test: the weighted (Var log count ~ 1/E) slope of log(count / expected) on
    log(1/w) has a t-interval containing 0. Sampled distinct buckets, reported beside the exact counts, must
    never exceed them (dense sampling misses sliver cells)."""
    gen = torch.Generator().manual_seed(seed)
    samples = by_profile(profile, quick=cases.COUNT_SAMPLES[0], full=cases.COUNT_SAMPLES[1])
    reps = by_profile(profile, quick=cases.COUNT_REPLICATES[0], full=cases.COUNT_REPLICATES[1])
    d, k, D = cases.COUNT_D, cases.COUNT_K, cases.COUNT_C * cases.COUNT_K
    inv_w, counts, expected, sampled, disagreements = [], [], [], [], 0
    for _ in range(reps):
        basis = random_subspace(d, k, gen)
        z = unit_ball_points(samples, k, gen)  # (N, k) in the unit disk of Gamma
        for w in cases.COUNT_WIDTHS:
            h, proj, bad = _hash_on_subspace(make_hash, d, D, w, basis, z,
                                             int(torch.randint(0, 2**62, (1,), generator=gen)))
            disagreements += bad
            counts.append(exact_disk_regions(proj, h.offsets, h.width))
            sampled.append(int(torch.unique(h.bucket(z @ basis.T)).numel()))
            expected.append(expected_disk_count(proj, w))
            inv_w.append(1 / w)
    slope, lo, hi = loglog_slope(inv_w, counts)
    r_slope, r_lo, r_hi = weighted_slope(np.log(inv_w), np.log(np.array(counts) / np.array(expected)),
                                         weights=np.array(expected))
    e_slope = loglog_slope(inv_w, expected)[0]
    never_more = all(s <= c for s, c in zip(sampled, counts))
    passed = r_lo <= 0 <= r_hi and disagreements == 0 and never_more
    return make_result(
        "paper_bucket_count_vs_width", passed=passed, seed=seed, profile=profile, n=len(counts),
        test="weighted t-interval of the slope of log(exact count / expectation) on log(1/w)", predicted=e_slope,
        measured=slope, ci=(lo, hi), margin=f"ratio slope CI [{r_lo:.4f}, {r_hi:.4f}] must contain 0; codes "
        "agree with the geometry; sampled buckets never above the exact count",
        params={"d": d, "k": k, "D": D, "widths": cases.COUNT_WIDTHS, "samples": samples, "replicates": reps},
        details={"inv_width": inv_w, "counts": counts, "expected": expected, "sampled_counts": sampled,
                 "ratio_slope": [r_slope, r_lo, r_hi], "codes_disagreeing_with_geometry": disagreements,
                 "asymptotic_slope": k, "finite_width_expected_slope": e_slope,
                 "figure": _count_figure(inv_w, counts, expected, sampled, slope)})


def _count_figure(inv_w: list, counts: list, expected: list, sampled: list, slope: float) -> dict:
    """Exact bucket counts of every replicate against 1/w, beside the mean expected (Euler) count per
    width."""
    widths = sorted(set(inv_w))
    mean_expected = [float(np.mean([e for x, e in zip(inv_w, expected) if x == v])) for v in widths]
    return figure_spec(
        "Buckets meeting the unit disk of the subspace vs 1 / width", "1 / width", "buckets (log scale)",
        series(f"exact count per replicate (fitted slope {slope:.3f})", inv_w, counts),
        series("sampled distinct buckets per replicate", inv_w, sampled),
        series("expected count (Euler, mean over replicates)", widths, mean_expected, style="predicted"),
        log_x=True, log_y=True)


def interval_buckets(h: PStableHash) -> torch.Tensor:
    """Exact bucket probabilities of a 1-D hash under U[-1, 1]: lengths / 2 of the intervals between
    boundaries."""
    a, b, w = h.directions[0], h.offsets, h.width  # (D,), (D,)
    cuts = [torch.tensor([-1.0, 1.0], dtype=torch.float64)]
    for ai, bi in zip(a.tolist(), b.tolist()):
        lo, hi = sorted(((-ai + bi) / w, (ai + bi) / w))
        j = torch.arange(math.floor(lo), math.ceil(hi) + 1, dtype=torch.float64)
        x = (j * w - bi) / ai
        cuts.append(x[(x > -1) & (x < 1)])
    edges = torch.sort(torch.cat(cuts)).values
    return edges, torch.diff(edges) / 2


def _cubed_uniform(n, gen):
    """Defect: a sampler that returns u^3 for u ~ U[-1, 1] (not uniform)."""
    return uniform_cube(n, 1, gen) ** 3


@register_check(
    name="paper_uncovered_buckets", source=source(8), area=AREA,
    prediction="E[# buckets with no training sample] = sum_b (1 - p_b)^N", unit="buckets",
    controls={"non_uniform_sampler": lambda: {"sample": _cubed_uniform}},
)
def check_uncovered_buckets(seed: int, profile: str = "quick", sample=None):
    """1-D inputs uniform on [-1, 1] and a p-stable hash with D hashes: buckets are the intervals between all
    hash boundaries, so p_b is exact. For N = factor * B, the mean uncovered count over R independent training
    sets is compared with sum (1 - p_b)^N by a z-test using the exact variance
    sum_b q_b (1 - q_b) + sum_{b != c} [(1 - p_b - p_c)^N - q_b q_c], Holm over the factors."""
    sample = sample or (lambda n, g: uniform_cube(n, 1, g))
    gen = torch.Generator().manual_seed(seed)
    reps = by_profile(profile, quick=cases.COVERAGE_REPLICATES[0], full=cases.COVERAGE_REPLICATES[1])
    h = PStableHash(1, cases.COVERAGE_HASHES, cases.COVERAGE_WIDTH, seed)
    edges, p = interval_buckets(h)
    mids = ((edges[1:] + edges[:-1]) / 2).unsqueeze(1)
    consistent = int(torch.unique(h.bucket(mids)).numel()) == p.numel()
    B = p.numel()
    rows = []
    for factor in cases.COVERAGE_SIZE_FACTORS:
        N = max(1, int(round(factor * B)))
        q = (1 - p) ** N
        pair = (1 - p.unsqueeze(0) - p.unsqueeze(1)).clamp_min(0) ** N
        pair.fill_diagonal_(0)
        var = float((q * (1 - q)).sum() + pair.sum() - (q.sum() ** 2 - (q * q).sum()))
        observed = [B - int(torch.unique(h.bucket(sample(N, gen))).numel()) for _ in range(reps)]
        mean, expect = float(np.mean(observed)), float(q.sum())
        z = (mean - expect) / math.sqrt(var / reps)
        rows.append(dict(N=N, factor=factor, expected=expect, observed_mean=mean, sd=math.sqrt(var), z=z,
                         p_value=float(2 * stats.norm.sf(abs(z)))))
    worst = max(rows, key=lambda r: abs(r["z"]))
    half = stats.norm.ppf(1 - ALPHA / 2) * worst["sd"] / math.sqrt(reps)
    return result_from_cells(
        "paper_uncovered_buckets", rows, passed=consistent, seed=seed, profile=profile,
        n=reps * len(rows), test=f"z-test with exact variance, Holm over {len(rows)} sample sizes",
        predicted=worst["expected"], measured=worst["observed_mean"],
        ci=(worst["observed_mean"] - half, worst["observed_mean"] + half),
        margin="none beyond the z-tests (exact expectation and variance)",
        params={"buckets": B, "replicates": reps, "hashes": cases.COVERAGE_HASHES,
                "width": cases.COVERAGE_WIDTH},
        details={"midpoints_hash_to_distinct_buckets": consistent,
                 "figure": _uncovered_figure(rows, reps, B)})


def _uncovered_figure(rows: list[dict], reps: int, buckets: int) -> dict:
    """Mean uncovered buckets per training-set size (normal interval from the exact variance, 1 - ALPHA)."""
    z = stats.norm.ppf(1 - ALPHA / 2)
    sizes = [r["N"] for r in rows]
    return figure_spec(
        f"Buckets without a training sample ({buckets} buckets, {reps} training sets per size)",
        "training samples N", "uncovered buckets",
        series("measured mean (exact-variance interval)", sizes, [r["observed_mean"] for r in rows],
               [r["observed_mean"] - z * r["sd"] / math.sqrt(reps) for r in rows],
               [r["observed_mean"] + z * r["sd"] / math.sqrt(reps) for r in rows]),
        series("sum_b (1 - p_b)^N", sizes, [r["expected"] for r in rows], style="predicted"), log_x=True)
