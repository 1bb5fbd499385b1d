"""Stats helpers of the check framework against scipy and hand-computed values."""

import math

import numpy as np
import pytest
from scipy import stats

from theory_checks.framework import (
    binomial_test,
    bootstrap_ci,
    chisquare_gof,
    clopper_pearson,
    holm,
    holm_adjusted,
    ks_test,
    loglog_slope,
    one_sample_t,
    pool_sparse_cells,
    sign_test_less,
    wilson,
)


def test_holm_matches_hand_example():
    # m = 4, alpha = 0.05. Sorted p: 0.01 <= 0.05/4 = 0.0125 reject; 0.015 <= 0.05/3 = 0.0167 reject;
    # 0.03 > 0.05/2 = 0.025 stop: 0.03 and 0.04 are kept.
    p = [0.04, 0.01, 0.03, 0.015]
    assert holm(p, alpha=0.05) == [False, True, False, True]
    # adjusted: 4*0.01 = 0.04, max(0.04, 3*0.015 = 0.045), max(0.045, 2*0.03 = 0.06), max(0.06, 0.04) = 0.06
    assert holm_adjusted(p) == pytest.approx([0.06, 0.04, 0.06, 0.045])


def test_holm_is_step_down_not_bonferroni():
    # Bonferroni at 0.05/3 would keep 0.02; Holm rejects it at step 2 (0.02 <= 0.025), then 0.04 <= 0.05.
    assert holm([0.001, 0.02, 0.04], alpha=0.05) == [True, True, True]
    assert holm([0.02, 0.02], alpha=0.01) == [False, False]


def test_holm_rejects_bad_input():
    with pytest.raises(ValueError, match="p_values"):
        holm([])
    with pytest.raises(ValueError, match="p_values"):
        holm([0.1, 1.5])


def test_binomial_helpers_match_scipy():
    assert binomial_test(7, 20, 0.5) == pytest.approx(stats.binomtest(7, 20, 0.5).pvalue)
    cp = stats.binomtest(7, 20).proportion_ci(0.99, method="exact")
    assert clopper_pearson(7, 20, 0.99) == pytest.approx((cp.low, cp.high))
    # Clopper-Pearson closed form through beta quantiles
    lo = stats.beta.ppf(0.005, 7, 14)
    hi = stats.beta.ppf(0.995, 8, 13)
    assert clopper_pearson(7, 20, 0.99) == pytest.approx((lo, hi))
    # Wilson closed form
    z = stats.norm.ppf(0.975)
    ph, n = 7 / 20, 20
    centre = (ph + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n))
    assert wilson(7, 20, 0.95) == pytest.approx((centre - half, centre + half))


@pytest.mark.parametrize("bad", [(-1, 10), (11, 10), (3, 0), (2.5, 10)])
def test_binomial_helpers_reject_bad_counts(bad):
    with pytest.raises(ValueError, match="k must|n must"):
        clopper_pearson(*bad)


def test_conf_and_p_validated():
    with pytest.raises(ValueError, match="conf"):
        wilson(1, 10, 1.0)
    with pytest.raises(ValueError, match="p must"):
        binomial_test(1, 10, 1.5)


def test_chisquare_gof_matches_scipy_and_pools_tails():
    obs = np.array([30, 25, 20, 25])
    stat, p, cells = chisquare_gof(obs, [0.25] * 4)
    ref = stats.chisquare(obs, [25] * 4)
    assert (stat, p, cells) == pytest.approx((ref.statistic, ref.pvalue, 4))
    o, e = pool_sparse_cells([1, 2, 50, 40, 3], [1.0, 3.0, 48.0, 44.0, 2.0])
    assert o.tolist() == [53, 43] and e.tolist() == [52.0, 46.0]
    assert o.sum() == 96 and e.sum() == 98.0


def test_ks_and_t_match_scipy():
    x = np.random.default_rng(0).normal(size=200)
    ref = stats.kstest(x, "norm")
    assert ks_test(x, "norm") == pytest.approx((ref.statistic, ref.pvalue))
    mean, lo, hi, p = one_sample_t(x, 0.0, conf=0.95)
    t = stats.ttest_1samp(x, 0.0)
    half = stats.t.ppf(0.975, 199) * x.std(ddof=1) / math.sqrt(200)
    assert (mean, lo, hi, p) == pytest.approx((x.mean(), x.mean() - half, x.mean() + half, t.pvalue))


def test_bootstrap_ci_matches_scipy_with_same_seed():
    x = np.random.default_rng(1).exponential(size=100)
    est, lo, hi = bootstrap_ci(x, np.mean, conf=0.9, seed=5, n_resamples=2000)
    ref = stats.bootstrap((x,), np.mean, confidence_level=0.9, n_resamples=2000, rng=np.random.default_rng(5))
    assert est == pytest.approx(x.mean())
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert lo < est < hi


def test_loglog_slope_exact_power_law_and_t_interval():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    slope, lo, hi = loglog_slope(x, 3.0 * x**-2.0)
    assert slope == pytest.approx(-2.0) and lo == pytest.approx(-2.0) and hi == pytest.approx(-2.0)
    y = x**1.5 * np.exp(np.array([0.1, -0.05, 0.0, 0.07, -0.1]))
    fit = stats.linregress(np.log(x), np.log(y))
    half = stats.t.ppf(0.975, 3) * fit.stderr
    assert loglog_slope(x, y, conf=0.95) == pytest.approx((fit.slope, fit.slope - half, fit.slope + half))
    with pytest.raises(ValueError, match="positive"):
        loglog_slope(x, -y)


def test_sign_test_less_is_a_one_sided_binomial_on_non_ties():
    x = [1, 2, 3, 4, 5, 6]
    y = [2, 3, 4, 5, 5, 1]  # x < y in 4 pairs, one tie, x > y once
    p, wins, pairs = sign_test_less(x, y)
    assert (wins, pairs) == (4, 5)
    assert p == pytest.approx(stats.binomtest(4, 5, 0.5, alternative="greater").pvalue)
    assert sign_test_less([1, 1], [1, 1]) == (1.0, 0, 0)
    with pytest.raises(ValueError, match="paired"):
        sign_test_less([1, 2], [1])
