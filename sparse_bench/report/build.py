"""Build ``index.html``: one self-contained page (figures embedded, no network) from the results store."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tempfile
from pathlib import Path

from sparse_bench.results.provenance import git_state

from .banners import banners
from .cells import fmt, with_unit
from .figures import check_figures
from .history import check_history, speed_history
from .inputs import FILL_COMMANDS, ReportInputs, load_inputs
from .provenance import machine_rows, results_rows, run_rows, runs_table, version_rows
from .speed import component_table, ratio_figure, ratio_table, target_table

STATUS_ORDER = {"fail": 0, "missing": 1, "stale": 2, "pass": 3}


def code_spans(text: str):
    """Escaped ``text`` with each `span` in backticks set as <code> (a command to copy)."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def breakable(name: str):
    """Escaped ``name`` with a line-break opportunity after each _ and / (long identifiers wrap there)."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"([_/])", r"\1<wbr>", str(escape(name))))


def measured_cell(record: dict, unit: str | None) -> str:
    """"0.51 [0.48, 0.54] probability": the measured value, its interval where recorded, its unit."""
    measured = fmt(record.get("measured"))
    lo, hi = record.get("ci_low"), record.get("ci_high")
    text = f"{measured} [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else measured
    return with_unit(text, unit)


def record_commit(record: dict) -> str | None:
    return (record.get("versions") or {}).get("git_commit")


def anchors(names, prefix: str = "check-") -> dict[str, str]:
    """name -> an HTML id for its section (``prefix`` + the name's letters, digits, _ and -; unique)."""
    out, used = {}, set()
    for name in sorted(names):
        slug = prefix + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "unnamed")
        candidate, i = slug, 2
        while candidate in used:
            candidate, i = f"{slug}-{i}", i + 1
        used.add(candidate)
        out[name] = candidate
    return out


def figure_note(record: dict | None, figures: list) -> str:
    """What the verdict table says in its figure column: how many figures, or why there is none."""
    if record is None:
        return "no result"
    if figures:
        return f"{len(figures)} figure{'s' if len(figures) > 1 else ''}"
    return "none: why" if (record.get("details") or {}).get("no_figure") else "none, no reason stated"


def verdict_rows(inputs: ReportInputs, expected: dict, head: str | None,
                 figures: dict | None = None) -> list[dict]:
    """One row per registered or recorded check; status fail / missing / stale / pass, failures first.
    figures: check name -> its figures (``figures.check_figures``), for the figure column."""
    figures = figures or {}
    ids = anchors(set(expected) | set(inputs.checks))
    rows = []
    for name in ids:
        record = inputs.checks.get(name)
        declared = expected.get(name) or {}
        controls = [r for (n, _), r in inputs.controls.items() if n == name]
        caught = sum(r.get("verdict") == "fail" for r in controls)
        n_controls = len(declared["controls"]) if "controls" in declared else len(controls)
        audit = inputs.audit.get(name)
        unit = (record or {}).get("unit") or declared.get("unit")
        row = {
            "name": name, "id": ids[name], "unit": unit or "", "area": declared.get("area", ""),
            "audit": (f"{100 * audit['pass_rate']:.1f}% of {audit.get('seeds', '?')}"
                      if audit and "pass_rate" in audit else "not audited"),
            "figure": figure_note(record, figures.get(name, [])), "has_figure": bool(figures.get(name)),
        }
        if record is None:
            row.update(status="missing", source=declared.get("source", ""),
                       prediction=declared.get("prediction", ""), predicted="", measured="",
                       measured_sort="", test=f"no result: run `{FILL_COMMANDS['check']}`", margin="",
                       controls=f"0/{n_controls}", seed="", profile="", runtime="", runtime_sort="")
            rows.append(row)
            continue
        status = record["verdict"]
        if status == "pass" and head is not None and record_commit(record) != head:
            status = "stale"
        wall = record.get("wall_time_s")
        row.update(
            status=status, source=record.get("source", ""), prediction=record.get("prediction", ""),
            predicted=with_unit(fmt(record.get("predicted")), unit),
            measured=measured_cell(record, unit), measured_sort=fmt(record.get("measured"), 17),
            test=record.get("test", ""), margin=record.get("margin") or "",
            controls=f"{caught}/{n_controls}" if controls else f"not run (0/{n_controls})",
            seed=record.get("seed", ""), profile=record.get("profile", ""),
            runtime=f"{wall:.2f} s" if isinstance(wall, (int, float)) else "", runtime_sort=fmt(wall, 17),
        )
        rows.append(row)
    rows.sort(key=lambda r: (STATUS_ORDER[r["status"]], r["name"]))
    return rows


def detail_tables(record: dict) -> list[dict]:
    """Tables a check carries in ``details["table"]`` / ``details["tables"]``: title, caption, columns,
    rows."""
    details = record.get("details") or {}
    tables = []
    for table in ([details["table"]] if details.get("table") else []) + list(details.get("tables") or []):
        tables.append({"title": table.get("title", record.get("name", "")),
                       "caption": table.get("caption", ""), "columns": table["columns"],
                       "rows": [[fmt(v) for v in row] for row in table["rows"]]})
    return tables


