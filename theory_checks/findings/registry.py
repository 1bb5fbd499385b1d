"""The registry of findings: ``register_finding`` declares one, ``run_finding`` / ``run_control`` measure it.

A finding function ``measure(seed, scale, training, **planted) -> list[Reading]`` measures a published claim
at ``scale`` (the design of one profile) under one way of training, and returns one ``Reading`` per measured
instance (e.g. per target): its components' per-seed values, paired across the models compared. The runner,
not the finding, turns those into intervals (``decision.seed_interval``) and a verdict (the decision
registered with the finding), and builds the ``FindingResult`` records.

Controls: ``{"holds": ..., "fails": ...}``, zero-argument callables returning the ``planted`` keyword
arguments of a setting in which the claim holds (or fails) by construction. They run at the quick scale
whatever the profile: a planted setting shows that the test can tell, which needs no source-sized models.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from sparse_bench.results.records import FindingResult, library_versions, to_jsonable
from sparse_bench.threads import pinned_threads
from theory_checks.framework.profiles import PROFILES, current_profile, validate_profile
from theory_checks.framework.registry import DEFAULT_SEED

from .decision import FAMILY_CONF, SCALES, Decision, combine, seed_interval

CONTROLS = ("holds", "fails")
CONTROL_PROFILE = "quick"  # controls run at this profile's scale
EXPECTED = {"holds": "reproduced", "fails": "not reproduced"}
THREADS = 1  # torch threads while a finding runs: reproducible bits, no fight over a shared machine's cores


@dataclass(frozen=True)
class Scale:
    """Where one profile measures a finding. fraction: our scale / the source's (1.0: the source's own);
    description: that scale in words, against the source's (e.g. "1/64 of the paper's FLOPs"); design: the
    finding's own (hashable) sizes; trainings: the ways of training the finding is measured under."""

    fraction: float
    description: str
    design: Any
    trainings: tuple = ("",)


@dataclass(frozen=True)
class Component:
    """One quantity a finding reads: its per-seed values (natural logs when scale is "log", reported
    exponentiated) and the source's value of it (None when the source gives none)."""

    label: str
    per_seed: tuple
    scale: str = "linear"
    source_value: float | None = None

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"component {self.label!r}: scale must be one of {SCALES}, got {self.scale!r}")


@dataclass(frozen=True)
class Reading:
    """One measured instance of a finding: components read on the same seeds, how they were paired (test),
    how the models were trained (training), the params that identify it, and details for the report."""

    params: dict
    components: list
    seeds: list
    test: str
    training: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredFinding:
    name: str
    func: Callable[..., list]
    source: str
    claim: str
    reading: str
    source_value: Any
    unit: str | None
    scales: dict  # profile -> Scale
    decision: Decision
    controls: dict  # "holds" / "fails" -> () -> dict of planted kwargs
    default_seed: int


FINDINGS: dict[str, RegisteredFinding] = {}


def register_finding(*, name: str, source: str, claim: str, reading: str, source_value, unit: str | None,
                     scale_by_profile: dict, decision: Decision, controls: dict,
                     default_seed: int = DEFAULT_SEED):
    """Decorator registering a finding under ``name``; the function is returned unchanged.

    claim: the claim as the source states it; reading: how it was made testable, and why; source_value: the
    source's number(s) for the measured quantity; scale_by_profile: a ``Scale`` for every profile; decision:
    the pre-registered rule (``decision.below/above/inside``); controls: exactly "holds" and "fails".
    """
    if sorted(controls) != sorted(CONTROLS):
        raise ValueError(f"finding {name!r}: controls must be exactly {CONTROLS}, got {sorted(controls)}")
    for which, make in controls.items():
        if not callable(make):
            raise TypeError(f"finding {name!r}: control {which!r} must be a callable returning kwargs")
    if sorted(scale_by_profile) != sorted(PROFILES):
        raise ValueError(f"finding {name!r}: scale_by_profile must name every profile {PROFILES}, "
                         f"got {sorted(scale_by_profile)}")
    for profile, scale in scale_by_profile.items():
        if not isinstance(scale, Scale):
            raise TypeError(f"finding {name!r}: the scale of {profile!r} must be a Scale")
    if not isinstance(decision, Decision):
        raise TypeError(f"finding {name!r}: decision must be a Decision (decision.below/above/inside)")

    def decorator(func):
        existing = FINDINGS.get(name)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"finding name {name!r} already registered by {existing.func.__module__}")
        FINDINGS[name] = RegisteredFinding(name, func, source, claim, reading, source_value, unit,
                                           dict(scale_by_profile), decision, dict(controls),
                                           int(default_seed))
        return func

    return decorator


def load_all_findings() -> dict[str, RegisteredFinding]:
    """Import every module of theory_checks.findings except tests and the framework's own modules."""
    import theory_checks.findings as package

    skip = ("test_", "registry", "decision")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith(skip):
            importlib.import_module(f"{package.__name__}.{info.name}")
    return FINDINGS


def get_finding(name: str) -> RegisteredFinding:
    """The registered finding ``name``; if absent, import every finding module first, then KeyError."""
    if name not in FINDINGS:
        load_all_findings()
    if name not in FINDINGS:
        raise KeyError(f"no finding named {name!r}; registered: {sorted(FINDINGS)}")
    return FINDINGS[name]


