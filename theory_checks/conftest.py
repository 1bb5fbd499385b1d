"""pytest configuration of the theory checks: the ``--profile`` option, the ``check_profile`` fixture, and the
end of the session's run in the results store."""

import pytest

from theory_checks.framework.profiles import PROFILES, current_profile
from theory_checks.framework.pytest_support import finish_session


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


def pytest_sessionfinish(session, exitstatus):
    finish_session()
