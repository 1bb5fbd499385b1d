"""``sparse-bench run``: the checks of every installed suite (with their controls), its findings (with their
planted settings), then the benchmarks, as one run in the results store; optionally the report after it,
whatever the outcome."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from .bench import resolve_where, run_bench
from .checks import NO_SUITE, Checks, run_checks, run_findings
from .options import (
    BENCH_PROFILES,
    EXIT_FAILED,
    EXIT_OK,
    Output,
    UserError,
    allocator_option,
    collected_warnings,
    command_line,
    device_option,
    dtype_option,
    given,
    json_option,
    profile_option,
    report_warnings,
    results_option,
    seed_option,
    summarise_warnings,
    usable_store,
)
from .results import write_report

BENCH_OPTIONS = ("allocator", "device", "dtype")
MAX_DEFAULT_JOBS = 4  # a paper-scale finding holds up to ~3 GB: four fit a 24 GiB machine beside the rest
CHECK_OPTIONS = ("check", "finding", "no_controls", "jobs")


def default_jobs() -> int:
    """Worker processes for the findings: the CPUs this process may use, at most MAX_DEFAULT_JOBS."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(usable, MAX_DEFAULT_JOBS))


@click.command(short_help="Run the checks, findings and benchmarks as one stored run.")
@profile_option("quick", checks=True)
@click.option("--only", type=click.Choice(("checks", "findings", "bench", "all")), default="all",
              show_default=True,
              help="checks: the suites' checks and findings; findings: the findings alone; bench: the "
                   "benchmarks; all: everything")
@click.option("--check", "check", multiple=True, metavar="NAME",
              help="run only this check (repeatable; with no --finding, no findings run)")
@click.option("--finding", "finding", multiple=True, metavar="NAME",
              help="run only this finding, at the profile's scale (repeatable; with no --check, no checks "
                   "run)")
@click.option("--no-controls", is_flag=True,
              help="skip the negative controls (planted defects) and the findings' planted settings")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="run the checks and findings in this many worker processes, each on one thread (default: "
                   "the CPUs this process may use, at most 4; 1: in this process)")
@seed_option("one seed for every check and the benchmarks (default: each check's own; 0 for the benchmarks); "
             "findings keep their own seeds")
@allocator_option
@device_option
@dtype_option
@results_option
@click.option("--report-dir", type=click.Path(path_type=Path), default=None,
              help="then build the report in this directory, even when a check failed (exit status: the "
                   "run's)")
