"""The pytest adapter of every check: each passes at its default seed; each negative control fails.

Parametrized over every check ``framework.load_all_checks`` finds in the subpackages (routing/, paper/,
convpool/, distributed/, ...), so a new check module needs no test file. Ids are ``area/name`` and
``area/name-control``: ``pytest theory_checks -k routing`` runs one area, ``-k NAME`` one check.
"""

import pytest

from theory_checks.framework.pytest_support import (
    assert_check_passes,
    assert_control_fails,
    check_params,
    control_params,
)


@pytest.mark.parametrize("name", check_params())
def test_check(name, check_profile):
    assert_check_passes(name, check_profile)


@pytest.mark.parametrize("name,control", control_params())
def test_control(name, control, check_profile):
    assert_control_fails(name, control, check_profile)
