"""``sparse-bench`` command line: run checks and benchmarks, build the report, audit, list.

Every user error (unknown check, missing or corrupt results, unwritable output) prints one line to stderr and
exits 2; a failing check makes ``run`` exit 1 and name it. Results are appended atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from sparse_bench.bench.allocator import add_allocator_argument, use_allocator
from sparse_bench.bench.device import DTYPES, add_device_arguments, is_cpu_float32, resolve_device

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """An error to report as one line, without a traceback."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparse-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run theory checks and speed benchmarks, append records to the results dir"
    )
    run.add_argument("--profile", choices=("quick", "full"), default="quick")
    run.add_argument("--only", choices=("checks", "bench", "all"), default="all")
    run.add_argument("--results", default="results", help="results directory (default: results)")
    run.add_argument(
        "--seed", type=int, default=None, help="one seed for every check (default: each check's own)"
    )
    run.add_argument(
        "--check", action="append", default=None, metavar="NAME", help="run only this check (repeatable)"
    )
    run.add_argument("--no-controls", action="store_true", help="skip the negative controls")
    add_allocator_argument(run)

    report = sub.add_parser("report", help="build reports/index.html from results files only")
    report.add_argument("--results", default="results")
    report.add_argument("--out", default="reports")

    audit = sub.add_parser(
        "audit", help="false-alarm audit: rerun checks over fresh seeds, report pass rates"
    )
    audit.add_argument("--seeds", type=int, default=100)
    audit.add_argument("--check", default="all", metavar="NAME|all")
    audit.add_argument("--profile", choices=("quick", "full"), default="quick")
    audit.add_argument("--results", default="results")

    sub.add_parser("list", help="the checks and benchmarks, with the prediction each tests")

    bench = sub.add_parser("bench", help="the MoE ratio table (R, shape, overhead, peers, memory)")
    bench.add_argument("--quick", action="store_true")
    bench.add_argument("--results", default="results")
    add_allocator_argument(bench)
    add_device_arguments(bench)
    return parser


def _writable_dir(path: str) -> Path:
    root = Path(path)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create directory {root}: {error.strerror}") from None
    if not os.access(root, os.W_OK):
        raise UserError(f"directory {root} is not writable")
    return root


def _results_dir(path: str) -> Path:
    """``_writable_dir(path)``, after checking that its results store (if any) opens: a corrupt or foreign
    one is reported before any work is done."""
    from sparse_bench.results import StoreError, open_store

    root = _writable_dir(path)
    try:
        open_store(root).close()
    except StoreError as error:
        raise UserError(f"{error}; move it aside before running") from None
    return root


