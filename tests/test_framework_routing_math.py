"""Exact routing predictions (theory_checks.routing.predictions) against brute-force enumeration and rationals."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from theory_checks.routing.predictions import (
    expected_dropped,
    expert_drop_pmf,
    iid_sum_p_value,
    multinomial_max_cdf,
    multinomial_max_pmf,
    simhash_bucket_collision,
)


def _enumerate_max_cdf(T, E, c):
    """Fraction of the E^T equally likely assignments whose max load is <= c."""
    good = sum(max(np.bincount(a, minlength=E)) <= c for a in itertools.product(range(E), repeat=T))
    return good / E**T


@pytest.mark.parametrize("T,E", [(7, 3), (6, 4), (5, 5)])
def test_max_cdf_matches_enumeration(T, E):
    for c in range(0, T + 1):
        assert multinomial_max_cdf(T, E, c) == pytest.approx(_enumerate_max_cdf(T, E, c), abs=1e-13)


def test_max_cdf_matches_exact_rational_formula():
    # P(max <= c) = T! / E^T * [x^T] (sum_{j<=c} x^j / j!)^E, in exact rationals
    T, E = 40, 6
    for c in (7, 9, 12, 15):
        poly = [Fraction(1)]
        for _ in range(E):
            new = [Fraction(0)] * (len(poly) + c)
            for i, a in enumerate(poly):
                for j in range(c + 1):
                    new[i + j] += a / math.factorial(j)
            poly = new
        exact = Fraction(math.factorial(T), E**T) * (poly[T] if T < len(poly) else 0)
        assert multinomial_max_cdf(T, E, c) == pytest.approx(float(exact), rel=1e-10)


def test_max_pmf_is_a_distribution_with_known_mean():
    values, pmf = multinomial_max_pmf(7, 3)
    assert values[0] == 3 and pmf.sum() == pytest.approx(1.0, abs=1e-14)
    brute = np.bincount(
        [max(np.bincount(a, minlength=3)) for a in itertools.product(range(3), repeat=7)], minlength=8
    ) / 3**7
    assert pmf == pytest.approx(brute[values], abs=1e-13)


def test_expected_dropped_matches_enumeration_top1_and_top2():
    T, E, C = 6, 3, 2
    drops = [
        sum(max(0, n - C) for n in np.bincount(a, minlength=E)) for a in itertools.product(range(E), repeat=T)
    ]
    assert expected_dropped(T, E, 1, C) == pytest.approx(np.mean(drops), abs=1e-12)
    # top-2 of 4 experts: each token picks one of the 6 pairs uniformly
    T, E, C = 4, 4, 2
    pairs = list(itertools.combinations(range(E), 2))
    drops = []
    for choice in itertools.product(pairs, repeat=T):
        load = np.bincount(np.array(choice).reshape(-1), minlength=E)
        drops.append(np.maximum(load - C, 0).sum())
    assert expected_dropped(T, E, 2, C) == pytest.approx(np.mean(drops), abs=1e-12)


def test_simhash_collision_and_validation():
    assert simhash_bucket_collision(math.pi / 2, 3) == pytest.approx(0.125)
    assert simhash_bucket_collision(0.0, 5) == 1.0
    with pytest.raises(ValueError, match="theta"):
        simhash_bucket_collision(4.0, 1)
    with pytest.raises(ValueError, match="num_tokens"):
        multinomial_max_cdf(0, 3, 1)
    with pytest.raises(ValueError, match="k must"):
        expected_dropped(10, 4, 5, 2)
    with pytest.raises(ValueError, match="capacity"):
        expected_dropped(10, 4, 1, -1)


def test_expert_drop_pmf_is_the_overflow_of_a_binomial_load():
    pmf = expert_drop_pmf(256, 8, 2, 80)
    load = stats.binom(256, 2 / 8)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert pmf[0] == pytest.approx(load.cdf(80), rel=1e-12)
    assert pmf[3] == pytest.approx(load.pmf(83), rel=1e-12)
    mean = float((np.arange(pmf.size) * pmf).sum())
    assert 8 * mean == pytest.approx(expected_dropped(256, 8, 2, 80), rel=1e-12)
    with pytest.raises(ValueError, match="capacity must be an integer"):
        expert_drop_pmf(256, 8, 2, 257)


def test_iid_sum_p_value_matches_the_binomial_for_bernoulli_draws():
    """A sum of n Bernoulli(p) draws is Binomial(n, p): the doubled smaller tail from scipy's cdf and sf."""
    for n, p, s in ((400, 0.1, 40), (400, 0.1, 25), (400, 0.1, 62), (50, 0.5, 0), (1200, 0.03, 55)):
        expected = min(1.0, 2 * min(stats.binom.cdf(s, n, p), stats.binom.sf(s - 1, n, p)))
        assert iid_sum_p_value(np.array([1 - p, p]), n, s) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert iid_sum_p_value(np.array([0.5, 0.5]), 3, 4) == 0.0  # beyond the largest possible sum
    with pytest.raises(ValueError, match="integer sum"):
        iid_sum_p_value(np.array([0.5, 0.5]), 3, 1.5)
