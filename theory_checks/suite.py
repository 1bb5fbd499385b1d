"""The theory checks and findings as a ``sparse_bench.suites.Suite``: what ``sparse-bench run``, ``list`` and
``audit`` load through the entry point ``theory = "theory_checks.suite:SUITE"``."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Iterator

from sparse_bench.results.records import FindingResult, library_versions, to_jsonable

from . import findings as registered_findings
from .audit import audit_check
from .framework import PROFILES, catalogue, get_check, load_all_checks, make_result, run_check, run_control
from .framework.result import CheckResult


class TheorySuite:
    """Every check registered under ``theory_checks`` (``framework.load_all_checks``) and every finding under
    ``theory_checks.findings`` (``findings.load_all_findings``)."""

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

    def findings(self) -> dict[str, dict]:
        """``findings.findings_catalogue()``, each entry with the verdict each planted setting must read."""
        return {name: {**entry, "expected": dict(registered_findings.EXPECTED)}
                for name, entry in registered_findings.findings_catalogue().items()}

    def run_finding(self, name: str, control: str | None = None, profile: str = "quick"
                    ) -> list[FindingResult]:
        """The records of finding ``name`` at ``profile``'s scale, or of its planted setting ``control`` (at
        the quick scale, as the registry runs controls); one that raises gives one "inconclusive" record whose
        ``test`` names the exception (details: {"raised": ...})."""
        try:
            if control is None:
                return registered_findings.run_finding(name, profile=profile)
            return registered_findings.run_control(name, control)
        except Exception as error:  # noqa: BLE001 - a crashing finding measured nothing: recorded as such
            return [_crashed_finding(name, control, profile, error)]


def _crashed_finding(name: str, control: str | None, profile: str, error: Exception) -> FindingResult:
    entry = registered_findings.get_finding(name)
    profile = profile if control is None else registered_findings.CONTROL_PROFILE
    scale = entry.scales.get(profile)
    raised = f"{type(error).__name__}: {error}"
    return FindingResult(
        name=name, source=entry.source, claim=entry.claim, reading=entry.reading,
        source_value=to_jsonable(entry.source_value), measured=None,
        ci_low=None, ci_high=None, unit=entry.unit, test=f"raised {raised}",
        decision=entry.decision.describe(),
        verdict="inconclusive", scale="" if scale is None else scale.description,
        scale_fraction=float("nan") if scale is None else float(scale.fraction), training="", seeds=[], n=0,
        profile=profile, wall_time_s=0.0, details={"raised": raised}, versions=library_versions(),
        control=control)


SUITE = TheorySuite()
