"""The ``sparse-bench`` command line: one click group, the front door of every entry point.

``sparse-bench run | report | audit | list | bench | components | calibrate | compare | export``;
``python -m sparse_bench`` is the same, and ``python -m sparse_bench.bench`` (``.components``,
``.calibrate``, ``theory_checks.audit``) runs the subcommand of that name. Every user error (bad option,
unknown check, missing or corrupt results, unwritable output) prints one line
``sparse-bench CMD: error: ...`` to stderr and exits 2; a failing check makes ``run`` exit 1 and name it.
No module on the path of ``--help`` imports torch.
"""

from __future__ import annotations

import os
import sys

import click

from .bench import bench, calibrate, components
from .checks import audit, list_command
from .options import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PROG, UserError
from .results import compare, export, report
from .run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="sparse-bench", prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """Benchmarks and theory checks of sparsely activated layers: run them, store the results, report,
    compare runs."""


for command in (run, report, audit, list_command, bench, components, calibrate, compare, export):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status: 0, 1 (a check or
    regression failed) or 2 (a user error, printed as one line on stderr)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        status = cli.main(args=argv, prog_name=PROG, standalone_mode=False, obj={"argv": argv})
    except click.exceptions.NoArgsIsHelpError as error:  # a bare `sparse-bench`: its help, as click exits
        print(error.format_message(), file=sys.stderr)
        return EXIT_USAGE
    except click.exceptions.Abort:
        print(f"{PROG}: aborted", file=sys.stderr)
        return EXIT_USAGE
    except click.ClickException as error:
        ctx = getattr(error, "ctx", None)
        where = ctx.command_path if ctx is not None else PROG
        message = " ".join(error.format_message().split())  # one line, whatever click composed
        print(f"{where}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if status is None else int(status)


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UserError", "cli", "main"]
