"""Detecting a planted pattern by pooling n Gaussian scores (docs/THEORY.md §B).

H0: n iid N(0,1) scores; H1: K of them (distinct, uniform positions) shifted by mu; equal priors. Detectors
threshold a pooled statistic: max pooling at the threshold t* minimising the closed form
e_max(t) = 1/2 [1 - Phi(t)^n] + 1/2 Phi(t)^(n-K) Phi(t-mu)^K; average pooling at K mu / (2n), error
Phi(-K mu / (2 sqrt n)); log-sum-exp pooling with temperature 1/mu at mu/2 (for K = 1 that is the likelihood
ratio test, so its error is the Bayes error, never above either). Errors at fixed thresholds are binomial.
"""

from __future__ import annotations

import math

import torch
from scipy import optimize, stats

from sparse_bench.blocks import lse_pool
from theory_checks.framework import (ALPHA, binomial_test, by_profile, clopper_pearson, figure_spec, holm,
                                     make_result, register_check, result_from_cells, series)

from .common import AREA, SOURCE, crop_last_row, global_avg, global_max

SHAPE = (8, 8)  # n = 64 scores
MUS = (2.0, 3.0)  # single-copy cells of the detection check
FLIP_MU, FLIP_KS = 2.0, (1, 16)  # ranking flip: max wins at K = 1, average wins at K = 16


def max_pool_error(n: int, mu: float, copies: int = 1) -> tuple[float, float]:
    """(min over t of e_max(t), argmin t) for K = copies planted scores among n."""
    def error(t):
        false_alarm = 1 - stats.norm.cdf(t) ** n
        miss = stats.norm.cdf(t) ** (n - copies) * stats.norm.cdf(t - mu) ** copies
        return 0.5 * false_alarm + 0.5 * miss

    best = optimize.minimize_scalar(error, bounds=(-3.0, 10.0), method="bounded", options={"xatol": 1e-10})
    return float(best.fun), float(best.x)


def avg_pool_error(n: int, mu: float, copies: int = 1) -> float:
    """Best-threshold error of average pooling: Phi(-K mu / (2 sqrt n))."""
    return float(stats.norm.cdf(-copies * mu / (2 * math.sqrt(n))))


def _avg_error_variance_for_sd(n: int, mu: float, copies: int = 1) -> float:
    """Planted defect in the prediction: n in place of sqrt(n)."""
    return float(stats.norm.cdf(-copies * mu / (2 * n)))


def global_lse(mu: float):
    """Global log-mean-exp pooling at temperature 1/mu (the library's lse_pool). x: (T,1,H,W) -> (T,)."""
    return lambda x: lse_pool(x, (x.shape[2], x.shape[3]), 1.0 / mu).reshape(-1)


def _samples(gen, trials, mu, copies):
    """Equal numbers of H0 and H1 maps: (2*trials, 1, H, W) float64 and labels (2*trials,) bool."""
    h, w = SHAPE
    x = torch.randn(2 * trials, 1, h, w, generator=gen, dtype=torch.float64)
    where = torch.rand(trials, h * w, generator=gen).argsort(dim=1)[:, :copies]  # distinct positions
    x[trials:].view(trials, -1).scatter_add_(1, where, torch.full(where.shape, mu, dtype=torch.float64))
    labels = torch.arange(2 * trials) >= trials
    return x, labels


def _errors(decisions, labels) -> torch.Tensor:
    return decisions != labels


@register_check(
    name="pooling_detection_error", source=SOURCE, area=AREA,
    prediction="one planted copy among 64: max-pool error = min_t e_max(t), avg-pool error = Phi(-mu/16), "
               "log-sum-exp (likelihood ratio) error <= min of both",
    unit="error probability",
    controls={"avg_closed_form_n_not_sqrt_n": lambda: {"avg_error": _avg_error_variance_for_sd},
              "windows_miss_last_row": lambda: {"max_pool": crop_last_row(global_max),
                                                "avg_pool": crop_last_row(global_avg),
                                                "lse_of": lambda mu: crop_last_row(global_lse(mu))}},
)
def check_pooling_detection_error(seed: int, profile: str = "quick", max_pool=global_max, avg_pool=global_avg,
                                  lse_of=global_lse, avg_error=avg_pool_error):
    trials = by_profile(profile, quick=10_000, full=200_000)
    gen = torch.Generator().manual_seed(seed)
    n = SHAPE[0] * SHAPE[1]
    cells = []
    for mu in MUS:
        x, labels = _samples(gen, trials, mu, 1)
        e_max, t_star = max_pool_error(n, mu)
        e_avg = avg_error(n, mu)
        stats_and_thresholds = {"max": (max_pool(x), t_star, e_max, "two-sided"),
                                "avg": (avg_pool(x), mu / (2 * n), e_avg, "two-sided"),
                                "lse": (lse_of(mu)(x), mu / 2, min(e_max, e_avg), "greater")}
        for name, (statistic, threshold, predicted, alternative) in stats_and_thresholds.items():
            wrong = int(_errors(statistic > threshold, labels).sum())
            p = binomial_test(wrong, 2 * trials, predicted, alternative=alternative)
            cells.append({"mu": mu, "pool": name, "predicted": predicted, "measured": wrong / (2 * trials),
                          "ci": clopper_pearson(wrong, 2 * trials), "p_value": p, "test": alternative,
                          "threshold": threshold})
    return result_from_cells(
        "pooling_detection_error", cells, head=cells[0], seed=seed, profile=profile, n=2 * trials * len(MUS),
        test=f"exact binomial per cell (max, avg two-sided; lse one-sided 'greater' than min), Holm over "
             f"{len(cells)}",
        margin=f"family-wise alpha {ALPHA}", params={"trials_per_class": trials, "n": n},
        details={"figure": _detection_figure(cells, n)})


