"""``sparse-bench list`` and ``sparse-bench audit``, and running checks for ``sparse-bench run``: all through
the installed check suites (``sparse_bench.suites``), never by importing one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from .options import (
    EXIT_FAILED,
    EXIT_OK,
    Output,
    UserError,
    command_line,
    json_option,
    profile_option,
    results_option,
    usable_store,
)

NO_SUITE = ("no check suite is installed (entry points of the group sparse_bench.suites); the project's "
            "theory checks register one when the project is installed (pip install -e .)")


@dataclass
class Checks:
    """The installed suites, every check they declare and every finding: name -> (suite name, entry)."""

    suites: dict = field(default_factory=dict)
    index: dict = field(default_factory=dict)
    findings: dict = field(default_factory=dict)

    @classmethod
    def load(cls) -> "Checks":
        from ..suites import SuiteError, check_index, finding_index, load_suites

        try:
            suites = load_suites()
            return cls(suites, check_index(suites), finding_index(suites))
        except SuiteError as error:
            raise UserError(str(error)) from None

    def select(self, names) -> list[str]:
        """``names`` checked against the catalogue (all checks when empty); UserError naming unknown ones."""
        return self._select(names, self.index, "check")

    def select_findings(self, names) -> list[str]:
        """``names`` checked against the findings (all findings when empty); UserError naming unknown ones."""
        return self._select(names, self.findings, "finding")

    def _select(self, names, index: dict, kind: str) -> list[str]:
        if not self.suites:
            raise UserError(NO_SUITE)
        if not names:
            return list(index)
        unknown = [name for name in names if name not in index]
        if unknown:
            raise UserError(f"unknown {kind}(s): {', '.join(unknown)} (see `sparse-bench list`)")
        return list(dict.fromkeys(names))

    def suite_of(self, name: str):
        return self.suites[self.index[name][0]]

    def catalogue(self) -> dict:
        """Every check's catalogue entry by name: what a run stores so the report knows the checks."""
        return {name: entry for name, (_, entry) in self.index.items()}

    def findings_catalogue(self) -> dict:
        """Every finding's declaration by name (``Suite.findings``), which a run stores beside the checks'."""
        return {name: entry for name, (_, entry) in self.findings.items()}

    def check_profile(self, profile: str, names: list[str], finding_names: list[str] = ()) -> None:
        """UserError unless every suite owning one of the checks ``names`` or ``finding_names`` takes
        ``profile``."""
        owners = [self.index[name][0] for name in names] + [self.findings[name][0] for name in finding_names]
        for suite in dict.fromkeys(owners):
            if profile not in self.suites[suite].profiles:
                raise UserError(f"--profile {profile!r}: the {suite} checks take "
                                f"{', '.join(self.suites[suite].profiles)}")


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_check(record) -> str:
    """One line: verdict (for a control: caught or NOT CAUGHT), name, measured [CI] vs predicted with the
    unit, p-value and seconds."""
    if record.control is None:
        status, label = record.verdict.upper(), record.name
    else:
        status = "caught" if record.verdict == "fail" else "NOT CAUGHT"
        label = f"{record.name} / {record.control}"
    ci = f" [{_number(record.ci_low)}, {_number(record.ci_high)}]" if record.ci_low is not None else ""
    unit = f" {record.unit}" if record.unit else ""
    return (f"{status:<10} {label}: measured {_number(record.measured)}{ci} vs predicted "
            f"{_number(record.predicted)}{unit}, p={_number(record.p_value)} ({record.wall_time_s:.1f} s)")


def _in_suite(method: str, suite_name: str, name: str, **kwargs):
    """``suite.method(name, **kwargs)`` of an installed suite loaded afresh, in a worker process: on one
    thread, since the workers share the machine (a check or finding that pins its own threads still does)."""
    from ..threads import pinned_threads

    with pinned_threads(1):
        return getattr(Checks.load().suites[suite_name], method)(name, **kwargs)


def measured_in_order(checks: Checks, calls: list[tuple], jobs: int):
    """Results of ``calls`` [(method, suite name, name, kwargs)] in order: in this process with ``checks``'
    suites (jobs 1), or in ``jobs`` spawned worker processes that load the installed suites (a forked child
    of a process that ran torch ops can deadlock in OpenMP), each yielded once it and those before it are
    done."""
    if jobs <= 1 or len(calls) <= 1:
        for method, suite_name, name, kwargs in calls:
            yield getattr(checks.suites[suite_name], method)(name, **kwargs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_in_suite, method, suite_name, name, **kwargs)
                   for method, suite_name, name, kwargs in calls]
        for future in futures:
            yield future.result()


