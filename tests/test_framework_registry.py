"""Registry, run_check/run_control, profiles and the pytest adapter of the check framework."""

import dataclasses

import pytest

from theory_checks.framework import (
    ALPHA,
    REGISTRY,
    binomial_test,
    by_profile,
    current_profile,
    make_result,
    register_check,
    run_check,
    run_control,
)
from sparse_bench.results import CheckResult, read_records
from theory_checks.framework import pytest_support


@pytest.fixture
def registry(monkeypatch, tmp_path):
    """Remove this test's unit_* checks afterwards (checks that modules registered meanwhile stay, since their
    modules are imported only once); send results to a temporary directory."""
    monkeypatch.setenv("SPARSE_BENCH_RESULTS", str(tmp_path))
    yield REGISTRY
    for name in [n for n in REGISTRY if n.startswith("unit_")]:
        del REGISTRY[name]


def _register_coin(area="unit_area"):
    @register_check(
        name="unit_coin", source="unit", prediction="P[heads] = 1/2", area=area,
        controls={"loaded": lambda: {"heads_prob": 0.9}, "undetectable": lambda: {"heads_prob": 0.5}},
        default_seed=7,
    )
    def check_unit_coin(seed, profile="quick", heads_prob=0.5):
        import numpy as np

        n = by_profile(profile, quick=400, full=4000)
        heads = int((np.random.default_rng(seed).random(n) < heads_prob).sum())
        p = binomial_test(heads, n, 0.5)
        return make_result("unit_coin", passed=p > ALPHA, seed=seed, profile=profile, n=n, test="binomial",
                           predicted=0.5, measured=heads / n, p_value=p, params={"heads_prob": heads_prob})

    return check_unit_coin


def test_run_check_and_control(registry):
    _register_coin()
    res = run_check("unit_coin", profile="quick")
    assert res.seed == 7 and res.n == 400 and res.profile == "quick" and res.control is None
    assert res.source == "unit" and res.prediction == "P[heads] = 1/2" and res.wall_time_s > 0
    assert res.versions["scipy"] and res.passed
    bad = run_control("unit_coin", "loaded", seed=3, profile="full")
    assert bad.control == "loaded" and bad.n == 4000 and bad.seed == 3 and not bad.passed


def test_same_seed_same_record(registry):
    _register_coin()
    a, b = run_check("unit_coin", seed=5), run_check("unit_coin", seed=5)
    assert a.measured == b.measured and a.p_value == b.p_value and a.spec() == b.spec()


def test_registry_errors(registry):
    _register_coin()
    with pytest.raises(KeyError, match="no check named"):
        run_check("no_such_check")
    with pytest.raises(KeyError, match="no control"):
        run_control("unit_coin", "nope")
    with pytest.raises(ValueError, match="controls"):
        register_check(name="x", source="s", prediction="p", area="a", controls={})
    with pytest.raises(ValueError, match="already registered"):
        @register_check(name="unit_coin", source="s", prediction="p", area="a", controls={"c": dict})
        def other(seed, profile="quick"):
            pass
    with pytest.raises(ValueError, match="profile"):
        run_check("unit_coin", profile="medium")


def test_profile_env(monkeypatch):
    monkeypatch.setenv("SPARSE_BENCH_PROFILE", "full")
    assert current_profile() == "full"
    monkeypatch.setenv("SPARSE_BENCH_PROFILE", "huge")
    with pytest.raises(ValueError, match="profile"):
        current_profile()
    monkeypatch.delenv("SPARSE_BENCH_PROFILE")
    assert current_profile() == "quick"


def test_adapter_params_and_verdict_asserts(registry, tmp_path):
    _register_coin()
    ids = [p.id for p in pytest_support.check_params("unit_area")]
    assert ids == ["unit_area/unit_coin"]
    control_ids = [p.id for p in pytest_support.control_params("unit_area")]
    assert control_ids == ["unit_area/unit_coin-loaded", "unit_area/unit_coin-undetectable"]
    assert "unit_area/unit_coin" in [p.id for p in pytest_support.check_params()]  # None: every area
    pytest_support.assert_check_passes("unit_coin", "quick")
    pytest_support.assert_control_fails("unit_coin", "loaded", "quick")
    with pytest.raises(pytest.fail.Exception, match="negative control passed"):
        pytest_support.assert_control_fails("unit_coin", "undetectable", "quick")
    recorded = [CheckResult.from_dict(r) for r in read_records(tmp_path, "check")]
    assert [(r.name, r.control, r.verdict) for r in recorded] == [
        ("unit_coin", None, "pass"), ("unit_coin", "loaded", "fail"), ("unit_coin", "undetectable", "pass")
    ]
    with pytest.raises(ValueError, match="no checks registered"):
        pytest_support.check_params("empty_area")


def test_adapter_marks_slow_checks(registry):
    @register_check(name="unit_sweep", source="unit", prediction="p", area="unit_slow", controls={"c": dict},
                    slow=True)
    def check_unit_sweep(seed, profile="quick"):
        return make_result("unit_sweep", passed=True, seed=seed, profile=profile, n=1, test="t")

    for param in pytest_support.check_params("unit_slow") + pytest_support.control_params("unit_slow"):
        assert [mark.name for mark in param.marks] == ["slow"]


def test_adapter_fails_a_failing_check(registry):
    @register_check(name="unit_wrong", source="unit", prediction="1 == 2", area="unit_area",
                    controls={"same": dict})
    def check_unit_wrong(seed, profile="quick"):
        return make_result("unit_wrong", passed=False, seed=seed, profile=profile, n=1, test="identity")

    with pytest.raises(pytest.fail.Exception, match="check failed on the real implementation"):
        pytest_support.assert_check_passes("unit_wrong", "quick")


def test_check_must_return_its_own_record(registry):
    @register_check(name="unit_misnamed", source="unit", prediction="p", area="unit_area",
                    controls={"c": dict})
    def check_unit_misnamed(seed, profile="quick"):
        real = make_result("unit_misnamed", passed=True, seed=seed, profile=profile, n=1, test="t")
        return dataclasses.replace(real, name="other")

    with pytest.raises(ValueError, match="returned a record named 'other'"):
        run_check("unit_misnamed")


def test_check_runs_with_pinned_threads_and_restores_them(registry):
    import torch

    seen = []

    @register_check(name="unit_threads", source="unit", prediction="p", area="unit_area", controls={"c": dict})
    def check_unit_threads(seed, profile="quick"):
        seen.append(torch.get_num_threads())
        return make_result("unit_threads", passed=True, seed=seed, profile=profile, n=1, test="t")

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_check("unit_threads")
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_replicate_seeds_of_different_check_seeds_are_disjoint():
    """An audit over consecutive seeds must get fresh replicates at every seed: seed + r shared all but
    one."""
    from theory_checks.framework import replicate_seed

    seen = {replicate_seed(seed, r) for seed in range(1, 101) for r in range(12)}
    assert len(seen) == 100 * 12
    with pytest.raises(ValueError, match="replicate must be in"):
        replicate_seed(1, -1)
