"""Records: what one run of a check produces (``CheckResult``), and the JSON conversion every record goes through.

A record keeps the spec of the run (name, source, prediction, params, seed, profile, control) apart from what
was measured (predicted, measured, CI, test, p-value, margin, verdict, n, wall time, details). The checks that
produce them live outside the library; the store and the report only need this shape.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any

VERDICTS = ("pass", "fail")
FINDING_VERDICTS = ("reproduced", "not reproduced", "inconclusive")
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
    """One run of one check. Floats may be None where a check has no such figure (e.g. an exact identity).

    unit: the unit of ``predicted``/``measured`` (e.g. "probability", "MSE", "slope"); None when unitless.
    """

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
    unit: str | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def spec(self) -> RunSpec:
        params = json.dumps(self.params, sort_keys=True)
        return RunSpec(self.name, self.control, self.profile, self.seed, params)

    def to_dict(self) -> dict:
        """A plain dict of JSON types (non-finite floats become the strings 'nan', 'inf', '-inf')."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "CheckResult":
        """Inverse of ``to_dict``; unknown keys raise ValueError (a record from another schema)."""
        return _from_dict(cls, data, _FLOAT_FIELDS)

    def summary(self) -> str:
        """One paragraph for assertion messages: the relation tested, the numbers, the verdict."""
        ci = f"[{_fmt(self.ci_low)}, {_fmt(self.ci_high)}]"
        unit = f" ({self.unit})" if self.unit else ""
        return (
            f"{self.name}{f' (control {self.control})' if self.control else ''}: {self.verdict.upper()}\n"
            f"  prediction: {self.prediction}\n"
            f"  predicted={_fmt(self.predicted)} measured={_fmt(self.measured)} CI={ci}{unit}\n"
            f"  test: {self.test}; p={_fmt(self.p_value)}; alpha={self.alpha}\n  margin: {self.margin}\n"
            f"  n={self.n} seed={self.seed} profile={self.profile} params={self.params}"
        )


@dataclass(frozen=True)
class FindingResult:
    """One re-measurement of a published claim: a verdict in FINDING_VERDICTS, never pass/fail.

    claim: the claim as its source states it (quoted); reading: how a vague claim was made testable, and why.
    source_value: the source's number(s) for the measured quantity (a float, or a dict of labelled floats);
    measured, ci_low, ci_high: ours, with the interval the decision reads. decision: the pre-registered rule
    mapping the interval to the verdict. scale: where it was measured against the source's own scale (text),
    scale_fraction: our scale / the source's (1.0 = the source's scale). training: how the models were trained.
    control: None for the real measurement; "holds" / "fails" for the planted settings in which the claim holds
    or fails by construction (which must read "reproduced" / "not reproduced").
    """

    name: str
    source: str
    claim: str
    reading: str
    source_value: Any
    measured: float | None
    ci_low: float | None
    ci_high: float | None
    unit: str | None
    test: str
    decision: str
    verdict: str
    scale: str
    scale_fraction: float
    training: str
    seeds: list
    n: int
    profile: str
    wall_time_s: float
    params: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    control: str | None = None

    def __post_init__(self):
        if self.verdict not in FINDING_VERDICTS:
            raise ValueError(f"verdict must be one of {FINDING_VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict:
        """A plain dict of JSON types (non-finite floats become the strings 'nan', 'inf', '-inf')."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "FindingResult":
        """Inverse of ``to_dict``; unknown keys raise ValueError (a record from another schema)."""
        return _from_dict(cls, data, ("measured", "ci_low", "ci_high"))


def _from_dict(cls, data: dict, float_fields: tuple[str, ...]):
    """``cls(**data)`` after turning the strings 'nan'/'inf'/'-inf' of ``float_fields`` back into floats;
    ValueError naming unknown keys."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__}.from_dict: unknown keys {sorted(unknown)}")
    values = dict(data)
    for key in float_fields:
        if isinstance(values.get(key), str):
            values[key] = float(values[key])
    return cls(**values)


def interval_verdict(low: float, high: float, threshold: float, claim_holds_below: bool = True) -> str:
    """The finding verdict an interval gives against ``threshold``: "reproduced" when the whole interval is on
    the claim's side (below the threshold when ``claim_holds_below``), "not reproduced" when it is wholly on
    the other side, "inconclusive" when it straddles the threshold. NaN bounds give "inconclusive"."""
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        return "inconclusive"
    below, above = high < threshold, low > threshold
    if not (below or above):
        return "inconclusive"
    return "reproduced" if below == claim_holds_below else "not reproduced"


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


def encode(record: Any) -> str:
    """Canonical JSON text of one record (a CheckResult, FindingResult or dict of JSON types); TypeError
    otherwise."""
    data = record.to_dict() if isinstance(record, (CheckResult, FindingResult)) else to_jsonable(record)
    if not isinstance(data, dict):
        raise TypeError(f"a record must be a dict or CheckResult, got {type(record).__name__}")
    return json.dumps(data, sort_keys=True, allow_nan=False)


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
