"""Small results stores for the report and CLI tests (built with the library's own writer).

``write_results_fixture``: a store with everything a reader must be warned about (a failed check, a stale
one, a contended and noisy benchmark run), a finding, and two runs of history. ``write_clean_fixture``: a
store with nothing to warn about. Both can add many checks with long names and predictions (a page-width
test).
"""

from __future__ import annotations

from pathlib import Path

from sparse_bench.results import FindingResult, open_store
from theory_checks.framework import make_result

FIXTURE_CHECKS = ("fixture_collision_law", "fixture_failing_check", "fixture_escaping <b>&")
UNIT = "probability"
NO_FIGURE = "an exact identity: nothing to draw"
FIGURE = {
    "title": "collision probability vs angle",
    "x_label": "angle / pi",
    "y_label": "P[same bucket]",
    "series": [
        {
            "label": "measured",
            "x": [0.1, 0.3, 0.5],
            "y": [0.81, 0.49, 0.26],
            "lo": [0.78, 0.46, 0.23],
            "hi": [0.84, 0.52, 0.29],
        },
        {"label": "(1 - theta/pi)^2", "x": [0.1, 0.3, 0.5], "y": [0.81, 0.49, 0.25], "style": "predicted"},
    ],
}
CONTENDED = {"speedup": 1.16, "threads": 2, "contended": True}
IDLE = {"speedup": 1.97, "threads": 2, "contended": False}

RATIO_RECORD = {  # the shape sparse_bench.bench writes; an older copy (R=1.5) sits in the first run
    "kind": "moe_ratio_table",
    "name": "moe_ratio_table/forward/E8/k2/T512",
    "direction": "forward",
    "point": {"label": "E8 k2 T512"},
    "chosen_strategy": "padded",
    "R": 1.12,
    "shape": 1.05,
    "overhead": 1.07,
    "router_share": 0.04,
    "timestamp": 2.0,
    "peers": {
        "hf_mixtral": {"ratio_to_floor": 1.3, "speedup_of_ours": 1.16},
        "fairscale": {"skipped": "absent"},
    },
    "memory": {"ratio": 1.2},
    "targets": {"R_ok": True, "hf_ok": True, "memory_ok": True},
}
MISSED_RECORD = {  # a forward+backward record that misses R below its grouped floor (speed_targets.record_targets)
    "kind": "moe_ratio_table",
    "name": "moe_ratio_table/forward_backward/E8/k2/T512",
    "direction": "forward_backward",
    "point": {"label": "E8 k2 T512"},
    "chosen_strategy": "sorted",
    "R": 1.6,
    "R_interval": {"low": 1.5, "high": 1.7, "confidence": 0.984375, "rounds": 7},
    "shape": 1.4,
    "overhead": 1.6 / 1.4,
    "timestamp": 2.0,
    "peers": {"hf_mixtral": {
        "ratio_to_floor": 2.0, "speedup_of_ours": 1.25,
        "speedup_interval": {"low": 1.1, "high": 1.6, "confidence": 0.984375, "rounds": 7}}},
    "targets": {"R_max": 1.3, "R_ok": False, "hf_speedup_needed": 1.5, "hf_ok": False,
                "needed_R": {"R": 1.3, "hf": 2.0 / 1.5}, "limit": {"R": "grouped floor", "hf": "grouped floor"},
                "within_noise": ["hf"]},
}
LONG_WORDS = "a_very_long_identifier_without_spaces_that_must_wrap_inside_its_cell_" * 3


def _record(name, passed, commit, measured=None, **extra):
    base = make_result(
        name,
        passed=passed,
        seed=7,
        profile="quick",
        n=1000,
        test="exact binomial",
        predicted=0.5,
        measured=measured if measured is not None else (0.51 if passed else 0.9),
        ci=(0.48, 0.54) if passed else (0.88, 0.92),
        p_value=0.4 if passed else 1e-9,
        source="fixture §0",
        prediction=extra.pop("prediction", "P = 1/2"),
        unit=UNIT,
        details=extra.pop("details", {}),
    )
    data = base.to_dict()
    data["versions"]["git_commit"] = commit
    return data


def _long_records(count: int, commit) -> list[dict]:
    """``count`` passing checks with long names, predictions and margins (for the page-width test)."""
    return [_record(f"fixture_long_{i:02d}_{LONG_WORDS[:60]}", True, commit,
                    prediction=f"{LONG_WORDS} " + "a long prediction in words " * 8,
                    details={"no_figure": NO_FIGURE}) for i in range(count)]


