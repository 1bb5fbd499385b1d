"""Boureau, Ponce, LeCun (ICML 2010) Bernoulli model of pooling (docs/THEORY.md §B).

A binary feature is present at each of P locations independently with probability alpha_c in class c. The
separability of a pooled feature is |mean_1 - mean_2| / (sd_1 + sd_2). Predictions:
average pooling psi_avg = |a1 - a2| sqrt(P) / (sqrt(a1(1-a1)) + sqrt(a2(1-a2))) (grows like sqrt P);
max pooling psi_max = |q1 - q2| / sum_c sqrt((1 - q_c) q_c), q_c = (1 - a_c)^P, which rises then falls,
with its optimal pool size P* = argmax_P psi_max. Empirical separabilities get a delta-method standard
error from the per-class sample moments (mean, variance, their covariance from the 2nd-4th central moments).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from theory_checks.framework import (ALPHA, by_profile, figure_spec, holm, register_check, result_from_cells,
                                     series)

from .common import AREA, SOURCE, global_avg, global_max

ALPHAS = (0.1, 0.2)  # feature probability per location in class 1 and class 2
POOL_SIZES = (1, 4, 10, 20)  # 10 is psi_max's optimum for these alphas


def psi_avg(pool_size: int, a1: float, a2: float) -> float:
    return abs(a1 - a2) * math.sqrt(pool_size) / (math.sqrt(a1 * (1 - a1)) + math.sqrt(a2 * (1 - a2)))


def psi_max(pool_size: int, a1: float, a2: float) -> float:
    q1, q2 = (1 - a1) ** pool_size, (1 - a2) ** pool_size
    return abs(q1 - q2) / (math.sqrt((1 - q1) * q1) + math.sqrt((1 - q2) * q2))


def _psi_max_without_sqrt(pool_size: int, a1: float, a2: float) -> float:
    """Planted defect in the prediction: variances in place of standard deviations."""
    q1, q2 = (1 - a1) ** pool_size, (1 - a2) ** pool_size
    return abs(q1 - q2) / ((1 - q1) * q1 + (1 - q2) * q2)


def optimal_max_pool_size(a1: float, a2: float, largest: int = 1000) -> int:
    """argmax over P in [1, largest] of psi_max."""
    return max(range(1, largest + 1), key=lambda p: psi_max(p, a1, a2))


def separability(f1: np.ndarray, f2: np.ndarray) -> tuple[float, float]:
    """Empirical |m1 - m2| / (s1 + s2) of two samples of a pooled feature, and its delta-method SE."""
    grads, covs = [], []
    m = [f.mean() for f in (f1, f2)]
    s = [f.std() for f in (f1, f2)]
    total_sd = s[0] + s[1]
    psi = abs(m[0] - m[1]) / total_sd
    sign = 1.0 if m[0] >= m[1] else -1.0
    for c, f in enumerate((f1, f2)):
        centred = f - m[c]
        mu2, mu3, mu4 = (float((centred**k).mean()) for k in (2, 3, 4))
        covs.append(np.array([[mu2, mu3], [mu3, mu4 - mu2**2]]) / f.size)  # cov of (mean, variance) estimates
        d_mean = (sign if c == 0 else -sign) / total_sd
        d_var = -psi / total_sd / (2 * s[c])
        grads.append(np.array([d_mean, d_var]))
    variance = sum(g @ cv @ g for g, cv in zip(grads, covs))
    return float(psi), float(math.sqrt(variance))


def _bernoulli_maps(gen, samples, pool_size, alpha):
    return (torch.rand(samples, 1, 1, pool_size, generator=gen, dtype=torch.float64) < alpha).double()


def _avg_over_half_window(x):
    """Planted defect: average pooling over only the first half of the locations."""
    return global_avg(x[..., : max(1, x.shape[3] // 2)])


@register_check(
    name="boureau_separability", source="Boureau-Ponce-LeCun 2010; " + SOURCE, area=AREA,
    prediction="empirical separability of max and average pooling equals psi_max(P) and psi_avg(P) "
               "(Bernoulli "
               "model, a = 0.1 vs 0.2); psi_max peaks at P* = 10: psi(P*) > psi(1) and psi(P*) > psi(20)",
    unit="separability",
    controls={"psi_max_variances_not_sds": lambda: {"max_formula": _psi_max_without_sqrt},
              "avg_pools_half_the_window": lambda: {"avg_pool": _avg_over_half_window}},
)
def check_boureau_separability(seed: int, profile: str = "quick", max_pool=global_max, avg_pool=global_avg,
                               max_formula=psi_max, avg_formula=psi_avg):
    samples = by_profile(profile, quick=20_000, full=400_000)
    gen = torch.Generator().manual_seed(seed)
    a1, a2 = ALPHAS
    best = optimal_max_pool_size(a1, a2)
    if best not in POOL_SIZES:  # the case design, not a verdict: the peak test compares measured pool sizes
        raise ValueError(f"the optimal pool size {best} must be among POOL_SIZES {POOL_SIZES}")
    cells, measured_max = [], {}
    for pool_size in POOL_SIZES:
        maps = [_bernoulli_maps(gen, samples, pool_size, a) for a in ALPHAS]
        for name, pool, formula in (("max", max_pool, max_formula), ("avg", avg_pool, avg_formula)):
            psi, se = separability(*(pool(x).numpy() for x in maps))
            predicted = formula(pool_size, a1, a2)
            cells.append({"P": pool_size, "pool": name, "predicted": predicted, "measured": psi, "se": se,
                          "p_value": 2 * stats.norm.sf(abs(psi - predicted) / se)})
            if name == "max":
                measured_max[pool_size] = (psi, se)
    peak_tests = []  # one-sided: psi_max(P*) exceeds psi_max at the smallest and largest pool sizes
    for other in (POOL_SIZES[0], POOL_SIZES[-1]):
        (top, se_top), (low, se_low) = measured_max[best], measured_max[other]
        z = (top - low) / math.hypot(se_top, se_low)
        peak_tests.append({"P_star": best, "vs_P": other, "z": z, "p_value": float(stats.norm.sf(z))})
    peaked = all(holm([t["p_value"] for t in peak_tests], ALPHA))
    head = next(c for c in cells if c["P"] == best and c["pool"] == "max")
    z_crit = stats.norm.isf(ALPHA / (2 * len(cells)))
    return result_from_cells(
        "boureau_separability", cells, head=head, passed=peaked, seed=seed, profile=profile,
        n=2 * samples * len(POOL_SIZES),
        test=f"delta-method z per cell, Holm over {len(cells)}; peak: one-sided z, Holm over 2",
        ci=(head["measured"] - z_crit * head["se"], head["measured"] + z_crit * head["se"]),
        margin=f"family-wise alpha {ALPHA}; CI = Bonferroni-level normal",
        params={"alphas": ALPHAS, "samples_per_class": samples, "optimal_P": best},
        details={"peak_tests": peak_tests, "figure": _separability_figure(cells)})


def _separability_figure(cells: list[dict]) -> dict:
    """Separability vs pool size, per pooling: measured (+- 3.29 standard errors) against the formulas."""
    curves = []
    for pool in dict.fromkeys(c["pool"] for c in cells):
        rows = [c for c in cells if c["pool"] == pool]
        sizes = [c["P"] for c in rows]
        lo = [c["measured"] - 3.29 * c["se"] for c in rows]
        hi = [c["measured"] + 3.29 * c["se"] for c in rows]
        curves.append(series(f"{pool} measured", sizes, [c["measured"] for c in rows], lo, hi, group=pool))
        curves.append(series(f"{pool} formula", sizes, [c["predicted"] for c in rows], style="predicted",
                             group=pool))
    return figure_spec("Boureau-Ponce-LeCun Bernoulli model: separability vs pool size",
                       "pool size P (locations)", "separability psi", *curves, log_x=True)
