"""pytest adapter of the findings: each planted setting must read as constructed; the real finding is measured
and recorded, its verdict never asserted ("not reproduced" is a result, not a failure)."""

import math

import pytest

from theory_checks.findings import CONTROLS, EXPECTED, load_all_findings, run_control, run_finding
from theory_checks.framework.pytest_support import record_finding

NAMES = sorted(load_all_findings())


def _summary(records) -> str:
    return "\n".join(f"  {r.params}: {r.verdict}, {r.measured:.4g} [{r.ci_low:.4g}, {r.ci_high:.4g}] "
                     f"({r.details['binding_component']})" for r in records)


@pytest.mark.parametrize("which", CONTROLS)
@pytest.mark.parametrize("name", NAMES)
def test_control(name, which):
    """The setting in which the claim holds (fails) by construction reads reproduced (not reproduced)."""
    records = record_finding(run_control(name, which))
    assert records, f"{name}: control {which!r} measured nothing"
    wrong = [r for r in records if r.verdict != EXPECTED[which]]
    if wrong:
        pytest.fail(f"{name}: planted setting {which!r} must read {EXPECTED[which]!r}\n{_summary(wrong)}",
                    pytrace=False)


@pytest.mark.parametrize("name", NAMES)
def test_finding(name, check_profile):
    """Measure the real finding at the profile's scale and record it; only its form is asserted."""
    records = record_finding(run_finding(name, profile=check_profile))
    assert records, f"{name}: measured nothing at profile {check_profile!r}"
    for r in records:
        assert r.control is None and r.profile == check_profile and r.seeds and r.n == len(r.seeds)
        assert math.isfinite(r.measured) and r.ci_low <= r.measured <= r.ci_high, _summary([r])
        assert r.source_value and r.details.get("figure"), f"{name}: no source value or figure beside ours"


def test_catalogue_declares_every_finding():
    """What a run stores so the report knows the findings: each with its claim, decision and every scale."""
    from theory_checks.findings import findings_catalogue
    from theory_checks.framework.profiles import PROFILES

    catalogue = findings_catalogue()
    assert sorted(catalogue) == NAMES
    for entry in catalogue.values():
        assert entry["claim"] and entry["decision"] and sorted(entry["scales"]) == sorted(PROFILES)
