"""Profiles: ``quick`` (default, for ``make test``), ``full`` (larger samples, for the report and the audit)
and ``paper`` (the findings at their source's own scale; a check has no source scale and runs as in ``full``).

Selected by the pytest option ``--profile`` (registered in ``theory_checks/conftest.py``) or, outside pytest,
by the environment variable ``SPARSE_BENCH_PROFILE``.
"""

from __future__ import annotations

import os

PROFILES = ("quick", "full", "paper")
PROFILE_ENV = "SPARSE_BENCH_PROFILE"


def validate_profile(profile: str) -> str:
    """Return ``profile`` or raise ValueError naming the allowed values."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def current_profile() -> str:
    """The profile named by $SPARSE_BENCH_PROFILE, default "quick"."""
    return validate_profile(os.environ.get(PROFILE_ENV, "quick") or "quick")


def by_profile(profile: str, *, quick, full, paper=None):
    """Pick a size by profile: ``n = by_profile(profile, quick=2_000, full=20_000)``; ``paper`` defaults to
    ``full``."""
    profile = validate_profile(profile)
    if profile == "quick":
        return quick
    return paper if profile == "paper" and paper is not None else full
