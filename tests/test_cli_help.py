"""The command line's own surface: --version, help on every option, and --help without torch (so it answers
in a fraction of a second instead of the seconds torch takes to import)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import click
import pytest

from sparse_bench import cli
from sparse_bench.cli import options, results

HEAVY = ("torch", "numpy", "scipy")


def test_version_comes_from_the_installed_metadata(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sparse-bench {version('sparse-bench')}"


def test_every_command_and_option_has_help():
    for name, command in cli.cli.commands.items():
        assert command.help and command.short_help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"sparse-bench {name} {param.opts[0]}"


def test_help_imports_neither_torch_nor_numpy_nor_scipy():
    """Every command's --help, in a fresh interpreter: none of the heavy modules gets loaded."""
    commands = ["", *cli.cli.commands]
    script = (
        "import sys\n"
        "from sparse_bench.cli import main\n"
        f"for command in {commands!r}:\n"
        "    assert main([command, '--help'] if command else ['--help']) == 0\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_python_m_help_loads_no_torch_by_importtime():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "sparse_bench", "--help"],
                          capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert proc.returncode == 0 and "Usage: sparse-bench" in proc.stdout
    assert "click" in imported and not any(name.split(".")[0] in HEAVY for name in imported)


def test_the_option_vocabulary_matches_the_library():
    """Names the command line keeps for itself (--help must not import the modules that define them)."""
    from sparse_bench.bench.grid import PROFILES as GRID_PROFILES
    from sparse_bench.results.store import KINDS, RESULTS_ENV
    from theory_checks.framework import PROFILES as CHECK_PROFILES
    from theory_checks.suite import SUITE

    assert options.BENCH_PROFILES == GRID_PROFILES and SUITE.profiles == CHECK_PROFILES
    assert results.KINDS == KINDS and options.RESULTS_ENV == RESULTS_ENV


@pytest.mark.parametrize("argv", [["bench", "--help"], ["compare", "--help"], ["-h"]])
def test_help_exits_zero(argv, capsys):
    assert cli.main(argv) == 0
    assert "Usage: sparse-bench" in capsys.readouterr().out
