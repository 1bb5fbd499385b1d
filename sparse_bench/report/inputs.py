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


def read_jsonl(path: Path) -> list[dict]:
    """All records of a JSON-lines file; ReportInputError naming file and line on any bad line."""
    from theory_checks.framework import CorruptResultsError, read_records

    try:
        return read_records(path)
    except CorruptResultsError as error:
        raise ReportInputError(str(error)) from None


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
        try:
            inputs.manifest = json.loads((root / MANIFEST_FILE).read_text())
        except json.JSONDecodeError as error:
            raise ReportInputError(f"corrupt results file {root / MANIFEST_FILE}: {error}") from None
    return inputs


def current_commit() -> str | None:
    """The git commit of the working tree, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
