"""False-alarm audit: rerun a check over fresh seeds and measure its pass rate (target >= 99%).

``audit_check`` gives one check's record; ``sparse-bench audit`` (``suite.TheorySuite.audit``) runs it for
each check asked and stores the records. ``python -m theory_checks.audit ARGS`` is
``sparse-bench audit ARGS``.
Seeds are fresh relative to every check's default seed (the command line's default is 1..100). With controls,
each control is rerun on the same seeds and its catch rate (fraction of FAIL verdicts) recorded.
"""

from __future__ import annotations

import sys
import time

from theory_checks.framework import (
    get_check,
    library_versions,
    load_all_checks,
    run_check,
    run_control,
    wilson,
)

REQUIRED_PASS_RATE = 0.99


def _one_run(job: tuple) -> tuple[int, str, float]:
    """Worker: (name, control, seed, profile) -> (seed, verdict, wall seconds). A crash counts as a fail."""
    name, control, seed, profile = job
    try:
        result = run_control(name, control, seed=seed, profile=profile) if control else run_check(
            name, seed=seed, profile=profile)
    except Exception as error:  # noqa: BLE001 - a crashing check fails that seed; the message is kept
        return seed, f"error: {type(error).__name__}: {error}", 0.0
    return seed, result.verdict, result.wall_time_s


def _run_many(name, control, seeds, profile, pool) -> list[tuple[int, str, float]]:
    jobs = [(name, control, seed, profile) for seed in seeds]
    if pool is None:
        load_all_checks()
        return [_one_run(job) for job in jobs]
    return list(pool.map(_one_run, jobs))


def audit_check(name: str, seeds: list[int], profile: str, controls: bool = False, pool=None) -> dict:
    """Pass rate of check ``name`` over ``seeds`` (and, with controls, each control's catch rate)."""
    started = time.perf_counter()
    entry = get_check(name)
    runs = _run_many(name, None, seeds, profile, pool)
    passes = sum(verdict == "pass" for _, verdict, _ in runs)
    lo, hi = wilson(passes, len(seeds), 0.95)
    record = {
        "kind": "audit", "name": name, "area": entry.area, "profile": profile, "seeds": len(seeds),
        "first_seed": seeds[0], "passes": passes, "pass_rate": passes / len(seeds),
        "pass_rate_ci95": [lo, hi],
        "failed_seeds": [seed for seed, verdict, _ in runs if verdict != "pass"],
        "errors": sorted({verdict for _, verdict, _ in runs if verdict.startswith("error")})[:5],
        "required_pass_rate": REQUIRED_PASS_RATE,
        "meets_requirement": passes / len(seeds) >= REQUIRED_PASS_RATE,
        "median_check_s": sorted(w for _, _, w in runs)[len(runs) // 2],
    }
    if controls:
        rates = {}
        for control in sorted(entry.controls):
            verdicts = [v for _, v, _ in _run_many(name, control, seeds, profile, pool)]
            rates[control] = sum(v != "pass" for v in verdicts) / len(seeds)
        record["control_catch_rates"] = rates
    record["wall_time_s"] = time.perf_counter() - started
    record["versions"] = library_versions()
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m theory_checks.audit ARGS`` is ``sparse-bench audit ARGS``; returns its exit status."""
    from sparse_bench.cli import main as cli_main

    return cli_main(["audit", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
