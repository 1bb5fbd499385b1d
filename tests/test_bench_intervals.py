"""Confidence intervals on measured ratios (``bench.timing``): the order-statistic interval for a median
(scipy's ``quantile_test``) with its exact coverage, that coverage in simulation (with a planted too-narrow interval that must
fail), and the pairing of rounds that lets a shared machine's drift cancel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sparse_bench.bench.timing import Timing, median_interval, paired_ratio_interval

ALPHA = 1e-3  # false-alarm level of the coverage check, as for the theory checks


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_interval_ends_are_order_statistics_with_their_exact_coverage(confidence):
    """On 1..n (shuffled) the interval's ends are ranks j and n + 1 - j; the coverage stated is
    P(j <= B < n + 1 - j) for B ~ Binomial(n, 1/2), at least the confidence asked, and None exactly where
    even (min, max) covers less."""
    gen = np.random.default_rng(0)
    for n in range(1, 41):
        interval = median_interval(gen.permutation(np.arange(1.0, n + 1)), confidence)
        if interval is None:
            assert 1 - 2 * 0.5**n < confidence, n
            continue
        low, high = interval["low"], interval["high"]
        assert low == n + 1 - high and interval["rounds"] == n, n
        exact = stats.binom.cdf(high - 1, n, 0.5) - stats.binom.cdf(low - 1, n, 0.5)
        assert interval["confidence"] == pytest.approx(exact, abs=1e-12) and exact >= confidence


def test_interval_rejects_bad_arguments():
    for values, confidence in (([], 0.95), ([1.0] * 7, 0.0), ([1.0] * 7, 1.0)):
        with pytest.raises(ValueError, match="need at least one value"):
            median_interval(values, confidence)


def _simulated_rounds(gen: np.random.Generator, experiments: int, rounds: int, ratio: float):
    """Per-round times of a numerator and a denominator on a drifting machine: a common lognormal drift per
    round (sigma 0.5, far larger than the ratio's own noise) times independent lognormal noise (sigma 0.05)
    each. The log-ratio is symmetric about log(ratio): the per-round ratio's median is ``ratio`` exactly."""
    drift = np.exp(gen.normal(0.0, 0.5, (experiments, rounds)))
    den = drift * np.exp(gen.normal(0.0, 0.05, (experiments, rounds)))
    num = ratio * drift * np.exp(gen.normal(0.0, 0.05, (experiments, rounds)))
    return num, den


def _coverage_p_value(interval_fn, seed: int = 20261203, experiments: int = 4000, rounds: int = 7) -> float:
    """Two-sided exact binomial p-value of the observed coverage of the true median against the coverage the
    interval states (``interval_fn(Timing, Timing) -> dict``)."""
    num, den = _simulated_rounds(np.random.default_rng(seed), experiments, rounds, ratio=1.3)
    covered, stated = 0, None
    for a, b in zip(num, den):
        interval = interval_fn(Timing(0.0, 0.0, rounds, tuple(a)), Timing(0.0, 0.0, rounds, tuple(b)))
        covered += interval["low"] <= 1.3 <= interval["high"]
        stated = interval["confidence"]
    return stats.binomtest(covered, experiments, stated).pvalue


def test_paired_interval_covers_as_stated():
    """Prediction: over 4000 simulated 7-round runs the interval holds the true median ratio in a fraction
    equal to its stated coverage 1 - 2/2^7; exact binomial test at alpha = 1e-3, seed 20261203."""
    assert _coverage_p_value(paired_ratio_interval) >= ALPHA


def test_coverage_check_rejects_a_narrower_interval_claiming_the_same_coverage():
    """Negative control: order statistics one rank inward (true coverage 1 - 16/2^7 = 0.875) reported with the
    coverage of (min, max) must fail the same check."""

    def too_narrow(num: Timing, den: Timing) -> dict:
        ratios = sorted(a / b for a, b in zip(num.samples, den.samples))
        return {"low": ratios[1], "high": ratios[-2], "confidence": median_interval(ratios)["confidence"]}

    assert _coverage_p_value(too_narrow) < ALPHA


def test_pairing_cancels_a_drift_that_hits_both_alike():
    """Times exactly proportional round by round (ratio 1.5) under a 4x drift give the interval [1.5, 1.5];
    the same samples with the denominator's rounds shuffled (pairing broken) do not."""
    drift = [1.0, 4.0, 2.0, 1.5, 3.0, 1.2, 2.5]
    num = Timing(0.0, 0.0, 7, tuple(1.5 * t for t in drift))
    den = Timing(0.0, 0.0, 7, tuple(drift))
    paired = paired_ratio_interval(num, den)
    assert paired["low"] == pytest.approx(1.5) and paired["high"] == pytest.approx(1.5)
    assert paired["rounds"] == 7 and paired["confidence"] == pytest.approx(1 - 2 / 2**7)
    shuffled = paired_ratio_interval(num, Timing(0.0, 0.0, 7, tuple(reversed(drift))))
    assert shuffled["high"] / shuffled["low"] > 4
    assert paired_ratio_interval(num, den, scale=2.0)["low"] == pytest.approx(3.0)


def test_no_interval_without_paired_samples():
    seven = Timing(1.0, 0.0, 7, tuple([1.0] * 7))
    assert paired_ratio_interval(seven, Timing(1.0, 0.0, 1)) is None  # no samples recorded
    assert paired_ratio_interval(seven, Timing(1.0, 0.0, 6, tuple([1.0] * 6))) is None  # rounds do not pair
    five = Timing(1.0, 0.0, 5, tuple([1.0] * 5))
    assert paired_ratio_interval(five, five) is None  # 5 rounds cannot give 95%
