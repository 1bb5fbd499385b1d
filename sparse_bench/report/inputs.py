"""Everything the report reads: the results store only, with what is missing, skipped or stale said out loud."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sparse_bench.results import (FINDING_VERDICTS, VERDICTS, ResultsStore, Run, StoreError, open_store,
                                  store_path)

FILL_COMMANDS = {
    "check": "sparse-bench run --only checks",
    "audit": "sparse-bench audit --seeds 100",
    "bench": "sparse-bench run --only bench",
    "distributed": "torchrun --nproc_per_node=2 -m sparse_bench.distributed.bench",
}


# A finding's profiles from the smallest scale to its source's own: the report shows the largest measured.
FINDING_PROFILE_ORDER = ("quick", "full", "paper")


class ReportInputError(Exception):
    """The results cannot be used: no store, a store that cannot be read, or nothing in it to report."""


@dataclass
class ReportInputs:
    """Latest records per check and control, plus findings, audit, speed, provenance and history.

    checks: name -> latest record of the real implementation; controls: (name, control) -> latest record.
    findings: ``finding_label`` -> the re-measurement of a published claim under those settings at the largest
    scale measured (``paper`` before ``full`` before ``quick``), the newest of that scale (``FindingResult``
    records, control None): a quick run does not hide a paper-scale result in the same store.
    bench: every benchmark record, oldest first; bench_runs: run id -> that run's benchmark records.
    catalogue: name -> what the check declares (area, source, prediction, unit, controls), from the newest run
    that recorded one; checks in it without a record are "missing".
    run: the newest run that measured something (its provenance); runs: every run, oldest first.
    history: name -> [(run id, run start, measured, verdict)] of the real implementation, oldest first.
    missing: kinds of measurement the store has none of, each with the command that fills it.
    skipped: rows the store could not read, each with the reason.
    """

    results_dir: Path
    checks: dict = field(default_factory=dict)
    controls: dict = field(default_factory=dict)
    audit: dict = field(default_factory=dict)
    bench: list = field(default_factory=list)
    bench_runs: dict = field(default_factory=dict)
    findings: dict = field(default_factory=dict)
    distributed: list = field(default_factory=list)
    catalogue: dict = field(default_factory=dict)
    run: Run | None = None
    runs: list = field(default_factory=list)
    history: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)


# The fields the report reads from each kind's records, and their types (a record may carry more).
REQUIRED_FIELDS = {
    "check": {"name": str, "verdict": str},
    "audit": {"name": str},
    "bench": {"kind": str, "name": str},
    "finding": {"name": str, "verdict": str},
}


def finding_label(record: dict) -> str:
    """A finding's name with the settings it was measured under (one finding is measured on several targets
    and with several trainings; each is its own row): ``name (target=..., training=...)``."""
    params = record.get("params") or {}
    settings = ", ".join(f"{key}={value}" for key, value in sorted(params.items()))
    return f"{record['name']} ({settings})" if settings else record["name"]


def _scale_rank(record: dict) -> int:
    """How close to its source's scale a finding record was measured: the profiles in increasing order."""
    profile = record.get("profile")
    return FINDING_PROFILE_ORDER.index(profile) if profile in FINDING_PROFILE_ORDER else -1


def record_problem(kind: str, record: dict) -> str | None:
    """What makes ``record`` unusable as a record of ``kind`` (a missing or mistyped field the report reads,
    an unknown verdict, a malformed figure), or None."""
    for key, expected in REQUIRED_FIELDS.get(kind, {}).items():
        if not isinstance(record.get(key), expected):
            return f"field {key!r} must be a {expected.__name__}, got {record.get(key)!r}"
    if kind == "check":
        if record["verdict"] not in VERDICTS:
            return f"verdict must be one of {VERDICTS}, got {record['verdict']!r}"
        details = record.get("details", {})
        if not isinstance(details, dict):
            return f"details must be an object, got {type(details).__name__}"
        return figure_problem(details)
    if kind == "finding" and record["verdict"] not in FINDING_VERDICTS:
        return f"verdict must be one of {FINDING_VERDICTS}, got {record['verdict']!r}"
    if kind == "bench" and record["kind"] == "moe_ratio_table" and not isinstance(record.get("point"), dict):
        return f"a ratio-table record needs its grid point as an object, got {record.get('point')!r}"
    return None


