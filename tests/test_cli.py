"""The sparse-bench command line: run, list, audit, report and export through the installed check suites;
exit codes and one-line errors for bad input."""

from __future__ import annotations

import ast
import csv
import io
import json
import subprocess
import sys
from dataclasses import replace
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from report_fixture import write_results_fixture
from sparse_bench import cli, suites
from sparse_bench.results import CheckResult, ResultsStore, read_records

CHEAP_CHECK = "switch_loss_balanced_and_collapsed"  # exact identities, ~0.1 s per run
PROVENANCE = {"git_commit": "f00d" * 10, "dirty": False, "machine": {}, "versions": {}}
ROOT = Path(__file__).resolve().parents[1]


def assert_one_line_error(code, err, command, pattern):
    assert code == cli.EXIT_USAGE
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    prefix = "sparse-bench" + (f" {command}" if command else "") + ": error: "
    assert err.startswith(prefix) and pattern in err, err


class FakeSuite:
    """A sparse_bench.suites.Suite of one check that always fails (so its control is caught)."""

    NAME = "cli_test_always_fails"
    profiles = ("quick", "full")

    def catalogue(self):
        return {self.NAME: {"area": "cli-test", "source": "test", "prediction": "nothing", "unit": "widgets",
                            "controls": ["same"], "slow": False}}

    def run(self, name, control=None, seed=None, profile="quick"):
        return CheckResult(name=name, source="test", prediction="nothing", predicted=1.0, measured=2.0,
                           ci_low=1.5, ci_high=2.5, test="always fails", p_value=1e-9, margin=None,
                           alpha=1e-3, verdict="fail", n=1, seed=0 if seed is None else seed, profile=profile,
                           wall_time_s=0.0, control=control, unit="widgets")

    def audit(self, names, seeds, profile="quick", controls=False, jobs=1):
        for name in names:
            yield {"name": name, "passes": 0, "seeds": len(seeds), "pass_rate": 0.0,
                   "pass_rate_ci95": [0.0, 0.5], "meets_requirement": False}


@pytest.fixture
def fake_suite(monkeypatch):
    """A suite in this process only: runs using it take --jobs 1 (a worker process loads the installed
    suites)."""
    monkeypatch.setattr(suites, "load_suites", lambda: {"fake": FakeSuite()})
    return FakeSuite.NAME


def test_the_installed_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "sparse_bench", "list"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and CHEAP_CHECK in proc.stdout


def test_the_theory_checks_plug_in_through_their_entry_point():
    loaded = suites.load_suites()
    assert isinstance(loaded["theory"], suites.Suite)
    assert CHEAP_CHECK in suites.check_index(loaded)


