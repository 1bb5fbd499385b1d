"""The theory checks as a ``sparse_bench.suites.Suite``: what ``sparse-bench run``, ``list`` and ``audit``
load through the entry point ``theory = "theory_checks.suite:SUITE"``."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Iterator

from .audit import audit_check
from .framework import PROFILES, catalogue, get_check, load_all_checks, make_result, run_check, run_control
from .framework.result import CheckResult


class TheorySuite:
    """Every check registered under ``theory_checks`` (``framework.load_all_checks``)."""

    profiles = PROFILES

    def catalogue(self) -> dict[str, dict]:
        return catalogue()

    def run(self, name: str, control: str | None = None, seed: int | None = None,
            profile: str = "quick") -> CheckResult:
        """One run; a check that raises gives a failing record whose ``test`` names the exception."""
        try:
            if control is None:
                return run_check(name, seed=seed, profile=profile)
            return run_control(name, control, seed=seed, profile=profile)
        except Exception as error:  # noqa: BLE001 - a crashing check is a failing check, recorded as such
            seed = get_check(name).default_seed if seed is None else seed
            record = make_result(name, passed=False, seed=seed, profile=profile, n=0,
                                 test=f"raised {type(error).__name__}: {error}")
            return replace(record, control=control)

    def audit(self, names: list[str], seeds: list[int], profile: str = "quick", controls: bool = False,
              jobs: int = 1) -> Iterator[dict]:
        """``audit.audit_check`` of each name in turn, on ``jobs`` spawned worker processes (a forked child of
        a process that already ran torch ops can deadlock in OpenMP)."""
        load_all_checks()
        pool = None
        if jobs > 1:
            pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
        try:
            for name in names:
                yield audit_check(name, seeds, profile, controls=controls, pool=pool)
        finally:
            if pool is not None:
                pool.shutdown()


SUITE = TheorySuite()
