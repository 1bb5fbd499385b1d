"""The registry of checks: ``register_check`` declares one, ``run_check`` / ``run_control`` run it by name.

A check is a plain function ``check_<name>(seed, profile="quick", **impl_kwargs) -> CheckResult``. Its
controls are zero-argument callables returning the ``impl_kwargs`` overrides that plant a defect; a control
run must FAIL.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import time
from dataclasses import dataclass
from typing import Callable

from sparse_bench.threads import pinned_threads

from .profiles import current_profile, validate_profile
from .result import CheckResult

DEFAULT_SEED = 20221128  # the paper's arXiv date; every check's default seed unless it names its own
REPLICATES_PER_SEED = 2**16  # replicate seeds of one check seed are seed * this + r: disjoint across seeds


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed of replicate ``replicate`` (0 <= replicate < REPLICATES_PER_SEED) of a check run at ``seed``.

    Distinct (seed, replicate) pairs give distinct seeds, so the replicates of seeds s and s + 1 share nothing
    (``seed + replicate`` made seed s + 1 reuse all but one of seed s's replicates, and an audit over 100
    consecutive seeds measured about 107 distinct replicates instead of 100 x the replicates per run).
    """
    if not 0 <= replicate < REPLICATES_PER_SEED:
        raise ValueError(f"replicate must be in [0, {REPLICATES_PER_SEED}), got {replicate}")
    return seed * REPLICATES_PER_SEED + replicate


@dataclass(frozen=True)
class RegisteredCheck:
    """A check function and what it declares: where the claim comes from, what it predicts, its controls."""

    name: str
    func: Callable[..., CheckResult]
    source: str
    prediction: str
    area: str
    controls: dict  # control name -> () -> dict of impl kwargs overrides
    default_seed: int
    slow: bool  # run only in the slow tier of pytest (still run by the audit)
    threads: int | None  # torch threads pinned while the check runs (None: leave as is)
    unit: str | None = None  # unit of the predicted and measured values (None: unitless)


REGISTRY: dict[str, RegisteredCheck] = {}


def register_check(
    *,
    name: str,
    source: str,
    prediction: str,
    area: str,
    controls: dict[str, Callable[[], dict]],
    default_seed: int = DEFAULT_SEED,
    slow: bool = False,
    threads: int | None = 1,
    unit: str | None = None,
):
    """Decorator registering a check under ``name``; the function itself is returned unchanged.

    threads: torch intra-op threads pinned (and restored) while the check runs; 1 by default, so records
    are bitwise reproducible across machines and checks do not fight over the cores of a shared machine.
    unit: what the predicted and measured values are measured in (shown beside them in the report).

    Raises ValueError for a duplicate name or a check without negative controls.
    """
    if not controls:
        raise ValueError(f"check {name!r}: controls must name at least one planted defect")
    for cname, make in controls.items():
        if not callable(make):
            raise TypeError(f"check {name!r}: control {cname!r} must be a callable returning kwargs")

    def decorator(func):
        existing = REGISTRY.get(name)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"check name {name!r} already registered by {existing.func.__module__}")
        REGISTRY[name] = RegisteredCheck(
            name, func, source, prediction, area, dict(controls), int(default_seed), bool(slow), threads, unit
        )
        return func

    return decorator


def get_check(name: str) -> RegisteredCheck:
    """The registered check ``name``; if absent, import every check module first, then KeyError naming all."""
    if name not in REGISTRY:
        load_all_checks()
    if name not in REGISTRY:
        raise KeyError(f"no check named {name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


def _timed_call(entry: RegisteredCheck, seed, profile, control, kwargs) -> CheckResult:
    seed = entry.default_seed if seed is None else int(seed)
    profile = validate_profile(current_profile() if profile is None else profile)
    with pinned_threads(entry.threads):
        start = time.perf_counter()
        result = entry.func(seed=seed, profile=profile, **kwargs)
        wall = time.perf_counter() - start
    if not isinstance(result, CheckResult):
        raise TypeError(f"check {entry.name!r} returned {type(result).__name__}, not CheckResult")
    if result.name != entry.name:
        raise ValueError(f"check registered as {entry.name!r} returned a record named {result.name!r}")
    return dataclasses.replace(result, wall_time_s=wall, control=control)


def run_check(name: str, seed: int | None = None, profile: str | None = None, **kwargs) -> CheckResult:
    """Run check ``name`` (seed defaults to its default_seed, profile to ``current_profile()``)."""
    return _timed_call(get_check(name), seed, profile, None, kwargs)


def run_control(name: str, control: str, seed: int | None = None, profile: str | None = None) -> CheckResult:
    """Run check ``name`` with the defect planted by ``control``; a sound check returns verdict "fail"."""
    entry = get_check(name)
    if control not in entry.controls:
        raise KeyError(f"check {name!r} has no control {control!r}; controls: {sorted(entry.controls)}")
    return _timed_call(entry, seed, profile, control, entry.controls[control]())


NOT_CHECKS = ("test_", "conftest", "audit", "suite", "framework", "findings")  # name prefixes of no check


def _import_check_modules(path, prefix: str) -> None:
    """Import every module below ``path`` (a package's ``__path__``), walking into subpackages, except those
    whose name starts with one of ``NOT_CHECKS`` (a skipped package is not entered)."""
    for info in pkgutil.iter_modules(path):
        if info.name.startswith(NOT_CHECKS):
            continue
        module = importlib.import_module(prefix + info.name)
        if info.ispkg:
            _import_check_modules(module.__path__, module.__name__ + ".")


def load_all_checks() -> dict[str, RegisteredCheck]:
    """Import every check module of the theory_checks package and its subpackages (``routing/``, ``paper/``,
    ...); tests, conftest, the audit, the suite, the framework and the findings are left out."""
    import theory_checks

    _import_check_modules(theory_checks.__path__, "theory_checks.")
    return REGISTRY


def checks_in_area(area: str) -> list[RegisteredCheck]:
    """Registered checks of one area, sorted by name."""
    return sorted((c for c in REGISTRY.values() if c.area == area), key=lambda c: c.name)


def catalogue() -> dict:
    """Every check's declaration as JSON types (name -> area, source, prediction, unit, controls): what a run
    stores so that the report knows which checks exist without importing them."""
    return {name: {"area": c.area, "source": c.source, "prediction": c.prediction, "unit": c.unit,
                   "controls": sorted(c.controls), "slow": c.slow}
            for name, c in sorted(load_all_checks().items())}