@json_option
def run(profile: str, only: str, check: tuple[str, ...], finding: tuple[str, ...], no_controls: bool,
        jobs: int | None, seed: int | None, allocator: str, device: str, dtype: str, results: Path,
        report_dir: Path | None, as_json: bool) -> int:
    """Run the checks, the findings and the speed benchmarks, storing every record as one run; exit 1 naming
    any failing check, uncaught control, finding planted setting that did not read as planted, or finding
    that raised. A finding's own verdict (reproduced or not) never changes the exit status."""
    from ..bench.allocator import use_allocator
    from ..results.recorder import Recorder

    ctx = click.get_current_context()
    if only == "bench" and given(ctx, *CHECK_OPTIONS):
        raise UserError(f"{', '.join(given(ctx, *CHECK_OPTIONS))}: --only bench runs no checks")
    if only == "findings" and check:
        raise UserError("--check: --only findings runs no checks")
    if only in ("checks", "findings") and given(ctx, *BENCH_OPTIONS):
        raise UserError(f"{', '.join(given(ctx, *BENCH_OPTIONS))}: --only {only} runs no benchmarks")
    out = Output(as_json)
    checks = Checks.load()
    names, finding_names = [], []
    if only != "bench":
        if checks.suites or only != "all" or check or finding:
            if only != "findings" and (check or not finding):
                names = checks.select(check)
            if finding or not check:
                finding_names = checks.select_findings(finding)
            if only == "findings" and not finding_names:
                raise UserError("--only findings: no installed suite declares findings")
        else:
            out.say(f"{NO_SUITE}: running the benchmarks only")
    checks.check_profile(profile, names, finding_names)
    where = torch_dt = None
    bench = only in ("bench", "all")
    if bench and profile not in BENCH_PROFILES:
        if only == "bench" or given(ctx, *BENCH_OPTIONS):
            raise UserError(f"--profile {profile!r}: the benchmarks take {', '.join(BENCH_PROFILES)} "
                            f"(give --only checks)")
        bench = False  # a profile of the findings' source scale: the benchmarks have none
        out.say(f"--profile {profile}: checks and findings only (the benchmarks take "
                f"{', '.join(BENCH_PROFILES)})")
    if bench:
        where, torch_dt = resolve_where(device, dtype)
    usable_store(results)
    started = time.perf_counter()
    jobs = default_jobs() if jobs is None else jobs
    extra = {"catalogue": checks.catalogue()}
    if checks.findings:
        extra["findings"] = checks.findings_catalogue()
    recorder = Recorder(results, command=command_line(), profile=profile, seed=seed, extra=extra)
    recorder.start()
    records, failed, uncaught, bench_records = [], [], [], []
    findings, findings_uncaught, findings_raised = [], [], []
    with collected_warnings() as caught:
        try:
            if names:
                records, failed, uncaught = run_checks(checks, names, profile, seed, recorder,
                                                       controls=not no_controls, out=out, jobs=jobs)
            if finding_names:
                findings, findings_uncaught, findings_raised = run_findings(
                    checks, finding_names, profile, recorder, controls=not no_controls, out=out, jobs=jobs)
            if bench:
                use_allocator(allocator)  # after the checks, which run on glibc's default
                bench_seed = 0 if seed is None else seed
                bench_records = run_bench(profile, recorder, where, torch_dt, bench_seed, out)
        finally:
            recorder.close()
    elapsed = time.perf_counter() - started
    summary = summarise_warnings(caught)
    out.say(f"\nsparse-bench run ({profile}): {len(names)} checks, {len(names) - len(failed)} passed, "
            f"{len(failed)} failed; {len(uncaught)} negative control(s) not caught; {len(bench_records)} "
            f"benchmark records; {elapsed:.0f} s; run {recorder.run_id} in {recorder.path}")
    if finding_names:
        verdicts = [record.verdict for record in findings if record.control is None]
        counts = ", ".join(f"{verdicts.count(v)} {v}"
                           for v in ("reproduced", "not reproduced", "inconclusive"))
        out.say(f"findings ({profile}): {len(finding_names)} findings, {len(verdicts)} records: {counts}; "
                f"{len(findings_uncaught)} planted setting record(s) not as planted")
    for record in failed:
        out.say(f"  FAIL {record.name}: {record.test} (measured {record.measured}, predicted "
                f"{record.predicted})")
    for record in uncaught:
        out.say(f"  CONTROL NOT CAUGHT {record.name} / {record.control}: the check passed on a planted "
                f"defect")
    for record in findings_uncaught:
        planted = checks.findings[record.name][1]["expected"][record.control]
        out.say(f"  FINDING CONTROL NOT AS PLANTED {record.name} / {record.control} {record.params}: read "
                f"{record.verdict}, planted to read {planted}")
    for record in findings_raised:
        out.say(f"  FINDING RAISED {record.name}: {record.test}")
    report_warnings(out, summary)
    status = EXIT_FAILED if failed or uncaught or findings_uncaught or findings_raised else EXIT_OK
    report = None
    if report_dir is not None:
        report = write_report(results, report_dir)
        out.say(f"report written to {report}")
    out.data({"results": str(recorder.path), "run_id": recorder.run_id, "profile": profile,
              "checks": [record.to_dict() for record in records], "bench": bench_records,
              "failed": [record.name for record in failed],
              "uncaught": [[record.name, record.control] for record in uncaught],
              "findings": [record.to_dict() for record in findings],
              "findings_uncaught": [[r.name, r.control, r.params] for r in findings_uncaught],
              "findings_raised": [record.name for record in findings_raised], "warnings": summary,
              "report": None if report is None else str(report), "exit_status": status})
    return status
