"""scripts/overhead_decomposition.py runs end to end on a tiny point and refuses a malformed one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "overhead_decomposition.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_prints_one_row_per_point_with_every_column():
    done = run("8,1,64,32", "4,2,32,32", "--min-run-time", "0.01", "--threads", "1")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 8, 1, 64, 32", "| 4, 2, 32, 32"]
    header = done.stdout.splitlines()[0]
    assert all(row.count("|") == header.count("|") for row in rows)
    for row in rows:  # every ratio of the ideal layers is at least 1: they add work to the floor
        ratios = [float(cell.split(" x")[0]) for cell in row.split(" | ")[6:8]]
        assert all(r >= 1 for r in ratios), row


def test_a_malformed_point_is_a_usage_error():
    done = run("8,1,x")
    assert done.returncode == 2 and "is not E,k,T,h" in done.stderr
