"""The statistical check framework of sparse-bench.

A check is an experiment with a stated prediction, a derived tolerance, an explicit seed, and at least one
negative control (a planted defect on which the same check must FAIL). How an area adds one::

    # theory_checks/myarea/coin.py  (a subpackage per area, with an __init__.py; load_all_checks()
    #                                imports every module of it except test_*.py)
    import torch
    from theory_checks.framework import (
        ALPHA, binomial_test, by_profile, clopper_pearson, make_result, register_check)

    def _fair(gen, n):                      # the implementation under test (normally from sparse_bench)
        return torch.randint(0, 2, (n,), generator=gen)

    def _biased(gen, n):                    # planted defect: heads with probability 0.6
        return (torch.rand(n, generator=gen) < 0.6).long()

    @register_check(
        name="coin_is_fair", source="myarea §X", area="myarea",
        prediction="P[heads] = 1/2",
        controls={"biased_coin": lambda: {"flip": _biased}},   # kwargs overrides that plant the defect
    )
    def check_coin_is_fair(seed: int, profile: str = "quick", flip=_fair):
        n = by_profile(profile, quick=2_000, full=50_000)
        heads = int(flip(torch.Generator().manual_seed(seed), n).sum())
        p = binomial_test(heads, n, 0.5)
        return make_result("coin_is_fair", passed=p > ALPHA, seed=seed, profile=profile, n=n,
                           test="exact binomial, two-sided", predicted=0.5, measured=heads / n,
                           ci=clopper_pearson(heads, n), p_value=p)

No test file is needed: ``theory_checks/test_checks.py`` parametrizes every check ``load_all_checks`` finds
(``pytest -k myarea/coin_is_fair``), and its controls (``-k coin_is_fair-biased_coin``).

Run one by name: ``run_check("coin_is_fair", seed=1, profile="full")``, ``run_control("coin_is_fair",
"biased_coin")``. False-alarm audit: ``python -m theory_checks.audit --seeds 100 --check coin_is_fair``.
Figures: put ``figure_spec(title, x_label, y_label, series("measured", x, y, lo, hi),
series("predicted", x, y_pred, style="predicted"))`` in ``details["figure"]``; the report draws it.
A check that tests its prediction in several cells, one p-value each, ends with
``result_from_cells(name, cells, seed=seed, profile=profile, n=n, test=...)``: the verdict is Holm's over the
cells, the headline is one cell's prediction, measurement and interval, the cells go into the details.
Rules: tolerances come from a CI at level 1 - ALPHA or a stated bound (say which in ``margin``), families of
tests are Holm-corrected (``holm``), seeds go into ``torch.Generator`` objects passed explicitly.
"""

from .cells import result_from_cells
from .figures import figure_spec, series
from .profiles import PROFILE_ENV, PROFILES, by_profile, current_profile, validate_profile
from .registry import (
    DEFAULT_SEED,
    REGISTRY,
    RegisteredCheck,
    catalogue,
    checks_in_area,
    get_check,
    load_all_checks,
    register_check,
    replicate_seed,
    run_check,
    run_control,
)
from .result import ALPHA, CheckResult, RunSpec, library_versions, make_result, to_jsonable
from .stats import (
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

__all__ = [
    "figure_spec",
    "series",
    "ALPHA",
    "CheckResult",
    "DEFAULT_SEED",
    "PROFILES",
    "PROFILE_ENV",
    "REGISTRY",
    "RegisteredCheck",
    "RunSpec",
    "binomial_test",
    "bootstrap_ci",
    "by_profile",
    "catalogue",
    "checks_in_area",
    "chisquare_gof",
    "clopper_pearson",
    "current_profile",
    "get_check",
    "holm",
    "holm_adjusted",
    "ks_test",
    "library_versions",
    "load_all_checks",
    "loglog_slope",
    "make_result",
    "one_sample_t",
    "pool_sparse_cells",
    "register_check",
    "replicate_seed",
    "result_from_cells",
    "run_check",
    "run_control",
    "sign_test_less",
    "to_jsonable",
    "validate_profile",
    "wilson",
]
