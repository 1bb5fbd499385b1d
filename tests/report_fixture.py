"""A fixed, small results store for the report and CLI tests (built with the library's own writer)."""

from __future__ import annotations

from pathlib import Path

from sparse_bench.results import open_store
from theory_checks.framework import make_result

FIXTURE_CHECKS = ("fixture_collision_law", "fixture_failing_check", "fixture_escaping <b>&")
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


RATIO_RECORD = {  # the shape sparse_bench.bench writes; the second copy above is older and must not be shown
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


def _record(name, passed, commit, **extra):
    base = make_result(
        name,
        passed=passed,
        seed=7,
        profile="quick",
        n=1000,
        test="exact binomial",
        predicted=0.5,
        measured=0.51 if passed else 0.9,
        ci=(0.48, 0.54) if passed else (0.88, 0.92),
        p_value=0.4 if passed else 1e-9,
        source="fixture §0",
        prediction=extra.pop("prediction", "P = 1/2"),
        details=extra.pop("details", {}),
    )
    data = base.to_dict()
    data["versions"]["git_commit"] = commit
    return data


def write_results_fixture(root: Path, commit: str | None, stale_commit: str = "0" * 40) -> Path:
    """One run at ``commit`` holding checks (one pass with a figure and a table, one fail, one stale +
    escaping test, one caught control), an audit record and speed rows, with its catalogue of checks."""
    root.mkdir(parents=True, exist_ok=True)
    table = {"title": "fixture table", "columns": ["width", "MSE"], "rows": [[1024, 0.0101], [2048, 0.0074]]}
    records = [
        _record(FIXTURE_CHECKS[0], True, commit, details={"figure": FIGURE, "table": table}),
        _record(FIXTURE_CHECKS[1], False, commit),
        _record(
            FIXTURE_CHECKS[2], True, stale_commit, prediction="<script>alert('x')</script> & <b>bold</b>"
        ),
    ]
    control = dict(records[0], control="biased_directions", verdict="fail")
    catalogue = {r["name"]: {"area": "fixture", "source": r["source"], "prediction": r["prediction"],
                             "unit": None, "controls": ["biased_directions"]} for r in records}
    provenance = {"git_commit": commit, "dirty": False, "versions": {"torch": "fixture"},
                  "machine": {"cpu": "Fixture CPU", "cores": 2, "memory_bytes": 2**34, "gpu": "none",
                              "torch_threads": 2, "os": "Linux-fixture"}}
    with open_store(root) as store:
        run = store.start_run("sparse-bench run --profile quick", profile="quick", extra={"catalogue": catalogue},
                              provenance=provenance)
        store.add("check", records + [control], run)
        store.add("audit", [{"name": FIXTURE_CHECKS[0], "pass_rate": 0.99, "seeds": 100, "profile": "quick"}],
                  run)
        store.add("bench", [dict(RATIO_RECORD, R=1.5, timestamp=1.0), RATIO_RECORD, MISSED_RECORD], run)
        store.finish_run(run)
    return root
