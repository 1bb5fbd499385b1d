"""CheckResult: the record one run of a statistical check produces, and ``make_result`` that builds it.

A record keeps the spec of the run (name, source, prediction, params, seed, profile, control) apart from what
was measured (predicted, measured, CI, test, p-value, margin, verdict, n, wall time, details). Records are
JSON-serialisable with ``to_dict`` / ``from_dict``; numpy and torch values are converted on the way in.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any

ALPHA = 1e-3  # default false-alarm level of one check (Holm-corrected inside a check's family of tests)
VERDICTS = ("pass", "fail")
_FLOAT_FIELDS = ("predicted", "measured", "ci_low", "ci_high", "p_value")


@dataclass(frozen=True)
class RunSpec:
    """What was run (no measurement): used to group replicates of the same check across seeds or runs."""

    name: str
    control: str | None
    profile: str
    seed: int
    params: str  # canonical JSON of the params dict, so the spec is hashable


@dataclass(frozen=True)
class CheckResult:
    """One run of one check. Floats may be None where a check has no such figure (e.g. an exact identity)."""

    name: str
    source: str
    prediction: str
    predicted: float | None
    measured: float | None
    ci_low: float | None
    ci_high: float | None
    test: str
    p_value: float | None
    margin: str | None
    alpha: float
    verdict: str
    n: int
    seed: int
    profile: str
    wall_time_s: float
    params: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    control: str | None = None  # name of the planted defect this run used; None for the real implementation

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def spec(self) -> RunSpec:
        import json

        params = json.dumps(self.params, sort_keys=True)
        return RunSpec(self.name, self.control, self.profile, self.seed, params)

    def to_dict(self) -> dict:
        """A plain dict of JSON types (non-finite floats become the strings 'nan', 'inf', '-inf')."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "CheckResult":
        """Inverse of ``to_dict``; unknown keys raise ValueError (a record from another schema)."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"CheckResult.from_dict: unknown keys {sorted(unknown)}")
        values = dict(data)
        for key in _FLOAT_FIELDS:
            if isinstance(values.get(key), str):
                values[key] = float(values[key])
        return cls(**values)

    def summary(self) -> str:
        """One paragraph for assertion messages: the relation tested, the numbers, the verdict."""
        ci = f"[{_fmt(self.ci_low)}, {_fmt(self.ci_high)}]"
        return (
            f"{self.name}{f' (control {self.control})' if self.control else ''}: {self.verdict.upper()}\n"
            f"  prediction: {self.prediction}\n"
            f"  predicted={_fmt(self.predicted)} measured={_fmt(self.measured)} CI={ci}\n"
            f"  test: {self.test}; p={_fmt(self.p_value)}; alpha={self.alpha}\n  margin: {self.margin}\n"
            f"  n={self.n} seed={self.seed} profile={self.profile} params={self.params}"
        )


def _fmt(x: float | None) -> str:
    return "None" if x is None else f"{x:.6g}"


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy/torch scalars and arrays, tuples and non-finite floats to JSON types."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy/torch arrays and scalars
        return to_jsonable(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serialisable: {value!r}")


@lru_cache(maxsize=1)
def library_versions() -> dict:
    """Versions of python, torch, numpy, scipy and sparse_bench (imported lazily, computed once)."""
    import numpy
    import scipy
    import torch

    import sparse_bench

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "sparse_bench": getattr(sparse_bench, "__version__", "unknown"),
    }


def _opt_float(x) -> float | None:
    return None if x is None else float(x)


def make_result(
    name: str,
    *,
    passed: bool,
    seed: int,
    profile: str,
    n: int,
    test: str,
    predicted: float | None = None,
    measured: float | None = None,
    ci: tuple[float, float] | None = None,
    p_value: float | None = None,
    margin: str | None = None,
    alpha: float = ALPHA,
    params: dict | None = None,
    details: dict | None = None,
    started: float | None = None,
    source: str | None = None,
    prediction: str | None = None,
) -> CheckResult:
    """Build a CheckResult; ``source`` and ``prediction`` default to what ``register_check`` declared for
    ``name``.

    passed: the check's verdict (True -> "pass"). started: ``time.perf_counter()`` at the start of the check
    (``run_check`` overwrites wall_time_s with its own measurement anyway).
    """
    if source is None or prediction is None:
        from .registry import REGISTRY

        entry = REGISTRY.get(name)
        if entry is None:
            raise ValueError(f"make_result: check {name!r} is not registered; pass source= and prediction=")
        source = entry.source if source is None else source
        prediction = entry.prediction if prediction is None else prediction
    lo, hi = (None, None) if ci is None else ci
    return CheckResult(
        name=name,
        source=source,
        prediction=prediction,
        predicted=_opt_float(predicted),
        measured=_opt_float(measured),
        ci_low=_opt_float(lo),
        ci_high=_opt_float(hi),
        test=test,
        p_value=_opt_float(p_value),
        margin=margin,
        alpha=float(alpha),
        verdict="pass" if passed else "fail",
        n=int(n),
        seed=int(seed),
        profile=profile,
        wall_time_s=0.0 if started is None else time.perf_counter() - started,
        params=to_jsonable(params or {}),
        details=to_jsonable(details or {}),
        versions=library_versions(),
    )