def figure_problem(details: dict) -> str | None:
    """What is wrong with the figure specs of a check's details (``report.figures``), or None."""
    specs = details.get("figures") or []
    if not isinstance(specs, list):
        return "details.figures must be a list"
    if "no_figure" in details and not isinstance(details["no_figure"], str):
        return "details.no_figure must be a string (why the check has no figure)"
    for spec in ([details["figure"]] if details.get("figure") else []) + specs:
        series = spec.get("series") if isinstance(spec, dict) else None
        if not isinstance(series, list):
            return "a figure needs a list of series"
        for one in series:
            if not (isinstance(one, dict) and isinstance(one.get("x"), list)
                    and isinstance(one.get("y"), list) and len(one["x"]) == len(one["y"])):
                return "each figure series needs lists x and y of one length"
    return None


def _usable(store: ResultsStore, kind: str, inputs: ReportInputs) -> list:
    """The measurements of ``kind`` the report can use; the others go to ``inputs.skipped`` with the reason."""
    result = store.read(kind)
    inputs.skipped += [f"{kind} row {row}: {reason}" for row, reason in result.skipped]
    usable = []
    for measurement in result.measurements:
        problem = record_problem(kind, measurement.record)
        if problem:
            inputs.skipped.append(f"{kind} row {measurement.id} ({measurement.name}): {problem}")
        else:
            usable.append(measurement)
    return usable


def load_inputs(results_dir: str | Path) -> ReportInputs:
    """Read the store of ``results_dir``. Raises ReportInputError when there is no store or nothing to report."""
    root = Path(results_dir)
    if not store_path(root).exists() and not root.is_dir():
        raise ReportInputError(f"results directory {root} does not exist: run `sparse-bench run` first")
    try:
        with open_store(root) as store:
            return _read(store, root)
    except StoreError as error:
        raise ReportInputError(str(error)) from None


def _read(store: ResultsStore, root: Path) -> ReportInputs:
    inputs = ReportInputs(results_dir=root, runs=store.runs())
    starts = {run.id: run.started for run in inputs.runs}
    commits = {run.id: run.git_commit for run in inputs.runs}
    measured_runs = set()
    for measurement in _usable(store, "check", inputs):  # later rows win: they are newer
        record = measurement.record
        record["versions"] = {"git_commit": commits.get(measurement.run_id), **(record.get("versions") or {})}
        measured_runs.add(measurement.run_id)
        if record.get("control"):
            inputs.controls[(record["name"], record["control"])] = record
            continue
        inputs.checks[record["name"]] = record
        inputs.history.setdefault(record["name"], []).append(
            (measurement.run_id, starts.get(measurement.run_id), record.get("measured"), record["verdict"]))
    for measurement in _usable(store, "audit", inputs):
        inputs.audit[measurement.name] = measurement.record
    bench = _usable(store, "bench", inputs)
    inputs.bench = [m.record for m in bench]
    for measurement in bench:
        inputs.bench_runs.setdefault(measurement.run_id, []).append(measurement.record)
    for measurement in _usable(store, "finding", inputs):
        record = measurement.record
        if record.get("control"):
            continue
        label = finding_label(record)
        shown = inputs.findings.get(label)
        if shown is None or _scale_rank(record) >= _scale_rank(shown):  # later rows are newer
            inputs.findings[label] = record
    distributed = _usable(store, "distributed", inputs)
    inputs.distributed = [m.record for m in distributed]
    measured_runs |= {m.run_id for m in bench} | {m.run_id for m in distributed}
    if not inputs.checks and not inputs.controls and not inputs.bench:
        raise ReportInputError(f"no check or benchmark results in {store.path}: run `sparse-bench run` first")
    for run in inputs.runs:
        if "catalogue" in run.extra:
            inputs.catalogue = run.extra["catalogue"]
        if run.id in measured_runs and run.machine:
            inputs.run = run
    have = {"check": inputs.checks, "audit": inputs.audit, "bench": inputs.bench,
            "distributed": inputs.distributed}
    inputs.missing = {kind: FILL_COMMANDS[kind] for kind, got in have.items() if not got}
    return inputs