def _margin(decision: Decision, low: float, high: float) -> float:
    """How far the interval lies on the claim's side of the decision (negative: against it)."""
    if decision.kind == "below":
        return decision.high - high
    if decision.kind == "above":
        return low - decision.low
    return min(decision.high - high, low - decision.low)


def _on_scale(decision: Decision, scale: str) -> Decision:
    """The decision in the units the per-seed values are measured in (logs for a "log" component)."""
    if scale == "linear":
        return decision
    log = lambda v: v if math.isinf(v) else math.log(v)  # noqa: E731
    return Decision(decision.kind, log(decision.low), log(decision.high))


def _judge(decision: Decision, components: list) -> tuple[str, list, float]:
    """Intervals and verdicts of every component (Bonferroni over them), the conjunction's verdict, and the
    index of the binding component (the one whose interval lies least on the claim's side)."""
    conf = 1 - (1 - FAMILY_CONF) / len(components)
    judged = []
    for c in components:
        mean, low, high = seed_interval(c.per_seed, conf)
        measured_decision = _on_scale(decision, c.scale)
        verdict = measured_decision.verdict(low, high)
        margin = _margin(measured_decision, low, high)
        shown = (mean, low, high) if c.scale == "linear" else tuple(math.exp(v) for v in (mean, low, high))
        judged.append(dict(label=c.label, measured=shown[0], ci_low=shown[1], ci_high=shown[2], conf=conf,
                           scale=c.scale, verdict=verdict, margin=margin, source_value=c.source_value,
                           per_seed=list(c.per_seed)))
    binding = min(range(len(judged)), key=lambda i: judged[i]["margin"])
    return combine([j["verdict"] for j in judged]), judged, binding


def _record(entry: RegisteredFinding, reading: Reading, profile: str, scale: Scale, control: str | None,
            wall: float) -> FindingResult:
    if not reading.components:
        raise ValueError(f"finding {entry.name!r} returned a reading without components")
    verdict, judged, binding = _judge(entry.decision, reading.components)
    top = judged[binding]
    m = len(judged)
    level = (f"{FAMILY_CONF:.0%} two-sided" if m == 1 else
             f"{FAMILY_CONF:.0%} family level, Bonferroni over {m} components (each {top['conf']:.2%})")
    decision = entry.decision.describe()
    if m > 1:
        decision += ("; over the components: reproduced if all are, not reproduced if any is, "
                     "else inconclusive")
    return FindingResult(
        name=entry.name, source=entry.source, claim=entry.claim, reading=entry.reading,
        source_value=to_jsonable(entry.source_value), measured=top["measured"], ci_low=top["ci_low"],
        ci_high=top["ci_high"], unit=entry.unit,
        test=f"{reading.test}; Student t interval over {len(reading.seeds)} seeds, {level}",
        decision=decision, verdict=verdict, scale=scale.description, scale_fraction=float(scale.fraction),
        training=reading.training, seeds=[int(s) for s in reading.seeds], n=len(reading.seeds),
        profile=profile, wall_time_s=wall, params=to_jsonable(reading.params),
        details=to_jsonable({**reading.details, "components": judged, "binding_component": top["label"]}),
        versions=library_versions(), control=control)


def _measure(entry: RegisteredFinding, profile: str, seed: int | None, training: str | None, control,
             planted: dict) -> list[FindingResult]:
    seed = entry.default_seed if seed is None else int(seed)
    scale = entry.scales[profile]
    trainings = scale.trainings if training is None else (training,)
    records = []
    with pinned_threads(THREADS):
        for how in trainings:
            start = time.perf_counter()
            readings = entry.func(seed=seed, scale=scale, training=how, **planted)
            wall = time.perf_counter() - start
            records += [_record(entry, r, profile, scale, control, wall) for r in readings]
    return records


def run_finding(name: str, profile: str | None = None, seed: int | None = None,
                training: str | None = None) -> list[FindingResult]:
    """Measure finding ``name`` at ``profile``'s scale (default ``current_profile()``), under ``training``
    (default: every training of that scale). One record per reading per training."""
    profile = validate_profile(current_profile() if profile is None else profile)
    return _measure(get_finding(name), profile, seed, training, None, {})


def run_control(name: str, which: str, seed: int | None = None, training: str | None = None
                ) -> list[FindingResult]:
    """Measure finding ``name`` in its planted setting ``which`` ("holds" or "fails") at the quick scale;
    a sound finding reads "reproduced" / "not reproduced" (``EXPECTED[which]``) on every record."""
    entry = get_finding(name)
    if which not in entry.controls:
        raise KeyError(f"finding {name!r} has no control {which!r}; controls: {CONTROLS}")
    return _measure(entry, CONTROL_PROFILE, seed, training, which, entry.controls[which]())


def findings_catalogue() -> dict:
    """Every finding's declaration as JSON types: what a run can store so the report knows which exist."""
    return {name: {"source": f.source, "claim": f.claim, "reading": f.reading, "unit": f.unit,
                   "source_value": to_jsonable(f.source_value), "decision": f.decision.describe(),
                   "controls": list(CONTROLS),
                   "scales": {p: {"fraction": s.fraction, "description": s.description,
                                  "trainings": list(s.trainings)} for p, s in f.scales.items()}}
            for name, f in sorted(load_all_findings().items())}


__all__ = ["CONTROLS", "CONTROL_PROFILE", "EXPECTED", "FINDINGS", "Component", "Reading", "RegisteredFinding",
           "Scale", "findings_catalogue", "get_finding", "load_all_findings", "register_finding",
           "run_control", "run_finding"]
