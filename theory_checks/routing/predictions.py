"""Exact predictions for uniformly random routing (docs/THEORY.md §C), computed with scipy, not simulated.

Balls into bins: T tokens each choose a uniformly random set of k of the E experts, independently. The load of
one expert is Binomial(T, k/E) (each token includes it with probability k/E); for k = 1 the load vector is
Multinomial(T; 1/E, ..., 1/E).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def _check_tokens_experts(num_tokens: int, num_experts: int, k: int = 1) -> None:
    if int(num_tokens) != num_tokens or num_tokens < 1:
        raise ValueError(f"num_tokens must be a positive integer, got {num_tokens}")
    if int(num_experts) != num_experts or num_experts < 1:
        raise ValueError(f"num_experts must be a positive integer, got {num_experts}")
    if int(k) != k or not 1 <= k <= num_experts:
        raise ValueError(f"k must be an integer in [1, num_experts={num_experts}], got {k}")


def expected_dropped(num_tokens: int, num_experts: int, k: int, capacity: int) -> float:
    """E[assignments dropped] = E * E[(Binomial(T, k/E) - C)_+] for uniformly random top-k routing.

    Exact by linearity: every expert keeps min(load, C) and drops (load - C)_+; the sum is over the pmf.
    """
    _check_tokens_experts(num_tokens, num_experts, k)
    if int(capacity) != capacity or capacity < 0:
        raise ValueError(f"capacity must be a non-negative integer, got {capacity}")
    loads = np.arange(int(capacity) + 1, num_tokens + 1)
    pmf = stats.binom.pmf(loads, num_tokens, k / num_experts)
    return float(num_experts * np.sum((loads - capacity) * pmf))


def expert_drop_pmf(num_tokens: int, num_experts: int, k: int, capacity: int) -> np.ndarray:
    """pmf of one expert's dropped assignments (L - C)_+ under uniformly random top-k routing, where its load
    L is exactly Binomial(T, k/E) (each token picks it with probability k/E, independently of other tokens).
    Entry j is P(drops = j), j = 0 .. T - C."""
    _check_tokens_experts(num_tokens, num_experts, k)
    if int(capacity) != capacity or not 0 <= capacity <= num_tokens:
        raise ValueError(f"capacity must be an integer in [0, {num_tokens}], got {capacity}")
    drops = np.arange(num_tokens - int(capacity) + 1)
    pmf = stats.binom.pmf(drops + int(capacity), num_tokens, k / num_experts)
    pmf[0] = stats.binom.cdf(int(capacity), num_tokens, k / num_experts)
    return pmf


def _fft_convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b by FFT (long pmfs: direct convolution is quadratic), rounding below 0 clipped to 0."""
    from scipy.signal import fftconvolve

    return np.clip(fftconvolve(a, b), 0.0, None)


def iid_sum_p_value(pmf: np.ndarray, draws: int, observed_sum: int) -> float:
    """Exact two-sided p-value of the sum of ``draws`` iid values with pmf ``pmf`` (over 0, 1, ...):
    min(1, 2 min(P(S <= s), P(S >= s))), the sum's pmf by FFT convolution (rounding ~1e-16 of its mode)."""
    if draws < 1 or observed_sum < 0 or int(observed_sum) != observed_sum:
        raise ValueError(f"need draws >= 1 and an integer sum >= 0, got {draws}, {observed_sum}")
    pmf = np.asarray(pmf, dtype=float)
    total = _convolve_power(pmf, draws, (pmf.size - 1) * draws + 1, convolve=_fft_convolve)
    s = int(observed_sum)
    if s >= total.size:
        return 0.0
    return float(min(1.0, 2 * min(total[: s + 1].sum(), total[s:].sum())))


def capacity_for(capacity_factor: float, num_tokens: int, num_experts: int, k: int) -> int:
    """C = ceil(capacity_factor * T * k / E) (docs/DESIGN.md §4), computed independently of the routers."""
    return math.ceil(capacity_factor * num_tokens * k / num_experts)


