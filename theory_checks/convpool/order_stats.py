"""A planted pattern among n Gaussian scores, seen through global max pooling (docs/THEORY.md §B).

Scores are an (h, w) map of iid N(0, 1) (n = h*w), one position (uniform) shifted by mu. Exact predictions by
scipy quadrature: P(argmax = planted) = int phi(x - mu) Phi(x)^(n-1) dx and
E[max] = int x n phi(x) Phi(x)^(n-1) dx.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import integrate, stats

from theory_checks.framework import (ALPHA, binomial_test, by_profile, clopper_pearson, figure_spec,
                                     one_sample_t, register_check, result_from_cells, series)

from .common import AREA, SOURCE, crop_last_row, global_argmax, global_max

ARGMAX_CELLS = [((8, 8), 1.5), ((8, 8), 3.0), ((16, 16), 3.0)]  # (score map shape, mu)
MAX_CELLS = [(8, 8), (16, 16)]


def p_argmax_planted(n: int, mu: float) -> float:
    """P(the planted N(mu,1) score is the largest of n), by quadrature."""
    integrand = lambda x: stats.norm.pdf(x - mu) * stats.norm.cdf(x) ** (n - 1)  # noqa: E731
    return integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12)[0]


def expected_max(n: int) -> float:
    """E[max of n iid N(0,1)], by quadrature (64 -> 2.3437, 256 -> 2.8269)."""
    integrand = lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1)  # noqa: E731
    return integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12)[0]


def _planted_scores(gen, trials, shape, mu):
    h, w = shape
    x = torch.randn(trials, 1, h, w, generator=gen, dtype=torch.float64)
    where = torch.randint(0, h * w, (trials,), generator=gen)
    x.view(trials, -1)[torch.arange(trials), where] += mu
    return x, where


@register_check(
    name="planted_argmax_probability", source=SOURCE, area=AREA,
    prediction="P(max pooling routes to the planted score) = int phi(x-mu) Phi(x)^(n-1) dx",
    unit="probability",
    controls={"window_misses_last_row": lambda: {"argmax": crop_last_row(global_argmax)}},
)
def check_planted_argmax_probability(seed: int, profile: str = "quick", argmax=global_argmax):
    trials = by_profile(profile, quick=3000, full=100_000)
    gen = torch.Generator().manual_seed(seed)
    cells = []
    for shape, mu in ARGMAX_CELLS:
        x, where = _planted_scores(gen, trials, shape, mu)
        hits = int((argmax(x) == where).sum())
        predicted = p_argmax_planted(shape[0] * shape[1], mu)
        cells.append({"n": shape[0] * shape[1], "mu": mu, "predicted": predicted, "measured": hits / trials,
                      "ci": clopper_pearson(hits, trials), "p_value": binomial_test(hits, trials, predicted)})
    return result_from_cells(
        "planted_argmax_probability", cells, head=cells[1], seed=seed, profile=profile, n=trials * len(cells),
        test=f"exact binomial per cell, Holm over {len(cells)} cells",
        margin=f"family-wise alpha {ALPHA}; quadrature error < 1e-10", params={"trials": trials},
        details={"figure": figure_spec(
            "max pooling routes to the planted score: measured against the quadrature",
            "predicted P (quadrature)", "measured P (Clopper-Pearson, 1 - ALPHA)",
            series("cells (n, mu) = " + ", ".join(f"({c['n']}, {c['mu']:g})" for c in cells),
                   [c["predicted"] for c in cells], [c["measured"] for c in cells],
                   [c["ci"][0] for c in cells], [c["ci"][1] for c in cells]),
            series("measured = predicted", [0.0, 1.0], [0.0, 1.0], style="predicted"))})


def _sqrt_two_log_n(n: int) -> float:
    """Planted defect in the prediction: the upper bound sqrt(2 ln n) used as if it were E[max]."""
    return math.sqrt(2 * math.log(n))


@register_check(
    name="expected_max_gaussian", source=SOURCE, area=AREA,
    prediction="E[global max pool of n iid N(0,1)] = int x n phi Phi^(n-1) dx (2.3437 for n=64, "
               "2.8269 for 256) "
               "< sqrt(2 ln n)",
    unit="score sd",
    controls={"sqrt_2_ln_n_formula": lambda: {"formula": _sqrt_two_log_n},
              "window_misses_last_row": lambda: {"pool": crop_last_row(global_max)}},
)
def check_expected_max_gaussian(seed: int, profile: str = "quick", pool=global_max, formula=expected_max):
    trials = by_profile(profile, quick=6000, full=200_000)
    gen = torch.Generator().manual_seed(seed)
    cells = []
    for h, w in MAX_CELLS:
        maxima = pool(torch.randn(trials, 1, h, w, generator=gen, dtype=torch.float64)).numpy()
        predicted = formula(h * w)
        mean, lo, hi, p = one_sample_t(maxima, predicted)
        cells.append({"n": h * w, "predicted": predicted, "measured": mean, "ci": [lo, hi], "p_value": p,
                      "sqrt_2_ln_n": _sqrt_two_log_n(h * w)})
    ns = [c["n"] for c in cells]
    return result_from_cells(
        "expected_max_gaussian", cells, head=cells[0], seed=seed, profile=profile, n=trials * len(cells),
        test="one-sample t per n, Holm over n in {64, 256}", margin=f"family-wise alpha {ALPHA}",
        params={"trials": trials},
        details={"figure": figure_spec(
            "global max pooling of n iid N(0, 1) scores: E[max] against n", "n (scores pooled)",
            "max (in score standard deviations)",
            series("measured mean (t-interval, 1 - ALPHA)", ns, [c["measured"] for c in cells],
                   [c["ci"][0] for c in cells], [c["ci"][1] for c in cells]),
            series("E[max] by quadrature", ns, [c["predicted"] for c in cells], style="predicted"),
            series("sqrt(2 ln n) (upper bound)", ns, [c["sqrt_2_ln_n"] for c in cells], style="predicted"),
            log_x=True)})
