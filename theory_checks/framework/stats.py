"""Statistics helpers for checks, backed by scipy (hand-written only where scipy has no routine: Holm).

Conventions: ``conf`` is a confidence level (default 1 - ALPHA); p-values are two-sided unless stated; every
function validates its input and raises ValueError naming the argument.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats

from .result import ALPHA

DEFAULT_CONF = 1.0 - ALPHA


def _check_counts(k: int, n: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if int(k) != k or not 0 <= k <= n:
        raise ValueError(f"k must be an integer in [0, n={n}], got {k}")


def _check_conf(conf: float) -> None:
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must be in (0, 1), got {conf}")


def _check_prob(p: float, name: str = "p") -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")


def binomial_test(k: int, n: int, p: float, alternative: str = "two-sided") -> float:
    """Exact binomial test of k successes in n trials against success probability p. Returns the p-value."""
    _check_counts(k, n)
    _check_prob(p)
    return float(stats.binomtest(int(k), int(n), float(p), alternative=alternative).pvalue)


def sign_test_less(x: Sequence[float], y: Sequence[float]) -> tuple[float, int, int]:
    """One-sided exact sign test that paired x tends to be below y (ties dropped; binomial test, p = 1/2).

    Returns (p_value, pairs with x < y, non-tied pairs); p = 1 when every pair is tied.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-D and paired (equal length), got {xa.shape} and {ya.shape}")
    wins, losses = int((xa < ya).sum()), int((xa > ya).sum())
    if wins + losses == 0:
        return 1.0, 0, 0
    return binomial_test(wins, wins + losses, 0.5, alternative="greater"), wins, wins + losses


def clopper_pearson(k: int, n: int, conf: float = DEFAULT_CONF) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided confidence interval for a binomial proportion."""
    _check_counts(k, n)
    _check_conf(conf)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=conf, method="exact")
    return float(ci.low), float(ci.high)


def wilson(k: int, n: int, conf: float = DEFAULT_CONF) -> tuple[float, float]:
    """Wilson score interval (no continuity correction) for a binomial proportion."""
    _check_counts(k, n)
    _check_conf(conf)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=conf, method="wilson")
    return float(ci.low), float(ci.high)


def _holm(p_values: Sequence[float], alpha: float) -> tuple[list[bool], list[float]]:
    """statsmodels' Holm step-down on validated p-values: (reject flags, adjusted p-values)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("p_values must be a non-empty 1-D sequence")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p_values must lie in [0, 1]")
    _check_conf(alpha)
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
    return [bool(r) for r in reject], [float(a) for a in adjusted]


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down procedure (statsmodels): reject flags (True = reject), family-wise error <= alpha."""
    return _holm(p_values, alpha)[0]


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values: ``adjusted[j] <= alpha`` iff ``holm(p, alpha)[j]`` for every alpha."""
    return _holm(p_values, ALPHA)[1]


