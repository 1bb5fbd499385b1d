"""pytest adapter for the routing checks (docs/THEORY.md §C): each check passes; each control fails."""

import pytest

import theory_checks.routing.balance  # noqa: F401  (registers checks)
import theory_checks.routing.topk  # noqa: F401  (registers checks)
from theory_checks.framework.pytest_support import (
    assert_check_passes,
    assert_control_fails,
    check_params,
    control_params,
)


@pytest.mark.parametrize("name", check_params("routing"))
def test_routing_check(name, check_profile):
    assert_check_passes(name, check_profile)


@pytest.mark.parametrize("name,control", control_params("routing"))
def test_routing_control(name, control, check_profile):
    assert_control_fails(name, control, check_profile)