def _detection_figure(cells: list[dict], n: int) -> dict:
    """Detection error vs planted strength mu, per pooling: measured (Clopper-Pearson) vs the closed form."""
    curves = []
    for pool in dict.fromkeys(c["pool"] for c in cells):
        rows = [c for c in cells if c["pool"] == pool]
        mus = [c["mu"] for c in rows]
        curves.append(series(f"{pool} measured", mus, [c["measured"] for c in rows],
                             [c["ci"][0] for c in rows], [c["ci"][1] for c in rows], group=pool))
        curves.append(series(f"{pool} closed form / bound", mus, [c["predicted"] for c in rows],
                             style="predicted", group=pool))
    return figure_spec(f"detection error of one planted pattern among n={n} scores", "signal strength mu",
                       "error (best threshold)", *curves)


def _avg_routed_like_max(x):
    """Planted defect: 'average' pooling whose plan keeps only each window's maximum (scaled by 1/n)."""
    return global_max(x) / (x.shape[2] * x.shape[3])


@register_check(
    name="detection_ranking_flip", source=SOURCE, area=AREA,
    prediction="n=64, mu=2: max pooling beats average pooling with K=1 planted copy, average beats max with "
               "K=16 (closed forms cross near K=9)",
    unit="error difference",
    controls={"average_routed_like_max": lambda: {"avg_pool": _avg_routed_like_max}},
)
def check_detection_ranking_flip(seed: int, profile: str = "quick", max_pool=global_max, avg_pool=global_avg):
    trials = by_profile(profile, quick=4_000, full=100_000)
    gen = torch.Generator().manual_seed(seed)
    n = SHAPE[0] * SHAPE[1]
    cells, p_values = [], []
    for copies in FLIP_KS:
        x, labels = _samples(gen, trials, FLIP_MU, copies)
        e_max, t_star = max_pool_error(n, FLIP_MU, copies)
        e_avg = avg_pool_error(n, FLIP_MU, copies)
        err_max = _errors(max_pool(x) > t_star, labels)
        err_avg = _errors(avg_pool(x) > copies * FLIP_MU / (2 * n), labels)
        max_should_win = e_max < e_avg
        loser, winner = (err_avg, err_max) if max_should_win else (err_max, err_avg)
        only_loser, only_winner = int((loser & ~winner).sum()), int((winner & ~loser).sum())
        discordant = only_loser + only_winner
        # exact McNemar: under "equal error rates" each discordant pair is the loser's with probability 1/2
        p = binomial_test(only_loser, discordant, 0.5, alternative="greater") if discordant else 1.0
        p_values.append(p)
        cells.append({"K": copies, "predicted_max": e_max, "predicted_avg": e_avg,
                      "measured_max": float(err_max.double().mean()),
                      "measured_avg": float(err_avg.double().mean()),
                      "predicted_winner": "max" if max_should_win else "avg", "p_value": p})
    crossover = next(
        k for k in range(1, n + 1) if avg_pool_error(n, FLIP_MU, k) < max_pool_error(n, FLIP_MU, k)[0]
    )
    rejected = holm(p_values, ALPHA)
    diff = [c["measured_avg"] - c["measured_max"] for c in cells]
    return make_result("detection_ranking_flip", passed=all(rejected), seed=seed, profile=profile,
                       n=2 * trials * len(FLIP_KS),
                       test="exact one-sided McNemar per K, Holm; both must reject",
                       predicted=cells[0]["predicted_avg"] - cells[0]["predicted_max"], measured=diff[0],
                       p_value=max(p_values), margin=f"family-wise alpha {ALPHA}",
                       params={"mu": FLIP_MU, "n": n, "trials_per_class": trials},
                       details={"cells": cells, "closed_form_crossover_K": crossover,
                                "figure": _flip_figure(cells, n, 2 * trials, crossover)})


def _flip_figure(cells: list[dict], n: int, decisions: int, crossover: int) -> dict:
    """Error of max and average pooling against the number K of planted copies: the closed forms over K, the
    measured errors (Clopper-Pearson, 1 - ALPHA) at the tested K."""
    ks = list(range(1, max(FLIP_KS) + 5))
    curves = []
    for pool, closed_form in (("max", lambda k: max_pool_error(n, FLIP_MU, k)[0]),
                              ("avg", lambda k: avg_pool_error(n, FLIP_MU, k))):
        rates = [c[f"measured_{pool}"] for c in cells]
        cis = [clopper_pearson(round(rate * decisions), decisions) for rate in rates]
        curves += [series(f"{pool} measured", [c["K"] for c in cells], rates, [lo for lo, _ in cis],
                          [hi for _, hi in cis], group=pool),
                   series(f"{pool} closed form", ks, [closed_form(k) for k in ks], style="predicted",
                          group=pool)]
    return figure_spec(f"max vs average pooling: detection error against planted copies K (n={n}, "
                       f"mu={FLIP_MU}; closed forms cross at K={crossover})", "planted copies K",
                       "error (best threshold)", *curves)
