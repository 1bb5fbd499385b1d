"""Build ``index.html``: one self-contained page (figures embedded, no network) from results files only."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from sparse_bench.results.provenance import git_state

from .cells import fmt
from .figures import check_figures
from .inputs import FILL_COMMANDS, ReportInputs, load_inputs
from .speed import component_table, ratio_figure, ratio_table, target_table

STATUS_ORDER = {"fail": 0, "missing": 1, "stale": 2, "pass": 3}


def measured_cell(record: dict) -> str:
    measured = fmt(record.get("measured"))
    lo, hi = record.get("ci_low"), record.get("ci_high")
    return f"{measured} [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else measured


def record_commit(record: dict) -> str | None:
    return (record.get("versions") or {}).get("git_commit")


def verdict_rows(inputs: ReportInputs, expected: dict, head: str | None) -> list[dict]:
    """One row per registered or recorded check; status fail / missing / stale / pass."""
    rows = []
    for name in sorted(set(expected) | set(inputs.checks)):
        record = inputs.checks.get(name)
        declared = expected.get(name)
        controls = [r for (n, _), r in inputs.controls.items() if n == name]
        caught = sum(r.get("verdict") == "fail" for r in controls)
        n_controls = len(declared["controls"]) if declared is not None else len(controls)
        audit = inputs.audit.get(name)
        audit_cell = (
            f"{100 * audit['pass_rate']:.1f}% of {audit.get('seeds', '?')}"
            if audit and "pass_rate" in audit
            else "not audited"
        )
        if record is None:
            rows.append(
                {
                    "name": name,
                    "status": "missing",
                    "source": declared["source"],
                    "prediction": declared["prediction"],
                    "predicted": "",
                    "measured": "no result: run `sparse-bench run --only checks`",
                    "test": "",
                    "margin": "",
                    "controls": f"0/{n_controls}",
                    "audit": audit_cell,
                    "seed": "",
                    "profile": "",
                    "runtime": "",
                }
            )
            continue
        status = record["verdict"]
        commit = record_commit(record)
        if status == "pass" and head is not None and commit != head:
            status = "stale"
        rows.append(
            {
                "name": name,
                "status": status,
                "source": record.get("source", ""),
                "prediction": record.get("prediction", ""),
                "predicted": fmt(record.get("predicted")),
                "measured": measured_cell(record),
                "test": record.get("test", ""),
                "margin": record.get("margin") or "",
                "controls": f"{caught}/{n_controls}" if controls else f"not run (0/{n_controls})",
                "audit": audit_cell,
                "seed": record.get("seed", ""),
                "profile": record.get("profile", ""),
                "runtime": f"{record.get('wall_time_s', 0.0):.2f} s",
            }
        )
    rows.sort(key=lambda r: (STATUS_ORDER[r["status"]], r["name"]))
    return rows


def detail_tables(checks: dict) -> list[dict]:
    """Tables that checks carry in ``details["table"]`` / ``details["tables"]`` (title, columns, rows)."""
    tables = []
    for name in sorted(checks):
        details = checks[name].get("details") or {}
        for table in ([details["table"]] if details.get("table") else []) + list(details.get("tables") or []):
            tables.append(
                {
                    "title": table.get("title", name),
                    "caption": table.get("caption", ""),
                    "columns": table["columns"],
                    "rows": [[fmt(v) for v in row] for row in table["rows"]],
                }
            )
    return tables


def generic_table(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Columns = every scalar key, in order of first appearance; one row per record."""
    keys: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in keys and not isinstance(value, (dict, list)):
                keys.append(key)
    return keys, [[fmt(r.get(k)) for k in keys] for r in records]


def asv_history(root: Path = Path(".asv/results")) -> list[dict]:
    """Latest value per (benchmark, commit) from asv result files, when present; unreadable files are skipped."""
    import json

    history = []
    for path in sorted(root.glob("*/*.json")) if root.is_dir() else []:
        if path.name == "machine.json":
            continue
        try:
            data = json.loads(path.read_text())
            for name, result in (data.get("results") or {}).items():
                value = result[0] if isinstance(result, list) else result
                history.append(
                    {
                        "name": name,
                        "commit": str(data.get("commit_hash", ""))[:10],
                        "value": fmt(value if not isinstance(value, list) else value[0]),
                    }
                )
        except (ValueError, KeyError, TypeError, IndexError, OSError):
            continue
    return history


def provenance(inputs: ReportInputs, head: str | None) -> list[tuple[str, str]]:
    records = list(inputs.checks.values())
    commits = sorted({record_commit(r) or "unknown" for r in records})
    versions = records[0].get("versions", {}) if records else {}
    run = inputs.run
    machine = run.machine if run else {}
    return [
        ("report built", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("git commit (working tree)", head or "not a git checkout"),
        ("git commit(s) of the results", ", ".join(commits) if records else "no check results"),
        ("results run started", dt.datetime.fromtimestamp(run.started, dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC") if run else "unknown"),
        ("profile(s)", ", ".join(sorted({str(r.get("profile")) for r in records})) or "n/a"),
        ("seeds", ", ".join(sorted({str(r.get("seed")) for r in records}))[:300] or "n/a"),
        (
            "library versions",
            ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if k != "git_commit") or "n/a",
        ),
        ("CPU", f"{machine.get('cpu', 'unknown')} ({machine.get('cores', '?')} cores)"),
        ("threads", str(machine.get("torch_threads", "unknown"))),
        ("GPU", str(machine.get("gpu", "unknown"))),
        ("platform", str(machine.get("os", "unknown"))),
    ]


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
    rows = verdict_rows(inputs, expected, head)
    controls_caught = sum(r.get("verdict") == "fail" for r in inputs.controls.values())
    counts = {
        "total": len(rows),
        **{s: sum(r["status"] == s for r in rows) for s in STATUS_ORDER},
        "controls": len(inputs.controls),
        "controls_caught": controls_caught,
    }
    warnings = []
    if counts["stale"]:
        warnings.append(
            f"{counts['stale']} result(s) come from another commit than the working tree ({head}): "
            "re-run `sparse-bench run` to refresh them."
        )
    if counts["fail"]:
        warnings.append(f"{counts['fail']} check(s) FAILED: see the top of the verdict table.")
    speed_columns, speed_rows = ratio_table(inputs.bench)
    figure = ratio_figure(inputs.bench)
    component_columns, component_rows = component_table(inputs.bench)
    target_columns, target_rows = target_table(inputs.bench)
    dist_columns, dist_rows = generic_table(inputs.distributed)
    env = Environment(
        loader=PackageLoader("sparse_bench.report", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    return env.get_template("report.html.j2").render(
        built_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        results_dir=str(inputs.results_dir),
        warnings=warnings,
        counts=counts,
        rows=rows,
        tables=detail_tables(inputs.checks),
        figures=check_figures(inputs.checks),
        speed={
            "rows": speed_rows,
            "columns": speed_columns,
            "figures": [figure] if figure else [],
            "target_columns": target_columns,
            "target_rows": target_rows,
            "component_columns": component_columns,
            "component_rows": component_rows,
            "note": ("Ratios measured side by side in one process (median of repeated timings; in brackets the "
                     "95% interval from the per-round ratios); absolute times vary run to run."),
            "history": asv_history(),
        },
        distributed={"rows": dist_rows, "columns": dist_columns, "command": FILL_COMMANDS["distributed"]},
        provenance=provenance(inputs, head),
        missing_files=sorted(inputs.missing.items()),
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