def run_checks(checks: Checks, names: list[str], profile: str, seed: int | None, recorder, controls: bool,
               out: Output, jobs: int = 1) -> tuple[list, list, list]:
    """Run checks (then their controls), storing each record as soon as it exists and printing its line;
    ``jobs`` > 1: in that many worker processes on one thread each (``measured_in_order``). Returns
    (records, failed checks, controls not caught)."""
    work = [(name, None) for name in names]
    if controls:
        work += [(name, control) for name in names for control in checks.index[name][1]["controls"]]
    calls = [("run", checks.index[name][0], name, dict(control=control, seed=seed, profile=profile))
             for name, control in work]
    records, failed, uncaught = [], [], []
    progress = out.progress(len(work), f"checks ({profile})")
    try:
        for (name, control), record in zip(work, measured_in_order(checks, calls, jobs)):
            recorder.add("check", [record])
            records.append(record)
            if control is None and record.verdict == "fail":
                failed.append(record)
            if control is not None and record.verdict == "pass":
                uncaught.append(record)
            progress.done(format_check(record))
    finally:
        progress.close()
    return records, failed, uncaught


def scale_share(fraction: float) -> str:
    """A scale fraction (ours / the source's) as "1", "1/64" (a unit fraction) or "0.3"."""
    if 0 < fraction < 1 and abs(1 / fraction - round(1 / fraction)) < 1e-9:
        return f"1/{round(1 / fraction)}"
    return f"{fraction:.3g}"


def _binding_source_value(record):
    """The source's value of the component the verdict binds on (the one ``measured`` reports), its label
    when the finding reads several components, else None."""
    components = record.details.get("components") or []
    binding = [c for c in components if c.get("label") == record.details.get("binding_component")]
    if not binding:
        return (record.source_value if isinstance(record.source_value, (int, float)) else None), None
    return binding[0].get("source_value"), (binding[0]["label"] if len(components) > 1 else None)


def format_finding(record, expected: dict) -> str:
    """One line: the verdict (for a planted setting: as planted or NOT AS PLANTED, with the verdict it read),
    name and params, ours [CI] vs the source's value with the unit, the profile's scale and seconds; a
    finding that raised: the exception."""
    params = ", ".join(f"{key}={value}" for key, value in record.params.items())
    label = record.name + (f" / {record.control}" if record.control else "")
    label += f" ({params})" if params else ""
    if record.control is None:
        status, read = record.verdict.upper(), ""
    elif record.verdict == expected.get(record.control):
        status, read = "as planted", f"{record.verdict}, "
    else:
        status = "NOT AS PLANTED"
        read = f"{record.verdict} (must read {expected.get(record.control)}), "
    if "raised" in record.details:
        return f"{status:<14} {label}: {read}{record.test}"
    source, component = _binding_source_value(record)
    unit = f" {record.unit}" if record.unit else ""
    on = f" on {component}" if component else ""
    return (f"{status:<14} {label}: {read}ours {_number(record.measured)} [{_number(record.ci_low)}, "
            f"{_number(record.ci_high)}] vs the source's {_number(source)}{unit}{on}; {record.profile}: "
            f"{scale_share(record.scale_fraction)} of the source's scale ({record.wall_time_s:.1f} s)")


def run_findings(checks: Checks, names: list[str], profile: str, recorder, controls: bool, out: Output,
                 jobs: int = 1) -> tuple[list, list, list]:
    """Measure findings at ``profile``'s scale (then their planted settings), storing each record of kind
    "finding" as soon as it exists and printing its line; ``jobs`` > 1: in that many worker processes
    (``measured_in_order``: stored and printed in the same order as with one). Returns (records, records
    of a planted setting that did not read as planted, records of a real finding that raised)."""
    work = [(name, None) for name in names]
    if controls:
        work += [(name, control) for name in names for control in checks.findings[name][1]["controls"]]
    calls = [("run_finding", checks.findings[name][0], name, dict(control=control, profile=profile))
             for name, control in work]
    records, uncaught, raised = [], [], []
    progress = out.progress(len(work), f"findings ({profile})")
    try:
        for (name, control), measured in zip(work, measured_in_order(checks, calls, jobs)):
            expected = checks.findings[name][1]["expected"]
            recorder.add("finding", measured)
            for record in measured:
                records.append(record)
                if control is not None and record.verdict != expected[control]:
                    uncaught.append(record)
                if control is None and "raised" in record.details:
                    raised.append(record)
                progress.done(format_finding(record, expected))
    finally:
        progress.close()
    return records, uncaught, raised


