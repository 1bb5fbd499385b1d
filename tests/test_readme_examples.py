"""Every ```python block of README.md runs as written: each on its own, as a reader would paste it, in a fresh
interpreter with a temporary working directory and ``MPLBACKEND=Agg``.

Marker: a block whose first line starts with the comment ``# needs torchrun`` runs one process per rank under
torch.distributed, so the fast test leaves it out; the slow test runs it with ``torchrun --standalone
--nproc_per_node=2`` (gloo on CPU).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
TORCHRUN_MARKER = "# needs torchrun"
BLOCK_TIMEOUT_S = 300


def python_blocks() -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block of README.md."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in PYTHON_BLOCK.finditer(text)]


def needs_torchrun(code: str) -> bool:
    return code.startswith(TORCHRUN_MARKER)


def run_block(code: str, line: int, tmp_path: Path, launcher: list[str]) -> None:
    """Write the block to a file in ``tmp_path`` and run it there with ``launcher``; fail with its output."""
    script = tmp_path / f"readme_line_{line}.py"
    script.write_text(code)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run([*launcher, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, f"README.md block at line {line} failed:\n{done.stdout}\n{done.stderr}"


BLOCKS = python_blocks()
PLAIN = [pytest.param(code, line, id=f"line{line}") for line, code in BLOCKS if not needs_torchrun(code)]
TORCHRUN = [pytest.param(code, line, id=f"line{line}") for line, code in BLOCKS if needs_torchrun(code)]


def test_readme_has_python_blocks_of_both_kinds():
    assert PLAIN and TORCHRUN, f"expected plain and torchrun python blocks in README.md, found {len(BLOCKS)}"


@pytest.mark.parametrize("code,line", PLAIN)
def test_readme_block_runs(code, line, tmp_path):
    run_block(code, line, tmp_path, [sys.executable])


@pytest.mark.slow
@pytest.mark.parametrize("code,line", TORCHRUN)
def test_readme_torchrun_block_runs(code, line, tmp_path):
    run_block(code, line, tmp_path, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                     "--nproc_per_node=2"])
