"""Everything the report reads: results files only, checked, with what is missing or stale said out loud."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

CHECKS_FILE = "checks.jsonl"
AUDIT_FILE = "audit.jsonl"
BENCH_FILE = "bench.jsonl"
DISTRIBUTED_FILE = "distributed.jsonl"
MANIFEST_FILE = "run.json"

FILL_COMMANDS = {
    CHECKS_FILE: "sparse-bench run --only checks",
    AUDIT_FILE: "sparse-bench audit --seeds 100",
    BENCH_FILE: "sparse-bench run --only bench",
    DISTRIBUTED_FILE: "torchrun --nproc_per_node=2 -m sparse_bench.distributed.bench",
    MANIFEST_FILE: "sparse-bench run",
}


class ReportInputError(Exception):
    """The results directory cannot be used: missing entirely, or a file in it is corrupt."""


@dataclass
class ReportInputs:
    """Latest records per check and control, plus audit, speed and provenance records.

    checks: name -> latest record of the real implementation; controls: (name, control) -> latest record.
    missing_files: results files that are absent, each with the command that fills it.
    """

    results_dir: Path
    checks: dict = field(default_factory=dict)
    controls: dict = field(default_factory=dict)
    audit: dict = field(default_factory=dict)
    bench: list = field(default_factory=list)
    distributed: list = field(default_factory=list)
    manifest: dict | None = None
    missing_files: dict = field(default_factory=dict)


# The fields the report reads from each file's records, and their types (a record may carry more).
REQUIRED_FIELDS = {
    CHECKS_FILE: {"name": str, "verdict": str},
    AUDIT_FILE: {"name": str},
    BENCH_FILE: {"kind": str, "name": str},
}


def read_jsonl(path: Path) -> list[dict]:
    """All records of a JSON-lines file, each holding the fields the report reads (``REQUIRED_FIELDS``);
    ReportInputError naming file and line on any bad line or record, or when the file cannot be read."""
    from theory_checks.framework import CorruptResultsError, read_records

    try:
        records = read_records(path)
    except CorruptResultsError as error:
        raise ReportInputError(str(error)) from None
    except OSError as error:
        raise ReportInputError(f"cannot read results file {path}: {error.strerror or error}") from None
    for number, record in enumerate(records, start=1):
        problem = record_problem(path.name, record)
        if problem:
            raise ReportInputError(f"corrupt results file {path}, line {number}: {problem}")
    return records


def record_problem(file_name: str, record: dict) -> str | None:
    """What makes ``record`` unusable as a record of ``file_name`` (a missing or mistyped field the report
    reads, an unknown verdict, a malformed figure), or None."""
    from theory_checks.framework.result import VERDICTS

    for key, kind in REQUIRED_FIELDS.get(file_name, {}).items():
        if not isinstance(record.get(key), kind):
            return f"field {key!r} must be a {kind.__name__}, got {record.get(key)!r}"
    if file_name == CHECKS_FILE:
        if record["verdict"] not in VERDICTS:
            return f"verdict must be one of {VERDICTS}, got {record['verdict']!r}"
        details = record.get("details", {})
        if not isinstance(details, dict):
            return f"details must be an object, got {type(details).__name__}"
        return figure_problem(details)
    ratio_table = file_name == BENCH_FILE and record["kind"] == "moe_ratio_table"
    if ratio_table and not isinstance(record.get("point"), dict):
        return f"a ratio-table record needs its grid point as an object, got {record.get('point')!r}"
    return None


def figure_problem(details: dict) -> str | None:
    """What is wrong with the figure specs of a check's details (``report.figures``), or None."""
    specs = details.get("figures") or []
    if not isinstance(specs, list):
        return "details.figures must be a list"
    for spec in ([details["figure"]] if details.get("figure") else []) + specs:
        series = spec.get("series") if isinstance(spec, dict) else None
        if not isinstance(series, list):
            return "a figure needs a list of series"
        for one in series:
            if not (isinstance(one, dict) and isinstance(one.get("x"), list)
                    and isinstance(one.get("y"), list) and len(one["x"]) == len(one["y"])):
                return "each figure series needs lists x and y of one length"
    return None


def load_inputs(results_dir: str | Path) -> ReportInputs:
    """Read every results file in ``results_dir``. Raises ReportInputError when there is nothing to report."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportInputError(f"results directory {root} does not exist: run `sparse-bench run` first")
    present = [name for name in FILL_COMMANDS if (root / name).exists()]
    if not any(name in present for name in (CHECKS_FILE, BENCH_FILE)):
        raise ReportInputError(
            f"no results in {root} ({CHECKS_FILE} or {BENCH_FILE}): run `sparse-bench run` first"
        )
    inputs = ReportInputs(results_dir=root)
    inputs.missing_files = {name: cmd for name, cmd in FILL_COMMANDS.items() if name not in present}
    if CHECKS_FILE in present:
        for record in read_jsonl(root / CHECKS_FILE):  # later lines win: they are newer
            if record.get("control"):
                inputs.controls[(record["name"], record["control"])] = record
            else:
                inputs.checks[record["name"]] = record
    if AUDIT_FILE in present:
        for record in read_jsonl(root / AUDIT_FILE):
            inputs.audit[record["name"]] = record
    if BENCH_FILE in present:
        inputs.bench = read_jsonl(root / BENCH_FILE)
    if DISTRIBUTED_FILE in present:
        inputs.distributed = read_jsonl(root / DISTRIBUTED_FILE)
    if MANIFEST_FILE in present:
        inputs.manifest = read_manifest(root / MANIFEST_FILE)
    return inputs


def read_manifest(path: Path) -> dict:
    """The run's provenance (a JSON object); ReportInputError when it cannot be read or is not one."""
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as error:
        raise ReportInputError(f"cannot read results file {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportInputError(f"corrupt results file {path}: {error}") from None
    if not isinstance(manifest, dict):
        raise ReportInputError(f"corrupt results file {path}: expected a JSON object, got "
                               f"{type(manifest).__name__}")
    return manifest


def current_commit() -> str | None:
    """The git commit of the working tree, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