def finding_record(commit) -> dict:
    finding = FindingResult(
        name="fixture_finding", source="fixture paper, Table 9", claim="the layer is twice as fast",
        reading="speedup over the dense layer at equal FLOPs", source_value={"speedup": 2.0}, measured=1.4,
        ci_low=1.3, ci_high=1.5, unit="speedup", test="paired t",
        decision="reproduced iff the interval is above 2", verdict="not reproduced",
        scale="1/64 of the paper's", scale_fraction=1 / 64, training="none", seeds=[1], n=10, profile="quick", wall_time_s=0.1)
    data = finding.to_dict()
    data["versions"]["git_commit"] = commit
    return data


def _provenance(commit):
    return {"git_commit": commit, "dirty": False,
            "versions": {"python": "3.fixture", "torch": "fixture", "numpy": "fixture"},
            "machine": {"cpu": "Fixture CPU", "cores": 2, "memory_bytes": 2**34, "gpu": "none",
                        "torch_threads": 2, "os": "Linux-fixture"}}


def _catalogue(records):
    return {r["name"]: {"area": "fixture", "source": r["source"], "prediction": r["prediction"],
                        "unit": UNIT, "controls": ["biased_directions"]} for r in records}


def _write(root: Path, runs: list[dict]) -> Path:
    """Each run: {"commit", "check", "audit", "bench", "finding"} (lists of records); oldest first."""
    root.mkdir(parents=True, exist_ok=True)
    with open_store(root) as store:
        for run in runs:
            real = [r for r in run.get("check", []) if not r.get("control")]
            run_id = store.start_run("sparse-bench run --profile quick", profile="quick", seed=7,
                                     extra={"catalogue": _catalogue(real)},
                                     provenance=_provenance(run["commit"]))
            for kind in ("check", "audit", "bench", "finding"):
                if run.get(kind):
                    store.add(kind, run[kind], run_id)
            store.finish_run(run_id)
    return root


def write_results_fixture(root: Path, commit: str | None, stale_commit: str = "0" * 40,
                          long_rows: int = 0) -> Path:
    """Two runs at ``commit``. The newest holds checks (one pass with a figure and a table, one fail with a
    stated reason for no figure, one stale + escaping test, one caught control), an audit record, a finding
    and speed rows from a contended, noisy machine; the first run holds older values of the checks and an
    older ratio-table record. ``long_rows`` adds that many passing checks with long names and predictions."""
    table = {"title": "fixture table", "columns": ["width", "MSE"], "rows": [[1024, 0.0101], [2048, 0.0074]]}
    records = [
        _record(FIXTURE_CHECKS[0], True, commit, details={"figure": FIGURE, "table": table}),
        _record(FIXTURE_CHECKS[1], False, commit, details={"no_figure": NO_FIGURE}),
        _record(
            FIXTURE_CHECKS[2], True, stale_commit, prediction="<script>alert('x')</script> & <b>bold</b>"
        ),
    ] + _long_records(long_rows, commit)
    control = dict(records[0], control="biased_directions", verdict="fail")
    older = [dict(r, measured=0.47, verdict="pass") for r in records[:2]]
    return _write(root, [
        {"commit": commit, "check": older, "bench": [dict(RATIO_RECORD, R=1.5, timestamp=1.0)]},
        {"commit": commit, "check": records + [control],
         "audit": [{"name": FIXTURE_CHECKS[0], "pass_rate": 0.99, "seeds": 100, "profile": "quick"}],
         "finding": [finding_record(commit)],
         "bench": [dict(RATIO_RECORD, thread_scaling=IDLE), dict(MISSED_RECORD, thread_scaling=CONTENDED)]},
    ])


def write_clean_fixture(root: Path, commit: str | None, long_rows: int = 0) -> Path:
    """One run at ``commit`` with nothing to warn about: every check passes and catches its control, the
    speed rows come from an idle machine with narrow intervals, no finding."""
    records = [_record(FIXTURE_CHECKS[0], True, commit, details={"figure": FIGURE})] + _long_records(
        long_rows, commit)
    controls = [dict(r, control="biased_directions", verdict="fail") for r in records]
    ratio = dict(RATIO_RECORD, R_interval={"low": 1.10, "high": 1.14, "confidence": 0.961, "rounds": 9},
                 thread_scaling=IDLE)
    backward = dict(MISSED_RECORD, thread_scaling=IDLE,
                    R_interval={"low": 1.58, "high": 1.63, "confidence": 0.961, "rounds": 9})
    return _write(root, [{"commit": commit, "check": records + controls, "bench": [ratio, backward]}])
