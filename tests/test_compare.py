"""Comparing two runs (sparse_bench.results.compare and ``sparse-bench compare``): a change is flagged only
where the two runs' intervals separate, in the direction that makes it a regression or an improvement."""

from __future__ import annotations

import copy
import json

import pytest

from sparse_bench import cli
from sparse_bench.results import ResultsStore, StoreError
from sparse_bench.results.compare import CHANGED, IMPROVEMENT, REGRESSION, compare, figures, resolve_side

PROVENANCE = {"git_commit": "1234abcd" * 5, "dirty": False, "machine": {"cpu": "test"}, "versions": {}}


def interval(low, high):
    return {"low": low, "high": high, "confidence": 0.961, "rounds": 9}


def ratio_record(shape: str, R: float, low: float, high: float) -> dict:
    """A ratio-table record as run_ratio_table writes it (the fields compare reads), with one peer."""
    return {"kind": "moe_ratio_table", "name": f"moe_ratio_table/forward/{shape}", "direction": "forward",
            "profile": "quick", "R": R, "R_interval": interval(low, high), "time_us": 100.0 * R,
            "peers": {"hf_mixtral": {"speedup_of_ours": 2.0, "speedup_interval": interval(1.8, 2.2)},
                      "loop": {"skipped": "not asked"}}}


def check_record(name: str, verdict: str = "pass", measured: float = 0.5, ci=(0.45, 0.55),
                 control=None) -> dict:
    return {"name": name, "control": control, "profile": "quick", "seed": 1, "params": {}, "verdict": verdict,
            "measured": measured, "ci_low": ci[0], "ci_high": ci[1], "predicted": 0.5, "unit": "probability"}


BASELINE_BENCH = [
    ratio_record("E=8/k=2/T=512", 1.20, 1.15, 1.25),  # planted: R and its interval doubled in B
    ratio_record("E=64/k=2/T=512", 3.00, 2.70, 3.40),  # B's median differs, the intervals overlap
    ratio_record("E=8/k=1/T=4096", 1.10, 1.05, 1.16),  # the same in B
    {"kind": "component_ratio", "name": "component/lsh_over_topk", "ratio": 0.3,
     "interval": interval(0.28, 0.33), "target": "<= 0.5"},
]
BASELINE_CHECKS = [check_record("coin_is_fair"),
                   check_record("coin_is_fair", "fail", 0.9, (0.88, 0.92), "biased")]


def write_store(path, bench, checks, commit=PROVENANCE["git_commit"]):
    with ResultsStore(path) as store:
        run = store.start_run("sparse-bench run", profile="quick",
                              provenance={**PROVENANCE, "git_commit": commit})
        store.add("bench", bench, run)
        store.add("check", checks, run)
        store.finish_run(run)
    return path


@pytest.fixture
def planted(tmp_path):
    """Two stores, identical but for a 2x slowdown of one point (R and its interval doubled) and another
    point whose R moved within overlapping intervals."""
    bench = copy.deepcopy(BASELINE_BENCH)
    slowed, moved = bench[0], bench[1]
    slowed.update(R=2.40, R_interval=interval(2.30, 2.50))
    moved.update(R=3.25, R_interval=interval(2.95, 3.60))  # 8% higher, but inside A's [2.70, 3.40]
    a = write_store(tmp_path / "a", BASELINE_BENCH, BASELINE_CHECKS)
    b = write_store(tmp_path / "b", bench, BASELINE_CHECKS)
    return a, b


def test_a_planted_2x_slowdown_is_the_one_thing_flagged(planted):
    a, b = planted
    comparison = compare(str(a), str(b), a)
    flagged = [(row.name, row.label, row.flag) for row in comparison.rows if row.flag]
    assert flagged == [("moe_ratio_table/forward/E=8/k=2/T=512", "R", REGRESSION)]
    (row,) = [row for row in comparison.rows if row.flag]
    assert row.ratio.value == pytest.approx(2.0) and row.ratio.low == pytest.approx(2.30 / 1.25)
    moved = next(r for r in comparison.rows if r.name.endswith("E=64/k=2/T=512") and r.label == "R")
    assert moved.ratio.value == pytest.approx(3.25 / 3.0) and moved.flag is None
    # every figure of every measurement both runs hold is compared: R, the peer's speedup and the time per
    # ratio record, the component ratio, each check's measured value
    assert len(comparison.rows) == 3 * 3 + 1 + 2 and not comparison.only_a and not comparison.only_b


def test_the_cli_prints_every_row_and_flags_the_planted_one(planted, capsys):
    a, b = planted
    assert cli.main(["compare", str(a), str(b), "--results", str(a)]) == 0
    out = capsys.readouterr().out
    flagged = [line for line in out.splitlines() if "REGRESSION" in line or "IMPROVEMENT" in line]
    assert len(flagged) == 1 and "E=8/k=2/T=512 / R: 1.2 [1.15, 1.25] -> 2.4 [2.3, 2.5], B/A 2" in flagged[0]
    assert "12 figures compared: 1 regression(s), 0 improvement(s), 0 changed" in out
    assert "  coin_is_fair / biased / measured probability: 0.9 [0.88, 0.92] -> 0.9 [0.88, 0.92], B/A 1" in out
    assert cli.main(["compare", str(a), str(b), "--results", str(a), "--fail-on-regression"]) == 1
    assert cli.main(["compare", str(a), str(a), "--results", str(a), "--fail-on-regression"]) == 0


