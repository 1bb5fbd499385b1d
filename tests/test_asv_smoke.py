"""The asv suite is discoverable and runs: ``asv machine --yes``, ``asv check -E existing`` and a dry run of one
small benchmark class in the current environment (``--python=same``; saves nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("asv")
ROOT = Path(__file__).resolve().parents[1]


def asv(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "asv", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_asv_check_and_dry_run():
    machine = asv("machine", "--yes")
    assert machine.returncode == 0, machine.stdout + machine.stderr
    check = asv("check", "-E", "existing")
    assert check.returncode == 0 and "No problems found" in check.stdout, check.stdout + check.stderr
    run = asv("run", "--quick", "--dry-run", "--python=same", "--show-stderr", "-b", r"^dsm\.DensePredict\.time_")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "dsm.DensePredict.time_predict" in output and "failed" not in output, output
