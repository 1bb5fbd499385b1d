"""Check suites: the plug-in point through which packages give ``sparse-bench run``, ``list`` and ``audit``
their checks. The library ships none; the project's theory checks register one.

A package declares its suite as an entry point of the group ``sparse_bench.suites``::

    [project.entry-points."sparse_bench.suites"]
    theory = "theory_checks.suite:SUITE"

and the object named there implements ``Suite``, optionally with findings (published claims re-measured, each
with two planted settings). ``load_suites`` imports every suite installed.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Iterator, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .results.records import CheckResult

ENTRY_POINT_GROUP = "sparse_bench.suites"


class SuiteError(ValueError):
    """A suite cannot be used: its entry point fails to import, it lacks the protocol, or two suites claim
    one check or finding name. The message names the suite."""


@runtime_checkable
class Suite(Protocol):
    """What the command line needs of a collection of checks.

    profiles: the profile names its checks take (at least "quick" and "full").
    catalogue(): every check by name -> {area, source, prediction, unit, controls (names), slow}, JSON types.
    run(name, control, seed, profile): one run of check ``name`` (with the defect ``control`` planted, or the
    real implementation for None) at ``seed`` (None: the check's own default); a check that raises is
    returned as a failing record naming the exception, never raised.
    audit(names, seeds, profile, controls, jobs): for each name in order, as it finishes, one audit record
    (a dict with at least name, passes, seeds, pass_rate, pass_rate_ci95, meets_requirement, and
    control_catch_rates when ``controls``), running the checks on ``jobs`` worker processes.

    Optional (a suite without findings lacks both; ``load_suites`` refuses one that has only one of them):
    findings(): every finding by name -> {source, claim, unit, scales {profile: {fraction, description}},
    controls (names), expected {control: the verdict its planted setting must read}, ...}, JSON types.
    run_finding(name, control, profile): the records of one measurement of finding ``name`` at ``profile``'s
    scale (``control``: in that planted setting, at the scale the suite chooses for it); one that raises is
    returned as one "inconclusive" record whose ``test`` names the exception and whose details hold it under
    "raised", never raised.
    """

    profiles: tuple[str, ...]

    def catalogue(self) -> dict[str, dict]: ...

    def run(self, name: str, control: str | None = None, seed: int | None = None,
            profile: str = "quick") -> CheckResult: ...

    def audit(self, names: list[str], seeds: list[int], profile: str = "quick", controls: bool = False,
              jobs: int = 1) -> Iterator[dict]: ...


FINDING_METHODS = ("findings", "run_finding")  # the optional part of the protocol: both or neither


def has_findings(suite: Suite) -> bool:
    return all(callable(getattr(suite, method, None)) for method in FINDING_METHODS)


def load_suites() -> dict[str, Suite]:
    """Every installed suite by entry-point name (empty when none is installed); SuiteError for one that
    fails to load, lacks ``catalogue``, ``run`` or ``audit``, or has only one of ``findings`` and
    ``run_finding``."""
    suites = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            suite = point.load()
        except Exception as error:  # an installed but broken plug-in is named, not a traceback
            raise SuiteError(f"suite {point.name!r} ({point.value}) failed to load: "
                             f"{type(error).__name__}: {error}") from None
        if not isinstance(suite, Suite):
            raise SuiteError(f"suite {point.name!r} ({point.value}) lacks profiles, catalogue(), run() or "
                             f"audit()")
        if not has_findings(suite) and any(hasattr(suite, method) for method in FINDING_METHODS):
            raise SuiteError(f"suite {point.name!r} ({point.value}) has only one of findings() and "
                             f"run_finding()")
        suites[point.name] = suite
    return suites


def _index(declared: dict[str, dict], kind: str) -> dict[str, tuple[str, dict]]:
    """name -> (suite name, entry) over ``declared`` (suite name -> its entries by name), sorted by name;
    SuiteError when two suites declare one name."""
    index: dict[str, tuple[str, dict]] = {}
    for suite_name, entries in declared.items():
        for name, entry in entries.items():
            if name in index:
                raise SuiteError(f"{kind} {name!r} is declared by suites {index[name][0]!r} and "
                                 f"{suite_name!r}")
            index[name] = (suite_name, entry)
    return dict(sorted(index.items()))


def check_index(suites: dict[str, Suite]) -> dict[str, tuple[str, dict]]:
    """Every check of every suite: name -> (suite name, catalogue entry), sorted by name; SuiteError when two
    suites declare the same check name."""
    return _index({name: suite.catalogue() for name, suite in suites.items()}, "check")


def finding_index(suites: dict[str, Suite]) -> dict[str, tuple[str, dict]]:
    """Every finding of the suites that have findings: name -> (suite name, findings() entry), sorted by
    name; SuiteError when two suites declare the same finding name."""
    declared = {name: suite.findings() for name, suite in suites.items() if has_findings(suite)}
    return _index(declared, "finding")
