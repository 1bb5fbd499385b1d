"""The warnings at the top of the report: what makes this store's numbers less than they seem, and what to do.

A banner is raised for: failed checks and uncaught negative controls (errors); a contended or noisy benchmark
run, rows of the store that could not be read, results from another commit than the working tree, and a run
made from a tree with uncommitted changes (warnings).

"Noisy" is defined on the newest benchmark run: each ratio it measured with an interval (a ratio table's R, a
component ratio) has a relative interval width (high - low) / ratio; the run is noisy when the median of those
widths exceeds NOISY_MEDIAN_RELATIVE_WIDTH.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .cells import fmt
from .inputs import FILL_COMMANDS, ReportInputs

# A ratio whose 95% interval spans more than a tenth of it cannot be placed against the speed targets, which
# are a few tenths apart (R <= 1.15 forward, R <= 1.3 forward + backward); a median above that says most of
# the run's ratios are blurred. (A contended run's intervals span several times R.)
NOISY_MEDIAN_RELATIVE_WIDTH = 0.10
LISTED = 12  # items named in a banner's list before "... and N more"


@dataclass(frozen=True)
class Banner:
    """One warning: level ("error", "warning" or "note"), a headline, what it means, what to do, and the items (check
    names, rows) it is about."""

    level: str
    title: str
    meaning: str
    action: str
    items: tuple[str, ...] = ()


def relative_widths(records: list[dict]) -> list[float]:
    """(high - low) / ratio of every ratio of ``records`` that has an interval (ratio-table R, component
    ratios)."""
    widths = []
    for record in records:
        value, interval = (record.get("R"), record.get("R_interval")) if "R" in record else (
            record.get("ratio"), record.get("interval"))
        low, high = (interval.get("low"), interval.get("high")) if isinstance(interval, dict) else (None, None)
        if all(isinstance(v, (int, float)) for v in (value, low, high)) and value > 0:
            widths.append((high - low) / value)
    return widths


def newest_bench_run(inputs: ReportInputs) -> tuple[int | None, list[dict]]:
    """(id, records) of the newest run that measured benchmarks; (None, []) without any."""
    if not inputs.bench_runs:
        return None, []
    run_id = max(inputs.bench_runs)
    return run_id, inputs.bench_runs[run_id]


def _listed(items: list[str]) -> tuple[str, ...]:
    extra = len(items) - LISTED
    return tuple(items[:LISTED]) + ((f"... and {extra} more",) if extra > 0 else ())


def speed_banners(inputs: ReportInputs) -> list[Banner]:
    """Contended and noisy: about the newest benchmark run only (older runs are history)."""
    from sparse_bench.bench.ratio_table import CONTENDED_EFFICIENCY

    run_id, records = newest_bench_run(inputs)
    out = []
    contended = [r for r in records if (r.get("thread_scaling") or {}).get("contended")]
    if contended:
        out.append(Banner(
            "warning", f"Contended benchmark run (run {run_id})",
            f"On {len(contended)} of its rows the GEMM floor ran less than {CONTENDED_EFFICIENCY} × N times "
            "faster on N threads than on one: other work held the machine's cores. Such a run charges "
            "serial and parallel work differently than an idle machine, so the ratios of this run do not "
            "compare with other runs' (the rows of the ratio table say which).",
            f"Re-measure on an idle machine (nothing else running): `{FILL_COMMANDS['bench']}`.",
            _listed([f"{r['name']}: floor {fmt(r['thread_scaling'].get('speedup'), 3)}x on "
                     f"{r['thread_scaling'].get('threads', '?')} threads" for r in contended])))
    widths = relative_widths(records)
    if widths and statistics.median(widths) > NOISY_MEDIAN_RELATIVE_WIDTH:
        median = statistics.median(widths)
        out.append(Banner(
            "warning", f"Noisy benchmark run (run {run_id})",
            f"The median 95% interval of the {len(widths)} ratio(s) it measured spans {100 * median:.0f}% of "
            f"the ratio (this report calls a run noisy above {100 * NOISY_MEDIAN_RELATIVE_WIDTH:.0f}%): the "
            "timings varied from round to round, so the ratios of this run do not compare with other runs', "
            "and verdicts against the speed targets may be within noise.",
            f"Re-measure on an idle machine: `{FILL_COMMANDS['bench']}` (the full profile times longer).",
        ))
    return out


def banners(inputs: ReportInputs, rows: list[dict], head: str | None) -> list[Banner]:
    """Every banner of the report, errors first. ``rows``: the verdict rows (``build.verdict_rows``);
    ``head``: the working tree's commit (None outside a git checkout)."""
    out = []
    failed = [r["name"] for r in rows if r["status"] == "fail"]
    if failed:
        out.append(Banner(
            "error", f"{len(failed)} check(s) failed",
            "The measurement contradicts the check's prediction beyond its stated tolerance (at false-alarm "
            "level alpha, so a sound implementation fails a given check about once in 1/alpha runs).",
            "Read the check's row (failures come first) and figure, then re-run it alone: "
            "`sparse-bench run --check NAME`. A failure that reproduces on other seeds is a bug or a wrong "
            "prediction.", _listed(failed)))
    uncaught = sorted(f"{name} / {control}" for (name, control), r in inputs.controls.items()
                      if r.get("verdict") != "fail")
    if uncaught:
        out.append(Banner(
            "error", f"{len(uncaught)} negative control(s) not caught",
            "A deliberately broken implementation passed its check: that check cannot tell the planted "
            "defect from the real thing, so its passes say less than they seem.",
            "Strengthen the check (sample size, test) until the control fails; "
            "`sparse-bench run --check NAME` runs a check with its controls.", _listed(uncaught)))
    out += speed_banners(inputs)
    if inputs.skipped:
        out.append(Banner(
            "warning", f"{len(inputs.skipped)} row(s) of the store could not be read",
            "They are left out of every table and figure below; the rest of the report is unaffected.",
            "A writer of another version or a torn write left them; re-run the command that wrote them.",
            _listed(list(inputs.skipped))))
    stale = [r["name"] for r in rows if r["status"] == "stale"]
    run = inputs.run
    if stale or (run is not None and head is not None and run.git_commit not in (None, head)):
        commits = sorted({str((inputs.checks[name].get("versions") or {}).get("git_commit"))
                          for name in stale})
        where = (f"{len(stale)} check result(s) come from {', '.join(commits)}" if stale
                 else f"the newest run was made at {run.git_commit}")
        out.append(Banner(
            "warning", "Results from another commit than the working tree",
            f"The working tree is at {head}; {where}. They describe that code, not this one.",
            f"Re-run to refresh them: `{FILL_COMMANDS['check']}` (and `{FILL_COMMANDS['bench']}`).",
            _listed(stale)))
    small = sorted(label for label, r in inputs.findings.items() if r.get("profile") != "paper")
    if small:
        out.append(Banner(
            "note", f"{len(small)} finding(s) measured below their source's scale",
            "A verdict at a smaller scale than the source's says how the claim fares there, which can differ "
            "from the source's setting; each row's scale column gives the fraction.",
            "Measure them at the source's scale (about 30 minutes on 2 cores): "
            "`sparse-bench run --profile paper --only findings`; the report then shows those results.",
            _listed(small)))
    if run is not None and run.dirty:
        out.append(Banner(
            "warning", f"Run {run.id} was made from a tree with uncommitted changes",
            f"Its commit ({run.git_commit}) plus changes that were never committed: the results belong to no "
            "commit and cannot be reproduced from the history.",
            "Commit the changes and re-run before publishing these numbers."))
    return out
