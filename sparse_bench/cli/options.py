"""What the subcommands share: option decorators (each option defined once), the one-line user error, output
that keeps stdout machine-readable under ``--json``, progress lines, and the warnings summary.

Nothing here imports torch, numpy or scipy: ``sparse-bench --help`` and ``sparse-bench CMD --help`` load this
module and the command modules only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
import warnings
from pathlib import Path

import click
from click.core import ParameterSource

from ..bench.allocator import ALLOCATORS
from ..bench.device import DTYPE_NAMES

# Names the library defines in modules that import torch (bench.grid.PROFILES) or that --help need not load
# (results.store.RESULTS_ENV); tests/test_cli_help.py holds them equal.
BENCH_PROFILES = ("quick", "full")
RESULTS_ENV = "SPARSE_BENCH_RESULTS"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "sparse-bench"


class UserError(click.UsageError):
    """Bad input or an unusable file: ``main`` prints ``sparse-bench CMD: error: MESSAGE`` and exits 2."""


def user_errors(*kinds: type[Exception]):
    """Context manager turning the given exceptions (ValueError, the store's StoreError...) into UserError."""

    @contextlib.contextmanager
    def converting():
        try:
            yield
        except kinds as error:
            raise UserError(str(error)) from None

    return converting()


def given(ctx: click.Context, *names: str) -> list[str]:
    """The options among ``names`` (parameter names) that the command line set explicitly, as --flags."""
    return [f"--{name.replace('_', '-')}" for name in names
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)]


def command_line() -> str:
    """The command being run, as ``sparse-bench ARGS`` (whichever entry point started it): what its run in
    the store records. ``main`` keeps the arguments in the root context's ``obj``."""
    return shlex.join([PROG, *click.get_current_context().find_root().obj["argv"]])


# -- options ----------------------------------------------------------------------------------------------

def results_option(func):
    return click.option(
        "--results", type=click.Path(path_type=Path), envvar=RESULTS_ENV, default="results",
        show_default=True,
        help=f"results store: a directory (its results.sqlite) or a .sqlite file; also ${RESULTS_ENV}")(func)


def json_option(func):
    return click.option("--json", "as_json", is_flag=True,
                        help="print JSON on stdout; progress and messages go to stderr")(func)


def profile_option(default: str, checks: bool = False):
    """--profile: the benchmarks' (quick, full); with checks, any name, checked against the profiles the
    selected suites declare (``Suite.profiles``: the theory checks also take paper)."""
    if checks:
        return click.option("--profile", default=default, show_default=True,
                            help="quick: few samples and grid points; full: more; a check suite may declare "
                                 "more (see `sparse-bench list`)")
    return click.option("--profile", type=click.Choice(BENCH_PROFILES), default=default, show_default=True,
                        help="quick: few grid points and samples; full: the whole grid, longer timings")


def seed_option(help: str, default: int | None = None):
    return click.option("--seed", type=click.IntRange(0), default=default, show_default=default is not None,
                        help=help)


def device_option(func):
    return click.option("--device", default="cpu", show_default=True,
                        help="where the benchmarks run: cpu, cuda or cuda:N")(func)


def dtype_option(func):
    return click.option("--dtype", type=click.Choice(DTYPE_NAMES), default="float32", show_default=True,
                        help="of the experts and activations; the router stays float32")(func)


def allocator_option(func):
    return click.option("--allocator", type=click.Choice(ALLOCATORS), default="retain", show_default=True,
                        help="retain: glibc keeps freed memory for reuse; system: glibc's default")(func)


def threads_option(default, multiple: bool = False):
    return click.option("--threads", type=click.IntRange(1), default=default, multiple=multiple,
                        show_default=True,
                        help="torch threads" + (" (repeatable: one run per count)" if multiple else ""))


def min_run_time_option(default: float | None):
    by_profile = " (default: by profile)" if default is None else ""
    return click.option("--min-run-time", type=click.FloatRange(0, min_open=True), default=default,
                        show_default=default is not None,
                        help=f"seconds of timed calls per measurement{by_profile}")