def test_the_library_never_imports_theory_checks():
    """sparse_bench/ may name theory_checks in prose only: the checks reach it through their entry point."""
    importers = []
    for path in sorted((ROOT / "sparse_bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(module.split(".")[0] == "theory_checks" for module in modules):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == []


def test_list_names_every_check_with_its_prediction_and_the_presets(run_cli):
    code, out, _ = run_cli("list")
    line = next(line for line in out.splitlines() if line.strip().startswith(CHEAP_CHECK))
    assert code == 0 and "[routing, routing §C]: Switch loss" in line
    assert "controls: loss_missing_factor_E" in line and "mixtral-8x7b: d 4096, h 14336, E 8, k 2" in out
    assert "deepseek-v3: d 7168, h 2048, E 256, k 8, 1 shared" in out


def test_list_json_parses(run_cli):
    code, out, err = run_cli("list", "--json")
    document = json.loads(out)
    assert code == 0 and document["suites"]["theory"][CHEAP_CHECK]["controls"] == ["loss_missing_factor_E"]
    assert document["benchmarks"]["presets"]["switch-base"]["num_experts"] == 128 and "suite theory" in err


def test_without_a_suite_list_says_so_and_run_refuses_checks(run_cli, monkeypatch, tmp_path):
    monkeypatch.setattr(suites, "load_suites", lambda: {})
    code, out, _ = run_cli("list")
    assert code == 0 and "no check suite is installed" in out
    code, _, err = run_cli("run", "--only", "checks", "--results", tmp_path)
    assert_one_line_error(code, err, "run", "no check suite is installed")


def test_a_broken_suite_is_named(run_cli, monkeypatch):
    broken = EntryPoint(name="broken", value="no_such_module_here:SUITE", group=suites.ENTRY_POINT_GROUP)
    monkeypatch.setattr(suites, "entry_points", lambda group: [broken])
    code, _, err = run_cli("list")
    assert_one_line_error(code, err, "list", "suite 'broken' (no_such_module_here:SUITE) failed to load")


def test_run_one_check_prints_measured_vs_predicted_then_the_report(run_cli, tmp_path):
    results, site = tmp_path / "results", tmp_path / "site"
    code, out, _ = run_cli("run", "--only", "checks", "--check", CHEAP_CHECK, "--results", results,
                           "--seed", 3, "--report-dir", site)
    assert code == 0, out
    records = read_records(results, "check")
    real = [r for r in records if r["control"] is None]
    assert len(real) == 1 and real[0]["seed"] == 3 and real[0]["verdict"] == "pass"
    assert len(records) == 2 and all(r["verdict"] == "fail" for r in records if r["control"])
    lines = out.splitlines()  # stdout is no terminal here: one plain line per check and per control
    assert lines[0].startswith(f"PASS       {CHEAP_CHECK}: measured ")
    assert " vs predicted 0 relative error, p=-" in lines[0]
    assert lines[1].startswith(f"caught     {CHEAP_CHECK} / loss_missing_factor_E: measured 0.75 [")
    assert "1 checks, 1 passed, 0 failed" in out and (site / "index.html").exists()


def test_run_json_parses_and_keeps_progress_off_stdout(run_cli, tmp_path):
    code, out, err = run_cli("run", "--only", "checks", "--check", CHEAP_CHECK, "--no-controls", "--results",
                             tmp_path, "--json")
    document = json.loads(out)
    assert code == 0 and document["exit_status"] == 0 and document["failed"] == []
    assert [c["name"] for c in document["checks"]] == [CHEAP_CHECK] and document["run_id"] == 1
    assert f"PASS       {CHEAP_CHECK}" in err


def test_a_failing_check_exits_one_names_it_and_still_writes_the_report(run_cli, fake_suite, tmp_path):
    results, site = tmp_path / "results", tmp_path / "site"
    code, out, _ = run_cli("run", "--only", "checks", "--results", results, "--report-dir", site, "--jobs", 1)
    assert code == cli.EXIT_FAILED and (site / "index.html").exists()
    assert f"FAIL       {fake_suite}: measured 2 [1.5, 2.5] vs predicted 1 widgets, p=1e-09" in out
    assert f"  FAIL {fake_suite}: always fails" in out and f"caught     {fake_suite} / same" in out
    (run,) = [r for r in read_records(results, "check") if r["control"] is None]
    assert run["unit"] == "widgets"


def test_audit_of_a_failing_suite_exits_one(run_cli, fake_suite, tmp_path):
    code, out, _ = run_cli("audit", "--seeds", 3, "--results", tmp_path)
    assert code == cli.EXIT_FAILED and f"{fake_suite}: pass rate 0/3 = 0.0%" in out
    assert read_records(tmp_path, "audit")[0]["seeds"] == 3


def test_audit_one_cheap_check(run_cli, tmp_path):
    code, out, _ = run_cli("audit", "--seeds", 2, "--check", CHEAP_CHECK, "--controls", "--results", tmp_path,
                           "--json")
    document = json.loads(out)
    (record,) = read_records(tmp_path, "audit")
    assert code == 0 and record["passes"] == 2
    assert record["control_catch_rates"] == {"loss_missing_factor_E": 1.0}
    assert document["records"][0]["name"] == CHEAP_CHECK


@pytest.mark.parametrize("args, command, pattern", [
    (["run", "--check", "no_such_check"], "run", "unknown check(s): no_such_check"),
    (["audit", "--check", "no_such_check", "--seeds", "2"], "audit", "unknown check(s): no_such_check"),
    (["audit", "--seeds", "0"], "audit", "Invalid value for '--seeds': 0 is not in the range x>=1"),
    (["audit", "--area", "no_such_area"], "audit", "no checks in area 'no_such_area'"),
    (["run", "--only", "bench", "--check", CHEAP_CHECK], "run", "--check: --only bench runs no checks"),
    (["run", "--only", "checks", "--device", "cuda"], "run", "--device: --only checks runs no benchmarks"),
    (["run", "--profile", "medium"], "run", "--profile 'medium': the theory checks take quick, full"),
    (["audit", "--profile", "medium"], "audit", "--profile 'medium': the theory checks take quick, full"),
    (["run", "--profile", "paper", "--only", "bench"], "run",
     "--profile 'paper': the benchmarks take quick, full (give --only"),
    (["run", "--profile", "paper", "--device", "cpu"], "run",
     "--profile 'paper': the benchmarks take quick, full (give --only"),
    (["run", "--bogus"], "run", "No such option '--bogus'"),
    (["no_such_command"], "", "No such command 'no_such_command'"),
])
def test_bad_input_is_one_line_and_exit_two(run_cli, tmp_path, args, command, pattern):
    code, out, err = run_cli(*args, *(["--results", tmp_path] if command in ("run", "audit") else []))
    assert_one_line_error(code, err, command, pattern)
    assert "PASS" not in out


def test_the_old_entry_points_are_the_same_commands(capsys):
    from sparse_bench.bench.__main__ import main as bench_main
    from theory_checks.audit import main as audit_main

    assert audit_main(["--seeds", "0"]) == cli.EXIT_USAGE
    assert "sparse-bench audit: error: Invalid value for '--seeds'" in capsys.readouterr().err
    assert bench_main(["--tokens", "3"]) == cli.EXIT_USAGE
    assert "sparse-bench bench: error: --tokens sets the batch of a --preset" in capsys.readouterr().err


def test_report_on_missing_and_corrupt_results(run_cli, tmp_path):
    code, _, err = run_cli("report", "--results", tmp_path / "nothing", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "report", "does not exist")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.sqlite").write_text("not a database")
    code, _, err = run_cli("report", "--results", tmp_path / "bad", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "report", "is not a sparse-bench SQLite database")


def test_run_refuses_a_corrupt_store_before_running(run_cli, tmp_path):
    (tmp_path / "results.sqlite").write_text("not a database")
    code, out, err = run_cli("run", "--only", "checks", "--check", CHEAP_CHECK, "--results", tmp_path)
    assert_one_line_error(code, err, "run", "move it aside before running")
    assert out == ""


def test_unwritable_output_directory(run_cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    results = write_results_fixture(tmp_path / "results", commit=None)
    code, _, err = run_cli("report", "--results", results, "--out", blocker / "sub")
    assert_one_line_error(code, err, "report", "cannot create directory")


def test_export_csv_and_json(run_cli, tmp_path):
    check = FakeSuite().run(FakeSuite.NAME)
    with ResultsStore(tmp_path) as store:
        for _ in range(2):
            run = store.start_run("sparse-bench run", provenance=PROVENANCE)
            store.add("check", [check, replace(check, control="same", verdict="pass")], run)
            store.add("bench", [{"name": "moe_ratio_table/forward/x", "kind": "moe_ratio_table", "R": 1.5,
                                 "R_interval": {"low": 1.4, "high": 1.6}, "peers": {}}], run)
    code, out, _ = run_cli("export", "--results", tmp_path, "--kind", "check", "--run", 2)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(row["run_id"], row["control"], row["verdict"]) for row in rows] == [
        ("2", "", "fail"), ("2", "same", "pass")]
    assert rows[0]["figure"] == "measured" and float(rows[0]["low"]) == 1.5 and rows[0]["unit"] == "widgets"
    assert rows[0]["git_commit"] == PROVENANCE["git_commit"]
    code, out, _ = run_cli("export", "--results", tmp_path, "--json", "--run", 1)
    document = json.loads(out)
    assert code == 0 and [run["id"] for run in document["runs"]] == [1] and len(document["measurements"]) == 3
    code, _, err = run_cli("export", "--results", tmp_path, "--run", 5)
    assert_one_line_error(code, err, "export", "no run 5")


def test_catalogue_of_a_run_is_every_suite_check(run_cli, fake_suite, tmp_path):
    run_cli("run", "--only", "checks", "--no-controls", "--results", tmp_path, "--jobs", 1)
    from sparse_bench.results import open_store

    with open_store(tmp_path, create=False) as store:
        (run,) = store.runs()
    assert run.extra["catalogue"] == FakeSuite().catalogue() and run.profile == "quick"
    assert run.command == f"sparse-bench run --only checks --no-controls --results {tmp_path} --jobs 1"


def test_a_crashing_theory_check_is_a_failing_record():
    from theory_checks.suite import SUITE

    record = SUITE.run(CHEAP_CHECK, control="no_such_control")
    assert record.verdict == "fail" and record.test.startswith("raised KeyError") and record.n == 0
    assert record.control == "no_such_control"


def test_warnings_are_summarised_once_per_message(capsys):
    """45 noisy-timing warnings of one bench run become one line per message, with the subjects and the range
    of each number; deprecations stay ignored as Python's default filters have them."""
    import warnings

    from sparse_bench.cli.options import Output, collected_warnings, report_warnings, summarise_warnings

    with collected_warnings() as caught:
        for label, spread in [("floor", 41), ("ours", 236), ("floor", 131), ("peer hf_mixtral", 585)]:
            warnings.warn(f"{label}: IQR is {spread}% of the median; timings are noisy")
        warnings.warn("E=8 k=2 forward: the floor GEMM ran 0.62x as fast on 2 threads as on one")
        warnings.warn("E=64 k=2 forward: the floor GEMM ran 0.90x as fast on 2 threads as on one")
        warnings.warn("plain", RuntimeWarning)
        warnings.warn("old", DeprecationWarning)
    report_warnings(Output(), summarise_warnings(caught))
    assert capsys.readouterr().out.splitlines() == [
        "7 warning(s), by message:",
        "     4x UserWarning: IQR is 41-585% of the median; timings are noisy (floor, ours, peer hf_mixtral)",
        "     2x UserWarning: the floor GEMM ran 0.62-0.90x as fast on 2 threads as on one (E=8 k=2 forward, "
        "E=64 k=2 forward)",
        "     1x RuntimeWarning: plain",
    ]
