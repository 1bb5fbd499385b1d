"""The conv/pool checks' closed forms and helpers against independent computations, and their determinism
(the checks themselves run in ``theory_checks/test_checks.py``)."""

import numpy as np
import torch
from scipy import stats

from theory_checks.convpool.boureau import optimal_max_pool_size, psi_avg, psi_max
from theory_checks.convpool.detection import avg_pool_error, max_pool_error
from theory_checks.convpool.order_stats import expected_max, p_argmax_planted
from theory_checks.convpool.patches import null_cosine_p_value
from theory_checks.convpool.shift import jaccard
from theory_checks.framework import run_check


def test_closed_forms_against_independent_values():
    # docs/THEORY.md §B
    assert abs(expected_max(64) - 2.3437) < 1e-4 and abs(expected_max(256) - 2.8269) < 1e-4
    assert abs(p_argmax_planted(8, 0.0) - 1 / 8) < 1e-10  # no signal: every position equally likely
    assert jaccard(2, (1, 0)) == 1 / 3 and jaccard(3, (1, 1)) == 4 / 14 and jaccard(4, (0, 3)) == 1 / 7
    t = np.linspace(-2.0, 6.0, 80_001)  # brute-force threshold search of the same error curve
    curve = 0.5 * (1 - stats.norm.cdf(t) ** 64) + 0.5 * stats.norm.cdf(t) ** 63 * stats.norm.cdf(t - 2)
    brute = curve.min()
    assert abs(max_pool_error(64, 2.0)[0] - brute) < 1e-6
    assert abs(avg_pool_error(64, 2.0, 4) - stats.norm.cdf(-0.5)) < 1e-12
    assert abs(psi_max(1, 0.1, 0.2) - psi_avg(1, 0.1, 0.2)) < 1e-14  # one location: max == average
    assert optimal_max_pool_size(0.1, 0.2) == 10


def test_null_cosine_p_value_matches_monte_carlo():
    directions = torch.randn(200_000, 25, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cosines = directions[:, 0] / directions.norm(dim=1)  # cosine with a fixed unit vector
    for c in (-0.2, 0.1, 0.3):
        assert abs(null_cosine_p_value(c, 25) - float((cosines >= c).double().mean())) < 0.005


def test_checks_are_deterministic():
    for name in ("boureau_separability", "im2col_identity"):
        first, second = run_check(name, seed=5), run_check(name, seed=5)
        assert first.measured == second.measured and first.details == second.details
