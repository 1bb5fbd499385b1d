"""``make_result``: how a check builds its record (``sparse_bench.results.CheckResult``) from its figures.

The record type, its JSON conversion and the library versions live in the library (``sparse_bench.results``),
so the store and the report read records without importing the checks.
"""

from __future__ import annotations

from sparse_bench.results.records import VERDICTS, CheckResult, RunSpec, library_versions, to_jsonable

__all__ = ["ALPHA", "VERDICTS", "CheckResult", "RunSpec", "library_versions", "make_result", "to_jsonable"]

ALPHA = 1e-3  # default false-alarm level of one check (Holm-corrected inside a check's family of tests)


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
    source: str | None = None,
    prediction: str | None = None,
    unit: str | None = None,
) -> CheckResult:
    """Build a CheckResult; ``source`` and ``prediction`` default to what ``register_check`` declared for
    ``name``.

    passed: the check's verdict (True -> "pass"). wall_time_s is left 0: ``run_check`` times every run.
    """
    if source is None or prediction is None or unit is None:
        from .registry import REGISTRY

        entry = REGISTRY.get(name)
        if entry is None and (source is None or prediction is None):
            raise ValueError(f"make_result: check {name!r} is not registered; pass source= and prediction=")
        if entry is not None:
            source = entry.source if source is None else source
            prediction = entry.prediction if prediction is None else prediction
            unit = entry.unit if unit is None else unit
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
        wall_time_s=0.0,
        params=to_jsonable(params or {}),
        details=to_jsonable(details or {}),
        versions=library_versions(),
        unit=unit,
    )