def _selected_checks(names: list[str] | None) -> list[str]:
    from theory_checks.framework import load_all_checks

    registry = load_all_checks()
    if not names:
        return sorted(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UserError(f"unknown check(s): {', '.join(unknown)} (see `sparse-bench list`)")
    return names


def _failed_record(name: str, seed: int | None, profile: str, error: Exception, control: str | None):
    from theory_checks.framework import get_check, make_result

    record = make_result(
        name,
        passed=False,
        seed=seed if seed is not None else get_check(name).default_seed,
        profile=profile,
        n=0,
        test=f"raised {type(error).__name__}: {error}",
    )
    return record if control is None else replace(record, control=control)


def run_checks(
    names: list[str], profile: str, seed: int | None, recorder, controls: bool
) -> tuple[list, list]:
    """Run checks (and their controls), storing each record as soon as it exists. Returns (failed, uncaught)."""
    from tqdm import tqdm

    from theory_checks.framework import get_check, run_check, run_control

    jobs = [(name, None) for name in names]
    if controls:
        jobs += [(name, control) for name in names for control in sorted(get_check(name).controls)]
    failed, uncaught = [], []
    for name, control in tqdm(jobs, desc=f"checks ({profile})", unit="run", disable=None):
        try:
            record = (
                run_control(name, control, seed=seed, profile=profile)
                if control
                else run_check(name, seed=seed, profile=profile)
            )
        except Exception as error:  # a crashing check is a failing check, recorded as such
            record = _failed_record(name, seed, profile, error, control)
        recorder.add("check", [record])
        if control is None and record.verdict == "fail":
            failed.append(record)
        if control is not None and record.verdict == "pass":
            uncaught.append(record)
    return failed, uncaught


def run_bench(profile: str, recorder, allocator: str, device: str = "cpu",
              dtype: str = "float32") -> None:
    """The ratio table and (CPU float32 only, their targets' setting) the component ratios, under
    ``allocator`` (applied here, after any checks ran); device and dtype: of the ratio table's experts and
    activations."""
    try:
        from sparse_bench.bench import run_ratio_table
        from sparse_bench.bench.components import record_components
    except ImportError as error:
        raise UserError(f"the speed benchmarks are not available in this version ({error})") from None
    try:
        where = resolve_device(device)
    except ValueError as error:
        raise UserError(str(error)) from None
    use_allocator(allocator)
    run_ratio_table(profile=profile, results_dir=recorder, device=where, dtype=DTYPES[dtype])
    if is_cpu_float32(where, dtype):
        record_components(recorder, min_run_time=0.1 if profile == "quick" else 0.3)
    else:
        print("component ratios (routers, DSM, conv and pooling): measured for CPU float32 only, skipped")


def cmd_run(args) -> int:
    from sparse_bench.results.recorder import Recorder
    from theory_checks.framework import catalogue

    names = _selected_checks(args.check) if args.only in ("checks", "all") else []
    results = _results_dir(args.results)
    started = time.perf_counter()
    recorder = Recorder(results, profile=args.profile, seed=args.seed, extra={"catalogue": catalogue()})
    recorder.start()
    failed, uncaught = [], []
    try:
        if names:
            failed, uncaught = run_checks(names, args.profile, args.seed, recorder, controls=not args.no_controls)
        if args.only in ("bench", "all"):
            run_bench(args.profile, recorder, args.allocator)
    finally:
        recorder.close()
    elapsed = time.perf_counter() - started
    print(
        f"\nsparse-bench run ({args.profile}): {len(names)} checks, {len(names) - len(failed)} passed, "
        f"{len(failed)} failed; {len(uncaught)} negative control(s) not caught; {elapsed:.0f} s; results in {results}/"
    )
    for record in failed:
        print(
            f"  FAIL {record.name}: {record.test} (measured {record.measured}, predicted {record.predicted})"
        )
    for record in uncaught:
        print(f"  CONTROL NOT CAUGHT {record.name} / {record.control}: the check passed on a planted defect")
    return EXIT_CHECK_FAILED if failed or uncaught else EXIT_OK


def cmd_report(args) -> int:
    from sparse_bench.report.build import build_report
    from sparse_bench.report.inputs import ReportInputError

    out = _writable_dir(args.out)
    try:
        path = build_report(args.results, out)
    except ReportInputError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"cannot write the report to {out}: {error.strerror or error}") from None
    print(f"report written to {path}")
    return EXIT_OK


def cmd_audit(args) -> int:
    if args.check != "all":
        _selected_checks([args.check])
    _results_dir(args.results)
    try:
        from theory_checks import audit
    except ImportError as error:
        raise UserError(f"the audit is not available in this version ({error})") from None
    argv = [
        "--seeds",
        str(args.seeds),
        "--check",
        args.check,
        "--profile",
        args.profile,
        "--results",
        args.results,
    ]
    return audit.main(argv)


def cmd_list(args) -> int:
    from theory_checks.framework import load_all_checks

    registry = load_all_checks()
    print(f"{len(registry)} theory checks (name [area, source]: prediction; controls):")
    for name in sorted(registry):
        entry = registry[name]
        print(
            f"  {name} [{entry.area}, {entry.source}]: {entry.prediction}; controls: {', '.join(sorted(entry.controls))}"
        )
    print(
        "benchmarks: `sparse-bench bench` (MoE ratio table), asv suite in benchmarks/ (`asv run -E existing`)"
    )
    return EXIT_OK


def cmd_bench(args) -> int:
    from sparse_bench.results.recorder import Recorder

    results = _results_dir(args.results)
    profile = "quick" if args.quick else "full"
    with Recorder(results, profile=profile) as recorder:
        run_bench(profile, recorder, args.allocator, args.device, args.dtype)
    return EXIT_OK


COMMANDS = {"run": cmd_run, "report": cmd_report, "audit": cmd_audit, "list": cmd_list, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"sparse-bench {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
