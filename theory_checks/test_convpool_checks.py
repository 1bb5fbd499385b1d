"""pytest adapter for the conv/pool checks (THEORY.md §B): every check passes, every negative control fails."""

import pytest

import theory_checks.convpool_checks_boureau  # noqa: F401  (each import registers its checks)
import theory_checks.convpool_checks_cnn_dsm  # noqa: F401
import theory_checks.convpool_checks_detection  # noqa: F401
import theory_checks.convpool_checks_identities  # noqa: F401
import theory_checks.convpool_checks_order_stats  # noqa: F401
import theory_checks.convpool_checks_patches  # noqa: F401
import theory_checks.convpool_checks_pooling  # noqa: F401
import theory_checks.convpool_checks_shift  # noqa: F401
from theory_checks.framework.pytest_support import (
    assert_check_passes,
    assert_control_fails,
    check_params,
    control_params,
)


@pytest.mark.parametrize("name", check_params("convpool"))
def test_check(name, check_profile):
    assert_check_passes(name, check_profile)


@pytest.mark.parametrize("name,control", control_params("convpool"))
def test_control(name, control, check_profile):
    assert_control_fails(name, control, check_profile)
