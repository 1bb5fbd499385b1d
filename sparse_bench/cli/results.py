"""Commands that read the results store: ``report`` (the HTML report), ``compare`` (two runs side by side) and
``export`` (every measurement, as CSV or as the store's JSON document)."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from pathlib import Path

import click

from .options import EXIT_FAILED, EXIT_OK, Output, UserError, json_option, results_option, writable_dir

KINDS = ("check", "audit", "bench", "distributed", "finding")  # results.store.KINDS (tests hold them equal)


def write_report(results: Path, out_dir: Path) -> Path:
    """Build ``out_dir/index.html`` from the store of ``results``; UserError for unusable input or output."""
    from ..report.build import build_report
    from ..report.inputs import ReportInputError

    out = writable_dir(out_dir)
    try:
        return build_report(results, out)
    except ReportInputError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"cannot write the report to {out}: {error.strerror or error}") from None


@click.command(short_help="Build the HTML report from the results store.")
@results_option
@click.option("--out", type=click.Path(path_type=Path), default="reports", show_default=True,
              help="directory of index.html")
def report(results: Path, out: Path) -> int:
    """Build the HTML report from the results store only (nothing is rerun)."""
    click.echo(f"report written to {write_report(results, out)}")
    return EXIT_OK


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _estimate(estimate) -> str:
    if estimate is None:
        return "-"
    if estimate.has_interval:
        return f"{_number(estimate.value)} [{_number(estimate.low)}, {_number(estimate.high)}]"
    return _number(estimate.value)


def format_row(row) -> str:
    """name[ / control] / figure: A vs B, B/A, and the flag (a changed verdict shown as A's -> B's)."""
    unit = f" {row.unit}" if row.unit else ""
    name = f"{row.name} / {row.control}" if row.control else row.name
    verdict = f" verdict {row.verdict_a} -> {row.verdict_b}" if row.verdict_a != row.verdict_b else ""
    flag = f"  {row.flag.upper()}" if row.flag else ""
    return (f"  {name} / {row.label}{unit}: {_estimate(row.a)} -> {_estimate(row.b)}, "
            f"B/A {_estimate(row.ratio)}{verdict}{flag}")


@click.command(short_help="Compare two runs, flagging separated intervals.")
@click.argument("a")
@click.argument("b")
@results_option
@click.option("--threshold", type=click.FloatRange(0), default=0.0, show_default=True,
              help="flag only changes whose B/A lies beyond 1 + threshold (or below 1 / (1 + threshold))")
@click.option("--fail-on-regression", is_flag=True, help="exit 1 when any regression is flagged")
@json_option
def compare(a: str, b: str, results: Path, threshold: float, fail_on_regression: bool, as_json: bool) -> int:
    """Compare run B with run A, measurement by measurement; a change is flagged only where the two intervals
    separate. A and B: a run id or a git commit prefix (newest run there) in --results, or another store (a
    directory or .sqlite file: its newest run; PATH:RUN_ID: that run)."""
    from ..results import StoreError
    from ..results.compare import IMPROVEMENT, REGRESSION, compare as compare_runs

    out = Output(as_json)
    try:
        comparison = compare_runs(a, b, results, threshold)
    except StoreError as error:
        raise UserError(str(error)) from None
    out.say(f"A: {comparison.a.describe()}")
    out.say(f"B: {comparison.b.describe()}")
    for row in comparison.rows:
        out.say(format_row(row))
    regressions = comparison.flagged(REGRESSION)
    out.say(f"{len(comparison.rows)} figures compared: {len(regressions)} regression(s), "
            f"{len(comparison.flagged(IMPROVEMENT))} improvement(s), {len(comparison.flagged('changed'))} "
            f"changed; {len(comparison.only_a)} measurement(s) only in A, {len(comparison.only_b)} only in B")
    out.data(comparison.to_dict())
    return EXIT_FAILED if fail_on_regression and regressions else EXIT_OK


CSV_COLUMNS = ("run_id", "git_commit", "started", "kind", "name", "control", "figure", "value", "low", "high",
               "unit", "verdict")


@click.command(short_help="Export measurements as CSV or JSON.")
@results_option
@click.option("--run", "run_id", type=click.IntRange(1), default=None, help="only this run's measurements")
@click.option("--kind", type=click.Choice(KINDS), default=None, help="only measurements of this kind")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write to this file instead of stdout")
@json_option
def export(results: Path, run_id: int | None, kind: str | None, out: Path | None, as_json: bool) -> int:
    """Every measurement of the store: CSV, one row per figure (run, commit, kind, name, control, figure,
    value and interval, unit, verdict), or with --json the store's JSON document (runs and records)."""
    from ..results import StoreError, open_store
    from ..results.compare import figures

    try:
        with open_store(results, create=False) as store:
            document = store.export()
    except StoreError as error:
        raise UserError(str(error)) from None
    measurements = [m for m in document["measurements"]
                    if run_id in (None, m["run_id"]) and kind in (None, m["kind"])]
    if run_id is not None and not any(run["id"] == run_id for run in document["runs"]):
        raise UserError(f"no run {run_id} in {results}")
    try:
        target = open(out, "w", newline="") if out is not None else contextlib.nullcontext(sys.stdout)
    except OSError as error:
        raise UserError(f"cannot write {out}: {error.strerror or error}") from None
    with target as stream:
        if as_json:
            runs = [run for run in document["runs"] if run_id in (None, run["id"])]
            selected = {**document, "runs": runs, "measurements": measurements}
            json.dump(selected, stream, indent=2, sort_keys=True)
            stream.write("\n")
        else:
            runs = {run["id"]: run for run in document["runs"]}
            writer = csv.writer(stream)
            writer.writerow(CSV_COLUMNS)
            for m in measurements:
                run = runs.get(m["run_id"], {})
                for figure in figures(m["kind"], m["record"]):
                    e = figure.estimate
                    writer.writerow((m["run_id"], run.get("git_commit"), run.get("started"), m["kind"],
                                     m["name"], m["record"].get("control"), figure.label, e.value, e.low,
                                     e.high, figure.unit, figure.verdict))
    if out is not None:
        Output(as_json).say(f"{len(measurements)} measurement(s) written to {out}")
    return EXIT_OK
