"""False-alarm audit: rerun checks over fresh seeds and report each check's pass rate (target >= 99%).

    python -m theory_checks.audit --seeds 100 --check NAME|all [--area AREA] [--profile quick|full]
                                  [--results DIR] [--first-seed 1] [--controls] [--jobs 1]

Seeds are first_seed, first_seed + 1, ... (default 1..100), fresh relative to every check's default seed.
With --controls each control is rerun on the same seeds and its catch rate (fraction of FAIL verdicts)
reported. One record per check goes to the results store of DIR (default results/) as soon as that check
is done, all of them measurements of one run; the exit status is 0 when every audited check passes on >= 99% of seeds, else 1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from sparse_bench.results.recorder import Recorder
from theory_checks.framework import (
    PROFILES,
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


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m theory_checks.audit",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="number of fresh seeds (default 100)")
    parser.add_argument("--check", default="all", metavar="NAME|all", help="a check name, or all (default)")
    parser.add_argument("--area", default=None, help="with --check all: only the checks of this area")
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument("--results", default=None,
                        help="results directory (default $SPARSE_BENCH_RESULTS, else results)")
    parser.add_argument("--first-seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--controls", action="store_true", help="also report each control's catch rate")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    registry = load_all_checks()
    if args.check == "all":
        names = sorted(n for n, e in registry.items() if args.area in (None, e.area))
        if not names:
            print(f"no checks in area {args.area!r}", file=sys.stderr)
            return 2
    elif args.check in registry:
        names = [args.check]
    else:
        print(f"unknown check {args.check!r}; registered: {', '.join(sorted(registry))}", file=sys.stderr)
        return 2
    recorder = Recorder(args.results, profile=args.profile, seed=args.first_seed)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    pool = None
    if args.jobs > 1:  # spawn: a forked child of a process that already ran torch ops can deadlock in OpenMP
        pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"))
    all_ok = True
    try:
        for name in names:
            record = audit_check(name, seeds, args.profile, controls=args.controls, pool=pool)
            recorder.add("audit", [record])
            all_ok &= record["meets_requirement"]
            lo, hi = record["pass_rate_ci95"]
            line = (f"{name}: pass rate {record['passes']}/{record['seeds']} = "
                    f"{100 * record['pass_rate']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%), "
                    f"{record['wall_time_s']:.1f} s")
            if record["failed_seeds"]:
                line += f"; failed seeds {record['failed_seeds'][:10]}"
            if args.controls:
                line += "; controls caught " + ", ".join(
                    f"{c} {100 * r:.0f}%" for c, r in record["control_catch_rates"].items())
            print(line, flush=True)
    finally:
        if pool is not None:
            pool.shutdown()
        recorder.close()
    print(f"audit records stored in {recorder.path}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
