"""The findings framework: intervals over seeds, decisions, conjunctions, and what registration refuses."""

import math

import pytest

from sparse_bench.results.records import FindingResult
from theory_checks.findings import (Component, Reading, Scale, above, below, combine, inside,
                                    register_finding, seed_interval)
from theory_checks.findings import registry
from theory_checks.framework.profiles import PROFILES


@pytest.mark.parametrize("decision, interval, verdict", [
    (below(1.0), (0.5, 0.9), "reproduced"),
    (below(1.0), (1.1, 1.3), "not reproduced"),
    (below(1.0), (0.9, 1.1), "inconclusive"),
    (above(0.0), (0.1, 0.2), "reproduced"),
    (above(0.0), (-0.2, -0.1), "not reproduced"),
    (inside(0.9, 1.1), (0.95, 1.05), "reproduced"),
    (inside(0.9, 1.1), (1.2, 1.4), "not reproduced"),
    (inside(0.9, 1.1), (0.5, 0.8), "not reproduced"),
    (inside(0.9, 1.1), (1.05, 1.2), "inconclusive"),
    (inside(0.9, 1.1), (0.5, 1.5), "inconclusive"),
    (below(1.0), (math.nan, 0.5), "inconclusive"),
])
def test_decisions(decision, interval, verdict):
    assert decision.verdict(*interval) == verdict


def test_combine_and_bad_band():
    assert combine(["reproduced", "reproduced"]) == "reproduced"
    assert combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert combine(["inconclusive", "not reproduced", "reproduced"]) == "not reproduced"
    with pytest.raises(ValueError, match="low"):
        inside(1.1, 0.9)


def test_seed_interval_is_student_t():
    mean, low, high = seed_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.95)
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t_{0.975, 4} * sd / sqrt(n)
    assert mean == 3.0 and math.isclose(high - mean, half) and math.isclose(mean - low, half)
    assert seed_interval([2.0, 2.0, 2.0], 0.95) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="2 seeds"):
        seed_interval([1.0], 0.95)
    with pytest.raises(ValueError, match="finite"):
        seed_interval([1.0, math.inf], 0.95)


def _scales():
    return {p: Scale(1.0, f"{p}: the source's scale", design=None) for p in PROFILES}


def _controls():
    return {"holds": lambda: {"shift": -1.0}, "fails": lambda: {"shift": 1.0}}


def test_register_refuses_incomplete_declarations():
    common = dict(source="s", claim="c", reading="r", source_value=0.5, unit=None, decision=below(0.0))
    with pytest.raises(ValueError, match="controls"):
        register_finding(name="x", scale_by_profile=_scales(), controls={"holds": lambda: {}}, **common)
    with pytest.raises(ValueError, match="every profile"):
        register_finding(name="x", scale_by_profile={"quick": _scales()["quick"]}, controls=_controls(),
                         **common)
    with pytest.raises(TypeError, match="decision"):
        register_finding(name="x", scale_by_profile=_scales(), controls=_controls(),
                         **{**common, "decision": 0.0})


def test_runner_builds_records_and_bonferroni(monkeypatch):
    """A toy finding: its per-seed values are shift + small noise; two components make a conjunction whose
    intervals are Bonferroni-widened, the binding component is the one least on the claim's side."""
    monkeypatch.setattr(registry, "FINDINGS", {})

    @register_finding(name="toy", source="src", claim="value below 0", reading="mean below 0",
                      source_value={"a": -1.0}, unit="u", scale_by_profile=_scales(), decision=below(0.0),
                      controls=_controls())
    def toy(seed, scale, training, shift=-1.0):
        noise = (0.1, -0.1, 0.05, -0.05, 0.0)
        return [Reading(params={"k": 1}, seeds=list(range(5)), test="toy", training="none",
                        components=[Component("a", tuple(shift + e for e in noise)),
                                    Component("b", tuple(shift / 2 + e for e in noise))])]

    (real,) = registry.run_finding("toy", profile="quick")
    assert isinstance(real, FindingResult) and real.verdict == "reproduced" and real.control is None
    assert real.details["binding_component"] == "b" and real.measured == pytest.approx(-0.5)
    one = seed_interval([-0.5 + e for e in (0.1, -0.1, 0.05, -0.05, 0.0)], 1 - 0.05 / 2)
    assert (real.ci_low, real.ci_high) == pytest.approx(one[1:])
    assert "Bonferroni over 2" in real.test and real.n == 5 and real.scale_fraction == 1.0
    (fails,) = registry.run_control("toy", "fails")
    assert fails.verdict == "not reproduced" and fails.control == "fails" and fails.profile == "quick"
    (holds,) = registry.run_control("toy", "holds")
    assert holds.verdict == "reproduced"
