"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from sparse_bench import cli


@pytest.fixture
def run_cli(capsys):
    """``sparse-bench ARGS`` in-process: (exit code, stdout, stderr)."""

    def run(*args):
        code = cli.main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