def test_json_output_parses_and_counts_the_flags(planted, capsys):
    a, b = planted
    assert cli.main(["compare", str(a), str(b), "--results", str(a), "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["regressions"] == 1 and document["improvements"] == 0
    assert [row["label"] for row in document["rows"] if row["flag"]] == ["R"]
    assert "figures compared" in captured.err  # the human lines go to stderr under --json


def test_direction_verdicts_and_threshold(tmp_path):
    """Faster R, a lower peer speedup, a check turning fail, a control no longer caught, a measured value
    moving beyond its interval (no direction), and the threshold silencing a small separated change."""
    bench = copy.deepcopy(BASELINE_BENCH)
    bench[0].update(R=0.60, R_interval=interval(0.55, 0.65))  # 2x faster
    bench[2]["peers"]["hf_mixtral"].update(speedup_of_ours=1.0, speedup_interval=interval(0.9, 1.1))
    bench[3].update(ratio=0.34, interval=interval(0.335, 0.345))  # 13% above A's [0.28, 0.33]
    checks = [check_record("coin_is_fair", measured=0.7, ci=(0.65, 0.75)),
              check_record("coin_is_fair", "pass", 0.5, (0.45, 0.55), "biased")]
    a = write_store(tmp_path / "a", BASELINE_BENCH, BASELINE_CHECKS)
    b = write_store(tmp_path / "b", bench, checks)
    flags = sorted((row.name, row.label, row.flag) for row in compare(str(a), str(b), a).rows if row.flag)
    assert flags == [
        ("coin_is_fair", "measured", CHANGED),  # still passing: the value moved, and has no better direction
        ("coin_is_fair", "measured", REGRESSION),  # the control: its planted defect is no longer caught
        ("component/lsh_over_topk", "ratio", REGRESSION),
        ("moe_ratio_table/forward/E=8/k=1/T=4096", "speedup over hf_mixtral", REGRESSION),
        ("moe_ratio_table/forward/E=8/k=2/T=512", "R", IMPROVEMENT),
    ]
    control = [row for row in compare(str(a), str(b), a).rows if row.verdict_a != row.verdict_b]
    assert [(row.verdict_a, row.verdict_b, row.flag) for row in control] == [("fail", "pass", REGRESSION)]
    silenced = {(row.name, row.label) for row in compare(str(a), str(b), a, threshold=0.2).rows if row.flag}
    assert ("component/lsh_over_topk", "ratio") not in silenced  # 1.13x < 1 + 0.2
    assert ("moe_ratio_table/forward/E=8/k=2/T=512", "R") in silenced  # 0.5x < 1 / 1.2


def test_a_check_turning_fail_is_a_regression(tmp_path):
    a = write_store(tmp_path / "a", [], BASELINE_CHECKS)
    b = write_store(tmp_path / "b", [], [check_record("coin_is_fair", "fail", 0.5, (0.45, 0.55)),
                                         BASELINE_CHECKS[1]])
    (row,) = [row for row in compare(str(a), str(b), a).rows if row.flag]
    assert (row.verdict_a, row.verdict_b, row.flag) == ("pass", "fail", REGRESSION)


def test_sides_by_run_id_commit_path_and_path_with_run(tmp_path):
    store = tmp_path / "store"
    write_store(store, BASELINE_BENCH, [], commit="aaaa1111" * 5)
    write_store(store, BASELINE_BENCH[:1], [], commit="bbbb2222" * 5)
    write_store(store, BASELINE_BENCH[:2], [], commit="bbbb2222" * 5)
    assert resolve_side("1", store).run.id == 1
    assert resolve_side("aaaa11", store).run.id == 1
    assert resolve_side("BBBB22", store).run.id == 3  # the newest run at that commit
    assert resolve_side(str(store), tmp_path).run.id == 3
    assert resolve_side(f"{store}:2", tmp_path).run.id == 2
    assert len(resolve_side(f"{store / 'results.sqlite'}:1", tmp_path).measurements) == 4
    with pytest.raises(StoreError, match="neither a run id or a commit"):
        resolve_side("cccc", store)
    with pytest.raises(StoreError, match="no run 9"):
        resolve_side(f"{store}:9", tmp_path)


def test_measurements_on_one_side_only_are_listed(tmp_path):
    a = write_store(tmp_path / "a", BASELINE_BENCH, [])
    b = write_store(tmp_path / "b", BASELINE_BENCH[1:], BASELINE_CHECKS[:1])
    comparison = compare(str(a), str(b), a)
    assert comparison.only_a == ["moe_ratio_table/forward/E=8/k=2/T=512"]
    assert comparison.only_b == ["coin_is_fair"]


def test_bad_references_are_one_line_usage_errors(tmp_path, capsys):
    a = write_store(tmp_path / "a", BASELINE_BENCH, [])
    assert cli.main(["compare", "1", "no_such_thing", "--results", str(a)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sparse-bench compare: error: 'no_such_thing' is neither")
    assert len(err.splitlines()) == 1


def test_figures_of_each_kind():
    audit = {"pass_rate": 0.99, "pass_rate_ci95": [0.95, 1.0]}
    assert [f.label for f in figures("audit", audit)] == ["pass rate"]
    assert figures("check", check_record("x"))[0].estimate.low == 0.45
    assert figures("check", check_record("x", ci=(None, None)))[0].estimate.has_interval is False
    slope = {"kind": "component_ratio", "ratio": 1.0, "target": "in [0.75, 1.25]"}
    assert figures("bench", slope)[0].better is None
    assert figures("bench", {"kind": "unknown"}) == []