def check_sections(rows: list[dict], inputs: ReportInputs, figures: dict) -> list[dict]:
    """Per check, in verdict-table order: its figures (or why it has none) and its tables."""
    sections = []
    for row in rows:
        record = inputs.checks.get(row["name"])
        sections.append({
            **row,
            "figures": figures.get(row["name"], []),
            "no_figure": None if record is None else (record.get("details") or {}).get("no_figure"),
            "tables": detail_tables(record) if record else [],
        })
    return sections


def generic_table(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Columns = every scalar key, in order of first appearance; one row per record."""
    keys: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in keys and not isinstance(value, (dict, list)):
                keys.append(key)
    return keys, [[fmt(r.get(k)) for k in keys] for r in records]


def _source_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return fmt(value)


def scale_label(record: dict) -> str:
    """A finding record's scale in a few words: its profile and, below the source's scale, the fraction."""
    profile, fraction = record.get("profile", ""), record.get("scale_fraction")
    if not isinstance(fraction, (int, float)) or not math.isfinite(fraction) or fraction <= 0:
        return str(profile)
    if fraction >= 1:
        return f"{profile}: the source's scale"
    return f"{profile}: 1/{1 / fraction:.3g} of the source's scale"


def finding_rows(findings: dict) -> list[dict]:
    """The re-measured published claims, not reproduced first, then inconclusive, then reproduced; each with
    its figures and tables."""
    order = {"not reproduced": 0, "inconclusive": 1, "reproduced": 2}
    ids, figures = anchors(findings, prefix="finding-"), check_figures(findings)
    rows = []
    for name, r in findings.items():
        rows.append({"name": name, "id": ids[name], "verdict": r["verdict"],
                     "verdict_class": r["verdict"].replace(" ", "-"), "claim": r.get("claim", ""),
                     "source": r.get("source", ""), "reading": r.get("reading", ""),
                     "source_value": _source_value(r.get("source_value")),
                     "measured": measured_cell(r, r.get("unit")), "decision": r.get("decision", ""),
                     "scale": r.get("scale", ""), "scale_short": scale_label(r),
                     "training": r.get("training", ""),
                     "training_short": (r.get("params") or {}).get("training", ""),
                     "figures": figures.get(name, []), "tables": detail_tables(r)})
    rows.sort(key=lambda row: (order.get(row["verdict"], 3), row["name"]))
    return rows


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and os.replace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # a page to publish: readable like any new file, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render(inputs: ReportInputs, expected: dict) -> str:
    """The report's HTML for these inputs; ``expected`` maps check names to their declarations (a catalogue:
    area, source, prediction, unit, controls)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    head, _ = git_state()
    figures = check_figures(inputs.checks)
    rows = verdict_rows(inputs, expected, head, figures)
    counts = {
        "total": len(rows),
        **{s: sum(r["status"] == s for r in rows) for s in STATUS_ORDER},
        "controls": len(inputs.controls),
        "controls_caught": sum(r.get("verdict") == "fail" for r in inputs.controls.values()),
        "figures": sum(r["has_figure"] for r in rows),
    }
    speed_columns, speed_rows = ratio_table(inputs.bench)
    figure = ratio_figure(inputs.bench)
    component_columns, component_rows = component_table(inputs.bench)
    target_columns, target_rows = target_table(inputs.bench)
    dist_columns, dist_rows = generic_table(inputs.distributed)
    starts = {run.id: run.started for run in inputs.runs}
    run = inputs.run
    env = Environment(
        loader=PackageLoader("sparse_bench.report", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters.update(code_spans=code_spans, breakable=breakable)
    return env.get_template("report.html.j2").render(
        built_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        results_dir=str(inputs.results_dir),
        banners=banners(inputs, rows, head),
        findings=finding_rows(inputs.findings),
        counts=counts,
        rows=rows,
        sections=check_sections(rows, inputs, figures),
        speed={
            "rows": speed_rows,
            "columns": speed_columns,
            "figures": [figure] if figure else [],
            "target_columns": target_columns,
            "target_rows": target_rows,
            "component_columns": component_columns,
            "component_rows": component_rows,
            "note": ("Ratios measured side by side in one process (median of repeated timings; in brackets "
                     "the 95% interval from the per-round ratios); absolute times vary run to run."),
        },
        history={"checks": check_history(inputs.history, {r["name"]: r["unit"] for r in rows}, starts),
                 "speed": speed_history(inputs.bench_runs, starts)},
        distributed={"rows": dist_rows, "columns": dist_columns, "command": FILL_COMMANDS["distributed"]},
        provenance={"run": run_rows(run, head), "machine": machine_rows(run.machine if run else {}),
                    "versions": version_rows(run.versions if run else {}),
                    "results": results_rows(inputs.checks), "runs": runs_table(inputs.runs)},
        missing=sorted(inputs.missing.items()),
    )


def build_report(results_dir: str | Path, out_dir: str | Path) -> Path:
    """Read ``results_dir``, write ``out_dir/index.html`` atomically, return its path.

    Raises ReportInputError (missing/corrupt results) or OSError (unwritable output directory).
    """
    inputs = load_inputs(results_dir)
    html = render(inputs, inputs.catalogue)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "index.html"
    write_atomic(target, html)
    return target
