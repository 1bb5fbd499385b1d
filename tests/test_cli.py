"""The sparse-bench command line: success paths, exit codes, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from report_fixture import write_results_fixture
from sparse_bench import cli
from theory_checks.framework import REGISTRY, make_result, register_check

CHEAP_CHECK = "switch_loss_balanced_and_collapsed"


@pytest.fixture
def run_cli(capsys):
    """cli.main in-process (no torch import per call): exit code, stdout, stderr."""

    def run(*args):
        code = cli.main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_the_installed_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "sparse_bench", "list"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and CHEAP_CHECK in proc.stdout


def assert_one_line_error(code, err, pattern):
    assert code == cli.EXIT_USAGE
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert pattern in err


def test_list_names_every_check_and_its_prediction(run_cli):
    code, out, _ = run_cli("list")
    assert code == 0 and CHEAP_CHECK in out and "prediction" not in out.split(CHEAP_CHECK)[0][-5:]


def test_run_one_check_then_report(run_cli, tmp_path):
    results, out = tmp_path / "results", tmp_path / "site"
    code, stdout, _ = run_cli(
        "run", "--only", "checks", "--check", CHEAP_CHECK, "--results", str(results), "--seed", "3"
    )
    assert code == 0, stdout
    records = [json.loads(line) for line in (results / "checks.jsonl").read_text().splitlines()]
    real = [r for r in records if r["control"] is None]
    assert len(real) == 1 and real[0]["seed"] == 3 and real[0]["verdict"] == "pass"
    assert len(records) > 1 and all(r["verdict"] == "fail" for r in records if r["control"])
    assert json.loads((results / "run.json").read_text())["profile"] == "quick"
    assert "1 passed, 0 failed" in stdout
    code, stdout, _ = run_cli("report", "--results", str(results), "--out", str(out))
    assert code == 0 and (out / "index.html").exists()


def test_unknown_check(run_cli, tmp_path):
    code, _, err = run_cli("run", "--check", "no_such_check", "--results", str(tmp_path))
    assert_one_line_error(code, err, "unknown check(s): no_such_check")
    code, _, err = run_cli("audit", "--check", "no_such_check", "--seeds", "2", "--results", str(tmp_path))
    assert_one_line_error(code, err, "unknown check(s): no_such_check")


def test_report_on_missing_and_corrupt_results(run_cli, tmp_path):
    code, _, err = run_cli("report", "--results", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "does not exist")
    results = write_results_fixture(tmp_path / "results", commit=None)
    (results / "bench.jsonl").write_text('{"label": "x"}\n{not json}\n')
    code, _, err = run_cli("report", "--results", str(results), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "bench.jsonl, line 2")


def test_unwritable_output_directory(run_cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    results = write_results_fixture(tmp_path / "results", commit=None)
    code, _, err = run_cli("report", "--results", str(results), "--out", str(blocker / "sub"))
    assert_one_line_error(code, err, "cannot create directory")


@pytest.fixture
def failing_check():
    name = "cli_test_always_fails"

    @register_check(
        name=name, source="test", prediction="nothing", area="cli-test", controls={"same": lambda: {}}
    )
    def check(seed, profile="quick"):
        return make_result(name, passed=False, seed=seed, profile=profile, n=1, test="always fails")

    yield name
    REGISTRY.pop(name)


def test_run_exits_one_and_names_a_failing_check(tmp_path, failing_check, capsys):
    code = cli.main(
        ["run", "--only", "checks", "--check", failing_check, "--results", str(tmp_path), "--no-controls"]
    )
    out = capsys.readouterr().out
    assert code == cli.EXIT_CHECK_FAILED and f"FAIL {failing_check}" in out


@pytest.mark.parametrize("content,problem", [
    ('{"name": "a", "verd', "checks.jsonl, line 1: last line has no newline"),
    ('{"foo": 1}\n', "checks.jsonl, line 1: field 'name' must be a str"),
])
def test_run_refuses_a_corrupt_results_file_before_running(run_cli, tmp_path, content, problem):
    """A corrupt file the run would append to is reported (one line, exit 2) before any check runs."""
    (tmp_path / "checks.jsonl").write_text(content)
    code, out, err = run_cli("run", "--only", "checks", "--check", CHEAP_CHECK, "--results", str(tmp_path))
    assert_one_line_error(code, err, problem)
    assert "move it aside or repair it" in err and "checks (quick)" not in out
    (tmp_path / "audit.jsonl").write_text('{"name": ')
    code, _, err = run_cli("audit", "--check", CHEAP_CHECK, "--seeds", "1", "--results", str(tmp_path))
    assert_one_line_error(code, err, "audit.jsonl, line 1")


def test_report_names_an_unreadable_results_file_as_input(run_cli, tmp_path):
    results = write_results_fixture(tmp_path / "results", commit=None)
    (results / "audit.jsonl").unlink()
    (results / "audit.jsonl").mkdir()
    code, _, err = run_cli("report", "--results", str(results), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "cannot read results file")
    assert "audit.jsonl" in err and "cannot write" not in err
