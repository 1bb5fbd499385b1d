"""pytest adapter: parametrize the checks and their controls; run them; record them; assert the verdicts.

The only module of the framework that imports pytest. ``theory_checks/test_checks.py`` parametrizes
``test_check`` with ``check_params()`` and ``test_control`` with ``control_params()``: every check that
``load_all_checks`` finds, so a new check module needs no test file of its own. Test ids are ``area/name``
(and ``area/name-control``), so ``pytest -k routing`` or ``-k NAME`` selects; a check registered ``slow``
carries pytest's ``slow`` mark. Every record goes to the results store (``$SPARSE_BENCH_RESULTS``, else
``results/``) as a measurement of one run per pytest session.
"""

from __future__ import annotations

import pytest

from sparse_bench.results import results_dir
from sparse_bench.results.recorder import Recorder
from sparse_bench.results.records import FindingResult

from .registry import REGISTRY, catalogue, checks_in_area, load_all_checks, run_check, run_control
from .result import CheckResult

_SESSION: dict = {}  # results directory -> this process's run in its store, started by its first record


def _marks(entry) -> list:
    return [pytest.mark.slow] if entry.slow else []


def _entries(area: str | None) -> list:
    """The registered checks of ``area`` (None: all that ``load_all_checks`` finds), by area and name."""
    if area is None:
        load_all_checks()
        entries = sorted(REGISTRY.values(), key=lambda c: (c.area, c.name))
    else:
        entries = checks_in_area(area)
    if not entries:
        raise ValueError(f"no checks registered in area {area!r}: import the module that registers them")
    return entries


def check_params(area: str | None = None) -> list:
    """``pytest.param(name, id="area/name")`` for every registered check of ``area`` (None: of every area),
    slow ones marked slow."""
    return [pytest.param(e.name, id=f"{e.area}/{e.name}", marks=_marks(e)) for e in _entries(area)]


def control_params(area: str | None = None) -> list:
    """``pytest.param(name, control, id="area/name-control")`` for each control of each check of ``area``
    (None: of every area), slow ones marked slow."""
    return [
        pytest.param(e.name, control, id=f"{e.area}/{e.name}-{control}", marks=_marks(e))
        for e in _entries(area)
        for control in sorted(e.controls)
    ]


def _session_recorder(profile: str) -> Recorder:
    where = results_dir().resolve()
    if where not in _SESSION:
        _SESSION[where] = Recorder(where, profile=profile, extra={"catalogue": catalogue()})
    return _SESSION[where]


def record(result: CheckResult) -> CheckResult:
    """Store ``result`` as a measurement of this session's run and return it."""
    _session_recorder(result.profile).add("check", [result])
    return result


def record_finding(results: list[FindingResult]) -> list[FindingResult]:
    """Store finding records (kind "finding") as measurements of this session's run and return them."""
    results = list(results)
    if results:
        _session_recorder(results[0].profile).add("finding", results)
    return results


def finish_session() -> None:
    """Stamp the end of this session's run (``pytest_sessionfinish``); a no-op when nothing was recorded."""
    while _SESSION:
        _SESSION.popitem()[1].close()


def assert_check_passes(name: str, profile: str) -> CheckResult:
    """Run check ``name`` at its default seed, record it, fail the test with the full record if it fails."""
    result = record(run_check(name, profile=profile))
    if not result.passed:
        pytest.fail(f"check failed on the real implementation\n{result.summary()}", pytrace=False)
    return result


def assert_control_fails(name: str, control: str, profile: str) -> CheckResult:
    """Run ``name`` with the planted defect ``control``; a control that PASSES fails the test."""
    result = record(run_control(name, control, profile=profile))
    if result.passed:
        pytest.fail(
            f"negative control passed: the check cannot see the planted defect {control!r}\n"
            f"{result.summary()}",
            pytrace=False,
        )
    return result