def _convolve_power(pmf: np.ndarray, power: int, length: int, convolve=np.convolve) -> np.ndarray:
    """pmf^{*power} truncated to ``length`` entries, by repeated squaring (terms >= 0: no cancellation with
    the default direct ``convolve``)."""
    result = np.zeros(length)
    result[0] = 1.0
    base = pmf[:length]
    while power:
        if power & 1:
            result = convolve(result, base)[:length]
        power >>= 1
        if power:
            base = convolve(base, base)[:length]
    return result


def multinomial_max_cdf(num_tokens: int, num_experts: int, c: int) -> float:
    """P(max load <= c) for T balls thrown uniformly into E bins, exactly (up to float64 rounding).

    Poisson conditioning (Levin 1981): with X_1..X_E iid Poisson(T/E), (X | sum X = T) is Multinomial(T; 1/E),
    so P(max <= c) = P(all X_i <= c, sum X = T) / P(sum X = T). The numerator is the coefficient of T in the
    E-fold convolution of the Poisson pmf truncated to 0..c; the denominator is Poisson(T).pmf(T).
    """
    _check_tokens_experts(num_tokens, num_experts)
    if c * num_experts < num_tokens:
        return 0.0
    if c >= num_tokens:
        return 1.0
    lam = num_tokens / num_experts
    truncated = stats.poisson.pmf(np.arange(c + 1), lam)  # (c+1,)
    joint = _convolve_power(truncated, num_experts, num_tokens + 1)[num_tokens]
    return float(min(1.0, joint / stats.poisson.pmf(num_tokens, num_tokens)))


def multinomial_max_pmf(
    num_tokens: int, num_experts: int, tail: float = 1e-13
) -> tuple[np.ndarray, np.ndarray]:
    """Exact distribution of the maximum load: (values c, P(max = c)) from ceil(T/E) up to the first c with
    P(max > c) < tail; the (tiny) remaining mass is added to the last value so the pmf sums to 1."""
    _check_tokens_experts(num_tokens, num_experts)
    values, cdf = [], []
    c = math.ceil(num_tokens / num_experts)
    while True:
        values.append(c)
        cdf.append(multinomial_max_cdf(num_tokens, num_experts, c))
        if cdf[-1] > 1.0 - tail or c >= num_tokens:
            break
        c += 1
    cdf_arr = np.asarray(cdf)
    pmf = np.diff(np.concatenate([[0.0], cdf_arr]))
    pmf[-1] += 1.0 - cdf_arr[-1]
    return np.asarray(values), pmf


def max_load_goodness_of_fit(maxima: np.ndarray, num_tokens: int, num_experts: int) -> dict:
    """Chi-square goodness of fit of observed maximum loads to ``multinomial_max_pmf`` (tails pooled).

    maxima: (n,) int, one maximum load per trial. Returns a dict with p_value, chi2, cells, the support
    ``values``, the exact ``pmf``, the ``observed`` histogram and the exact mean.
    """
    from theory_checks.framework import chisquare_gof

    values, pmf = multinomial_max_pmf(num_tokens, num_experts)
    clipped = np.clip(np.asarray(maxima), values[0], values[-1])  # outside the support: counted at its ends
    observed = np.array([(clipped == c).sum() for c in values], dtype=float)
    chi2, p_value, cells = chisquare_gof(observed, pmf)
    return {"p_value": p_value, "chi2": chi2, "cells": cells, "values": values, "pmf": pmf,
            "observed": observed, "exact_mean": float((values * pmf).sum())}


def balls_into_bins_max_approx(num_tokens: int, num_experts: int) -> float:
    """The concentration point T/E + sqrt(2 (T/E) ln E) of docs/THEORY.md §C (T >> E ln E); reports only."""
    mean = num_tokens / num_experts
    return mean + math.sqrt(2.0 * mean * math.log(num_experts))


def simhash_bucket_collision(theta: float, bits: int) -> float:
    """P[two inputs at angle theta share all ``bits`` SimHash signs] = (1 - theta/pi)^bits (Charikar 2002)."""
    if not 0.0 <= theta <= math.pi:
        raise ValueError(f"theta must be in [0, pi], got {theta}")
    return (1.0 - theta / math.pi) ** bits