def pool_sparse_cells(
    observed: Sequence[float], expected: Sequence[float], min_expected: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Merge neighbouring cells from both ends until each cell expects >= min_expected counts.

    Chi-square's null distribution is only trusted with expected counts of about 5 or more (Cochran's rule).
    Returns (observed, expected) of the pooled cells; the totals are unchanged.
    """
    obs, exp = list(map(float, observed)), list(map(float, expected))
    if len(obs) != len(exp) or not obs:
        raise ValueError("observed and expected must be non-empty and of equal length")
    while len(exp) > 1 and exp[0] < min_expected:
        head_e, head_o = exp.pop(0), obs.pop(0)
        exp[0] += head_e
        obs[0] += head_o
    while len(exp) > 1 and exp[-1] < min_expected:
        tail_e, tail_o = exp.pop(), obs.pop()
        exp[-1] += tail_e
        obs[-1] += tail_o
    return np.asarray(obs), np.asarray(exp)


def chisquare_gof(
    observed: Sequence[float], probs: Sequence[float], ddof: int = 0, min_expected: float = 5.0
) -> tuple[float, float, int]:
    """Pearson chi-square goodness of fit of counts to cell probabilities (scipy.stats.chisquare).

    probs are normalised to sum 1; tail cells with expected count < min_expected are pooled first.
    Returns (statistic, p_value, number of cells after pooling).
    """
    obs = np.asarray(observed, dtype=float)
    pr = np.asarray(probs, dtype=float)
    if obs.shape != pr.shape or obs.ndim != 1:
        raise ValueError(f"observed and probs must be 1-D of equal length, got {obs.shape} and {pr.shape}")
    if np.any(pr < 0) or pr.sum() <= 0:
        raise ValueError("probs must be non-negative with a positive sum")
    expected = pr / pr.sum() * obs.sum()
    obs, expected = pool_sparse_cells(obs, expected, min_expected)
    if obs.size < 2 + ddof:
        raise ValueError(f"only {obs.size} cells left after pooling: too few for chi-square with ddof={ddof}")
    res = stats.chisquare(obs, expected, ddof=ddof)
    return float(res.statistic), float(res.pvalue), int(obs.size)


def ks_test(sample: Sequence[float], cdf: str | Callable, args: tuple = ()) -> tuple[float, float]:
    """One-sample Kolmogorov-Smirnov test against a continuous cdf. Returns (statistic, p_value)."""
    x = np.asarray(sample, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError("sample must be 1-D with at least 2 values")
    res = stats.kstest(x, cdf, args=args)
    return float(res.statistic), float(res.pvalue)


def one_sample_t(
    sample: Sequence[float], popmean: float, conf: float = DEFAULT_CONF
) -> tuple[float, float, float, float]:
    """Student t test of mean == popmean. Returns (mean, ci_low, ci_high, p_value)."""
    x = np.asarray(sample, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError("sample must be 1-D with at least 2 values")
    _check_conf(conf)
    res = stats.ttest_1samp(x, popmean)
    ci = res.confidence_interval(confidence_level=conf)
    return float(x.mean()), float(ci.low), float(ci.high), float(res.pvalue)


def bootstrap_ci(
    data,
    statistic: Callable = np.mean,
    conf: float = DEFAULT_CONF,
    seed: int = 0,
    n_resamples: int = 9999,
    paired: bool = False,
    method: str = "BCa",
) -> tuple[float, float, float]:
    """scipy.stats.bootstrap interval. data: 1-D array, or a tuple of arrays (set paired=True for paired
    samples).

    statistic must accept ``axis=`` (numpy reductions do). Returns (estimate on the data, ci_low, ci_high).
    """
    _check_conf(conf)
    samples = tuple(np.asarray(d, dtype=float) for d in data) if isinstance(data, tuple) else (
        np.asarray(data, dtype=float),
    )
    if any(s.ndim != 1 or s.size < 2 for s in samples):
        raise ValueError("data must be 1-D with at least 2 values (or a tuple of such arrays)")
    res = stats.bootstrap(
        samples, statistic, n_resamples=n_resamples, paired=paired, confidence_level=conf,
        method=method, rng=np.random.default_rng(seed),
    )
    return float(statistic(*samples, axis=-1)), float(res.confidence_interval.low), float(
        res.confidence_interval.high
    )


def loglog_slope(
    x: Sequence[float], y: Sequence[float], conf: float = DEFAULT_CONF
) -> tuple[float, float, float]:
    """Least-squares slope of log(y) on log(x) (scipy.stats.linregress) with a Student-t interval (n - 2 dof).

    Returns (slope, ci_low, ci_high).
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1 or xa.size < 3:
        raise ValueError("x and y must be 1-D of equal length >= 3")
    if not (np.all(np.isfinite(xa) & (xa > 0)) and np.all(np.isfinite(ya) & (ya > 0))):
        raise ValueError("x and y must be positive and finite")
    lx, ly = np.log(xa), np.log(ya)
    _check_conf(conf)
    fit = stats.linregress(lx, ly)
    half = stats.t.ppf(0.5 + conf / 2.0, lx.size - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)
