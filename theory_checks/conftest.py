"""pytest configuration of the theory checks: the ``--profile`` option and the ``check_profile`` fixture."""

import pytest

from theory_checks.framework.profiles import PROFILES, current_profile


def pytest_addoption(parser):
    parser.addoption(
        "--profile",
        action="store",
        default=None,
        choices=PROFILES,
        help="theory-check profile: quick (default; make test) or full (larger samples). "
        "Default: $SPARSE_BENCH_PROFILE or quick.",
    )


@pytest.fixture(scope="session")
def check_profile(request) -> str:
    """The profile the checks run under: --profile, else $SPARSE_BENCH_PROFILE, else "quick"."""
    return request.config.getoption("--profile") or current_profile()
