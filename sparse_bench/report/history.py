"""The last runs' values from the store: per check its measured value and verdict per run, per speed row its
ratio per run, each with a sparkline (a small inline SVG drawn here, no plotting library).

A table has one column per run (the newest HISTORY_RUNS runs that measured that kind, oldest first) and one
row per check or speed row; a cell is empty where that run did not measure the row.
"""

from __future__ import annotations

import datetime as dt
import math

from markupsafe import Markup, escape

from .cells import fmt

HISTORY_RUNS = 8
SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 120, 26, 4
VERDICT_COLOURS = {"pass": "#0a7a3d", "fail": "#b3261e"}
NEUTRAL = "#1f4e9c"


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def sparkline(values: list, verdicts: list[str | None], label: str) -> Markup:
    """An inline SVG of ``values`` (oldest first; None or non-finite values leave a gap in the points), each
    point coloured by its verdict; ``label`` names it for screen readers and as its tooltip."""
    points = [(i, _finite(v), verdict) for i, (v, verdict) in enumerate(zip(values, verdicts))]
    finite = [y for _, y, _ in points if y is not None]
    if not finite:
        return Markup("")
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step = (SPARK_WIDTH - 2 * SPARK_PAD) / max(len(values) - 1, 1)

    def xy(i, y):
        height = SPARK_HEIGHT - 2 * SPARK_PAD
        return SPARK_PAD + i * step, SPARK_PAD + (height / 2 if high == low else height * (high - y) / span)

    coords = [(xy(i, y), verdict) for i, y, verdict in points if y is not None]
    line = " ".join(f"{x:.1f},{y:.1f}" for (x, y), _ in coords)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{VERDICT_COLOURS.get(v, NEUTRAL)}"/>'
                   for (x, y), v in coords)
    title = escape(label)
    return Markup(
        f'<svg class="spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" viewBox="0 0 {SPARK_WIDTH} '
        f'{SPARK_HEIGHT}" role="img" aria-label="{title}"><title>{title}</title>'
        f'<polyline points="{line}" fill="none" stroke="#8a94a0" stroke-width="1.2"/>{dots}</svg>')


def _date(started: float | None) -> str:
    if started is None:
        return ""
    return dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _table(cells: dict, starts: dict, notes: dict | None = None, units: dict | None = None) -> dict:
    """cells: row name -> run id -> (text, value, verdict or None, css class); notes: run id -> what to say
    under its column; units: row name -> unit. Columns: the newest HISTORY_RUNS run ids among the cells,
    oldest first."""
    run_ids = sorted({run_id for per_run in cells.values() for run_id in per_run})[-HISTORY_RUNS:]
    columns = [{"run": run_id, "date": _date(starts.get(run_id)), "note": (notes or {}).get(run_id, "")}
               for run_id in run_ids]
    rows = []
    for name in sorted(cells):
        per_run = cells[name]
        shown = [per_run.get(run_id) for run_id in run_ids]
        if not any(shown):
            continue
        present = [c for c in shown if c is not None]
        summary = ", ".join(f"{c[0]}" + (f" ({c[2]})" if c[2] else "") for c in present)
        rows.append({"name": name, "unit": (units or {}).get(name) or "",
                     "spark": sparkline([c[1] for c in present], [c[2] for c in present],
                                        f"{name}, oldest to newest: {summary}"),
                     "cells": [{"text": c[0], "verdict": c[2] or "", "class": c[3]} if c else None
                               for c in shown]})
    return {"columns": columns, "rows": rows}


def check_history(history: dict, units: dict, starts: dict) -> dict:
    """history: name -> [(run id, run start, measured, verdict)] (``ReportInputs.history``), oldest first;
    units: name -> unit of the measured value; starts: run id -> start time (Unix seconds)."""
    cells: dict = {}
    for name, entries in history.items():
        for run_id, _, measured, verdict in entries:  # a later record of one run replaces an earlier one
            cells.setdefault(name, {})[run_id] = (fmt(measured), _finite(measured), verdict, verdict)
    return _table(cells, starts, units=units)


def _ratio_of(record: dict) -> tuple[object, dict | None] | None:
    """(ratio, interval) of a ratio-table record (R) or a component ratio; None for other records."""
    if record.get("kind") == "moe_ratio_table":
        return record.get("R"), record.get("R_interval")
    if record.get("kind") == "component_ratio":
        return record.get("ratio"), record.get("interval")
    return None


def speed_history(bench_runs: dict, starts: dict) -> dict:
    """bench_runs: run id -> that run's benchmark records. A cell: the ratio with its interval; a row of a
    contended run is marked, and so is the run's column."""
    cells: dict = {}
    notes = {}
    for run_id, records in bench_runs.items():
        for record in records:
            ratio = _ratio_of(record)
            if ratio is None:
                continue
            value, interval = ratio
            text = fmt(value, 3) + (f" [{fmt(interval['low'], 3)}, {fmt(interval['high'], 3)}]"
                                    if interval and value is not None else "")
            contended = bool((record.get("thread_scaling") or {}).get("contended"))
            if contended:
                notes[run_id] = "contended"
            cells.setdefault(record["name"], {})[run_id] = (text, _finite(value), None,
                                                            "contended" if contended else "")
    return _table(cells, starts, notes)
