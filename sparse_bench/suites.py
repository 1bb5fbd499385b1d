"""Check suites: the plug-in point through which packages give ``sparse-bench run``, ``list`` and ``audit``
their checks. The library ships none; the project's theory checks register one.

A package declares its suite as an entry point of the group ``sparse_bench.suites``::

    [project.entry-points."sparse_bench.suites"]
    theory = "theory_checks.suite:SUITE"

and the object named there implements ``Suite``. ``load_suites`` imports every suite installed.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Iterator, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .results.records import CheckResult

ENTRY_POINT_GROUP = "sparse_bench.suites"


class SuiteError(ValueError):
    """A suite cannot be used: its entry point fails to import, it lacks the protocol, or two suites claim
    one check name. The message names the suite."""


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
    """

    profiles: tuple[str, ...]

    def catalogue(self) -> dict[str, dict]: ...

    def run(self, name: str, control: str | None = None, seed: int | None = None,
            profile: str = "quick") -> CheckResult: ...

    def audit(self, names: list[str], seeds: list[int], profile: str = "quick", controls: bool = False,
              jobs: int = 1) -> Iterator[dict]: ...


def load_suites() -> dict[str, Suite]:
    """Every installed suite by entry-point name (empty when none is installed); SuiteError for one that
    fails to load or lacks ``catalogue``, ``run`` or ``audit``."""
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
        suites[point.name] = suite
    return suites


def check_index(suites: dict[str, Suite]) -> dict[str, tuple[str, dict]]:
    """Every check of every suite: name -> (suite name, catalogue entry), sorted by name; SuiteError when two
    suites declare the same check name."""
    index: dict[str, tuple[str, dict]] = {}
    for suite_name, suite in suites.items():
        for name, entry in suite.catalogue().items():
            if name in index:
                raise SuiteError(f"check {name!r} is declared by suites {index[name][0]!r} and "
                                 f"{suite_name!r}")
            index[name] = (suite_name, entry)
    return dict(sorted(index.items()))
