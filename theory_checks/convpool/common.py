"""Shared pieces of the conv/pool checks (docs/THEORY.md §B): rounding bounds, seeded draws, pool maps.

Nothing here registers a check. Pooling maps take (trials, 1, H, W) and return (trials,) or pooled tensors,
and are what the checks put under test: by default the library's RoutingPlan path, in controls a defect.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from sparse_bench.blocks import avgpool_plan, maxpool_plan, pool_from_plan

SOURCE = "conv/pool §B"
AREA = "convpool"


def gamma(terms: int, dtype: torch.dtype) -> float:
    """Higham's gamma_m = m u / (1 - m u): |fl(sum of m products) - exact| <= gamma_m * sum |products|,
    for any summation order (u = unit roundoff of dtype). Two implementations differ by at most twice that."""
    u = torch.finfo(dtype).eps / 2
    if terms * u >= 1:
        raise ValueError(f"gamma undefined for {terms} terms in {dtype}")
    return terms * u / (1 - terms * u)


def run_hypothesis_draws(seed: int, examples: int, strategy, body) -> int:
    """Call ``body(drawn)`` on ``examples`` values drawn by hypothesis from ``strategy``, reproducibly from
    ``seed`` (generate phase only: no database, no shrinking; the body records, it never raises).
    Returns the number of calls made."""
    calls = []

    @hypothesis_seed(seed)
    @settings(max_examples=examples, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(drawn):
        calls.append(1)
        body(drawn)

    run()
    return len(calls)


def global_max(x: torch.Tensor) -> torch.Tensor:
    """Global max pooling through the library's RoutingPlan. x: (T, 1, H, W) -> (T,)."""
    return pool_from_plan(x, maxpool_plan(x, (x.shape[2], x.shape[3]))).reshape(-1)


def global_avg(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling through the library's RoutingPlan. x: (T, 1, H, W) -> (T,)."""
    return pool_from_plan(x, avgpool_plan(x, (x.shape[2], x.shape[3]))).reshape(-1)


def global_argmax(x: torch.Tensor) -> torch.Tensor:
    """The position (flat index within the H*W plane) that global max pooling routes each trial to: (T,)."""
    plan = maxpool_plan(x, (x.shape[2], x.shape[3]))
    return plan.token_index % (x.shape[2] * x.shape[3])


def crop_last_row(pool):
    """A planted defect: the pooling window misses the image's last row (an off-by-one window)."""
    return lambda x: pool(x[:, :, :-1, :])