def no_write_option(func):
    return click.option("--no-write", is_flag=True, help="print only; store no records")(func)


# -- output -----------------------------------------------------------------------------------------------

class Output:
    """Human lines go to stdout, or to stderr under --json, where stdout carries one JSON document."""

    def __init__(self, as_json: bool = False):
        self.as_json = as_json
        self.stream = sys.stderr if as_json else sys.stdout

    def say(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def data(self, document) -> None:
        """The JSON document on stdout (only under --json)."""
        if self.as_json:
            print(json.dumps(document, indent=2, sort_keys=True, default=str), flush=True)

    def progress(self, total: int, desc: str) -> "Progress":
        return Progress(total, desc, self.stream)


class Progress:
    """One line per finished item, so a log shows progress too; on a terminal a tqdm bar stays beneath the
    lines (tqdm draws nothing without one)."""

    def __init__(self, total: int, desc: str, stream):
        self.stream = stream
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, file=stream, leave=False, unit="run")

    def done(self, line: str) -> None:
        if self.bar is None:
            print(line, file=self.stream, flush=True)
            return
        self.bar.write(line, file=self.stream)
        self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create directory {path}: {error.strerror or error}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"directory {path} is not writable")
    return path


def usable_store(location: Path) -> Path:
    """``location`` after checking that its results store opens (creating it): a corrupt or foreign store is
    reported before any work is done."""
    from ..results import StoreError, open_store

    if location.suffix not in (".sqlite", ".db") and not location.is_file():
        writable_dir(location)
    try:
        open_store(location).close()
    except StoreError as error:
        raise UserError(f"{error}; move it aside before running") from None
    return location


# -- warnings ---------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SLOT = "\x00"  # stands for a number in a message's template
SUBJECTS_SHOWN = 6  # subjects named per line of the warnings summary


@contextlib.contextmanager
def collected_warnings():
    """Record every warning raised inside (each occurrence, none printed); yields the list. Deprecation
    warnings stay ignored, as Python's default filters ignore them outside ``__main__``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        yield caught


def summarise_warnings(caught) -> list[dict]:
    """One entry per distinct message, numbers and subject aside: {"category", "message", "subjects",
    "count"}, most frequent first. A message "SUBJECT: TEXT" (the timing module names what it timed so) is
    grouped by TEXT, its subjects listed in order; each number of TEXT that varies is given as its range
    ("IQR is 12-467% of the median")."""
    groups: dict[tuple[str, str], tuple[dict, list[list[str]]]] = {}
    for item in caught:
        message = str(item.message)
        subject, _, text = message.partition(": ") if ": " in message else ("", "", message)
        subjects, numbers = groups.setdefault((item.category.__name__, _NUMBER.sub(_SLOT, text)), ({}, []))
        subjects[subject] = None
        numbers.append(_NUMBER.findall(text))
    out = []
    for (category, template), (subjects, numbers) in groups.items():
        message = template
        for column in zip(*numbers):
            low, high = min(column, key=float), max(column, key=float)
            message = message.replace(_SLOT, low if low == high else f"{low}-{high}", 1)
        out.append({"category": category, "message": message, "subjects": [s for s in subjects if s],
                    "count": len(numbers)})
    return sorted(out, key=lambda entry: -entry["count"])


def report_warnings(out: Output, summary: list[dict]) -> None:
    if summary:
        total = sum(entry["count"] for entry in summary)
        out.say(f"{total} warning(s), by message:")
        for entry in summary:
            subjects = entry["subjects"]
            named = ", ".join(subjects[:SUBJECTS_SHOWN]) + (", ..." if len(subjects) > SUBJECTS_SHOWN else "")
            out.say(f"  {entry['count']:4d}x {entry['category']}: {entry['message']}"
                    + (f" ({named})" if subjects else ""))