@click.command("list", short_help="List the checks, findings, benchmarks, presets and routers.")
@json_option
def list_command(as_json: bool) -> int:
    """The checks with the prediction each tests, the findings with the claim each re-measures, and the
    benchmarks."""
    from ..bench.presets import PRESETS, ROUTERS

    out = Output(as_json)
    checks = Checks.load()
    presets = {name: {"model": p.model, "d_model": p.d_model, "d_hidden": p.d_hidden,
                      "num_experts": p.num_experts, "k": p.k, "shared_experts": p.shared_experts}
               for name, p in PRESETS.items()}
    by_suite = {name: {check: entry for check, (suite, entry) in checks.index.items() if suite == name}
                for name in checks.suites}
    findings = {name: {finding: entry for finding, (suite, entry) in checks.findings.items() if suite == name}
                for name in checks.suites}
    profiles = {name: list(suite.profiles) for name, suite in checks.suites.items()}
    out.data({"suites": by_suite, "findings": findings, "profiles": profiles,
              "benchmarks": {"commands": ["bench", "components", "calibrate"], "presets": presets,
                             "routers": list(ROUTERS)}})
    if not checks.suites:
        out.say(NO_SUITE)
    for suite, entries in by_suite.items():
        out.say(f"suite {suite}: {len(entries)} checks, profiles {', '.join(checks.suites[suite].profiles)} "
                f"(name [area, source]: prediction; controls):")
        for name, entry in entries.items():
            out.say(f"  {name} [{entry['area']}, {entry['source']}]: {entry['prediction']}; "
                    f"controls: {', '.join(entry['controls'])}")
        if findings[suite]:
            out.say(f"suite {suite}: {len(findings[suite])} findings (name [source]: claim; scale by "
                    f"profile; planted settings and the verdict each must read):")
        for name, entry in findings[suite].items():
            scales = ", ".join(f"{profile} {scale_share(scale['fraction'])}"
                               for profile, scale in entry["scales"].items())
            planted = ", ".join(f"{control} -> {entry['expected'][control]}" for control in entry["controls"])
            out.say(f"  {name} [{entry['source']}]: {entry['claim']}; scale (of the source's): {scales}; "
                    f"planted: {planted}")
    out.say("benchmarks: `sparse-bench bench` (the MoE ratio table; --shape E,k,T,d,h or --preset NAME for "
            "one layer), `sparse-bench components`, `sparse-bench calibrate`; asv suite in benchmarks/")
    out.say("presets (`sparse-bench bench --preset NAME`):")
    for name, p in PRESETS.items():
        shared = f", {p.shared_experts} shared expert" if p.shared_experts else ""
        out.say(f"  {name}: d {p.d_model}, h {p.d_hidden}, E {p.num_experts}, k {p.k}{shared} ({p.model})")
    out.say(f"routers (`--router`): {', '.join(ROUTERS)}")
    return EXIT_OK


@click.command(short_help="False-alarm audit: checks rerun over fresh seeds.")
@click.option("--seeds", type=click.IntRange(1), default=100, show_default=True, help="number of fresh seeds")
@click.option("--first-seed", type=click.IntRange(0), default=1, show_default=True,
              help="seeds are first-seed, first-seed + 1, ...")
@click.option("--check", "check", default="all", show_default=True, metavar="NAME|all",
              help="a check name, or all")
@click.option("--area", default=None, help="with --check all: only the checks of this area")
@profile_option("quick", checks=True)
@click.option("--controls", is_flag=True, help="also rerun each control on the same seeds: its catch rate")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="worker processes")
@results_option
@json_option
def audit(seeds: int, first_seed: int, check: str, area: str | None, profile: str, controls: bool, jobs: int,
          results: Path, as_json: bool) -> int:
    """False-alarm audit: rerun checks over fresh seeds, store and print each pass rate (exit 1 when one is
    below its required rate)."""
    from ..results.recorder import Recorder

    out = Output(as_json)
    checks = Checks.load()
    if check == "all":
        names = [n for n in checks.select([]) if area in (None, checks.index[n][1]["area"])]
        if not names:
            raise UserError(f"no checks in area {area!r}")
    else:
        if area is not None:
            raise UserError("--area selects among all checks: give it with --check all")
        names = checks.select([check])
    checks.check_profile(profile, names)
    usable_store(results)
    seed_list = list(range(first_seed, first_seed + seeds))
    records, all_ok = [], True
    with Recorder(results, command=command_line(), profile=profile, seed=first_seed) as recorder:
        by_suite: dict[str, list[str]] = {}
        for name in names:
            by_suite.setdefault(checks.index[name][0], []).append(name)
        for suite, suite_names in by_suite.items():
            audited = checks.suites[suite].audit(suite_names, seed_list, profile, controls, jobs)
            for record in audited:
                recorder.add("audit", [record])
                records.append(record)
                all_ok &= bool(record["meets_requirement"])
                out.say(format_audit(record))
    out.say(f"audit records stored in {recorder.path}")
    out.data({"results": str(recorder.path), "run_id": recorder.run_id, "records": records})
    return EXIT_OK if all_ok else EXIT_FAILED


def format_audit(record: dict) -> str:
    lo, hi = record["pass_rate_ci95"]
    line = (f"{record['name']}: pass rate {record['passes']}/{record['seeds']} = "
            f"{100 * record['pass_rate']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%)")
    if "wall_time_s" in record:
        line += f", {record['wall_time_s']:.1f} s"
    if record.get("failed_seeds"):
        line += f"; failed seeds {record['failed_seeds'][:10]}"
    if "control_catch_rates" in record:
        rates = record["control_catch_rates"].items()
        line += "; controls caught " + ", ".join(f"{control} {100 * rate:.0f}%" for control, rate in rates)
    return line
