"""pytest adapter of the paper checks (docs/THEORY.md §A): each check passes, each negative control fails."""

import pytest

import theory_checks.paper.approx  # noqa: F401  (these imports register the checks)
import theory_checks.paper.cost  # noqa: F401
import theory_checks.paper.dense  # noqa: F401
import theory_checks.paper.geometry  # noqa: F401
import theory_checks.paper.hashing  # noqa: F401
import theory_checks.paper.table1  # noqa: F401
from theory_checks.framework.pytest_support import (assert_check_passes, assert_control_fails, check_params,
                                                    control_params)
from theory_checks.paper.common import AREA


@pytest.mark.parametrize("name", check_params(AREA))
def test_check(name, check_profile):
    assert_check_passes(name, check_profile)


@pytest.mark.parametrize("name,control", control_params(AREA))
def test_control(name, control, check_profile):
    assert_control_fails(name, control, check_profile)
