"""``sparse-bench run`` and ``list`` with the findings of the installed suites: each finding measured at the
run's profile with its planted settings, stored as kind "finding" in the run; a planted setting that does not
read as planted, or a finding that raises, fails the run; the real verdict never does."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest

from sparse_bench import cli, suites
from sparse_bench.results import open_store, read_records
from sparse_bench.results.records import FINDING_VERDICTS, FindingResult

FINDING = "table1_dense_flat"  # the cheapest Table 1 finding at quick: ~13 s with both planted settings
PLANTED = {"holds": "reproduced", "fails": "not reproduced"}


def test_run_one_finding_stores_it_and_its_planted_settings(run_cli, tmp_path):
    """In two worker processes (the suite loaded there afresh): records stored and printed in the order one
    process gives."""
    code, out, _ = run_cli("run", "--only", "findings", "--finding", FINDING, "--results", tmp_path,
                           "--jobs", 2)
    assert code == cli.EXIT_OK, out
    records = read_records(tmp_path, "finding")
    by_control = {which: [r for r in records if r["control"] == which] for which in (None, *PLANTED)}
    assert len(records) == sum(len(got) for got in by_control.values()) and all(by_control.values())
    for which, expected in PLANTED.items():
        assert {r["verdict"] for r in by_control[which]} == {expected}, which
    real = by_control[None]
    assert all(r["name"] == FINDING and r["profile"] == "quick" and r["verdict"] in FINDING_VERDICTS
               for r in real)
    lines = out.splitlines()  # one line per record, in the order stored
    for line, record in zip(lines, real):
        params = ", ".join(f"{key}={value}" for key, value in record["params"].items())
        assert line.startswith(f"{record['verdict'].upper():<14} {FINDING} ({params}): ours "), line
        assert " vs the source's 1.031 MSE ratio (highest / lowest FLOPs); quick: 1/64 of the source" in line
    assert sum(line.startswith("as planted     ") for line in lines) == len(records) - len(real)
    assert f"findings (quick): 1 findings, {len(real)} records: " in out
    assert "0 planted setting record(s) not as planted" in out and "0 checks" in out
    with open_store(tmp_path, create=False) as store:
        (run,) = store.runs()
    assert run.extra["findings"][FINDING]["expected"] == PLANTED and "catalogue" in run.extra


def _record(name: str, verdict: str, control: str | None, profile: str) -> FindingResult:
    """A record reading ``verdict``; "raised": the inconclusive record of a finding that raised."""
    raised = {"raised": "RuntimeError: planted"} if verdict == "raised" else {}
    return FindingResult(name=name, source="test", claim="a claim", reading="as is", source_value=1.0,
                         measured=2.0, ci_low=1.5, ci_high=2.5, unit="widgets",
                         test="raised RuntimeError: planted" if raised else "planted by the test",
                         decision="below 1", verdict="inconclusive" if raised else verdict,
                         scale="test scale", scale_fraction=0.25, training="none", seeds=[1, 2], n=2,
                         profile=profile, wall_time_s=0.0, params={"target": "t"}, details=raised,
                         control=control)


class FakeFindingSuite:
    """A Suite with no checks and one finding, which reads ``verdicts[control]`` (None: the real one;
    "raised": the record of a finding that raised)."""

    NAME = "cli_test_finding"
    profiles = ("quick", "full", "paper")

    def __init__(self, verdicts: dict):
        self.verdicts = verdicts

    def catalogue(self):
        return {}

    def run(self, name, control=None, seed=None, profile="quick"):
        raise AssertionError("the fake suite has no checks")

    def audit(self, names, seeds, profile="quick", controls=False, jobs=1):
        raise AssertionError("the fake suite has no checks")

    def findings(self):
        return {self.NAME: {"source": "test", "claim": "a claim", "unit": "widgets",
                            "controls": list(PLANTED), "expected": dict(PLANTED),
                            "scales": {p: {"fraction": 0.25, "description": p} for p in self.profiles}}}

    def run_finding(self, name, control=None, profile="quick"):
        return [_record(name, self.verdicts[control], control, profile)]


def _fake(monkeypatch, verdicts):
    """The fake suite, in this process only: runs using it take --jobs 1 (a worker process loads the
    installed suites)."""
    monkeypatch.setattr(suites, "load_suites", lambda: {"fake": FakeFindingSuite(verdicts)})
    return FakeFindingSuite.NAME


def test_a_real_verdict_never_fails_the_run(run_cli, monkeypatch, tmp_path):
    name = _fake(monkeypatch, {None: "not reproduced", **PLANTED})
    code, out, _ = run_cli("run", "--only", "checks", "--profile", "paper", "--results", tmp_path,
                           "--jobs", 1)
    assert code == cli.EXIT_OK, out
    assert out.splitlines()[0] == (f"NOT REPRODUCED {name} (target=t): ours 2 [1.5, 2.5] vs the source's 1 "
                                   f"widgets; paper: 1/4 of the source's scale (0.0 s)")
    assert f"as planted     {name} / holds (target=t): reproduced, ours 2" in out
    assert [r["profile"] for r in read_records(tmp_path, "finding")] == ["paper", "paper", "paper"]


def test_a_planted_setting_not_read_as_planted_fails_the_run_and_is_named(run_cli, monkeypatch, tmp_path):
    name = _fake(monkeypatch, {None: "reproduced", "holds": "inconclusive", "fails": "not reproduced"})
    code, out, _ = run_cli("run", "--only", "findings", "--results", tmp_path, "--json", "--jobs", 1)
    document = json.loads(out)
    assert code == cli.EXIT_FAILED and document["exit_status"] == cli.EXIT_FAILED
    assert document["findings_uncaught"] == [[name, "holds", {"target": "t"}]]
    assert [r["control"] for r in document["findings"]] == [None, "holds", "fails"]
    code, out, _ = run_cli("run", "--only", "findings", "--results", tmp_path, "--jobs", 1)
    assert code == cli.EXIT_FAILED
    assert f"NOT AS PLANTED {name} / holds (target=t): inconclusive (must read reproduced), ours 2" in out
    assert (f"  FINDING CONTROL NOT AS PLANTED {name} / holds {{'target': 't'}}: read inconclusive, planted "
            f"to read reproduced") in out


def test_a_finding_that_raises_fails_the_run(run_cli, monkeypatch, tmp_path):
    name = _fake(monkeypatch, {None: "raised", **PLANTED})
    code, out, _ = run_cli("run", "--only", "findings", "--no-controls", "--results", tmp_path, "--jobs", 1)
    assert code == cli.EXIT_FAILED
    assert out.splitlines()[0] == f"INCONCLUSIVE   {name} (target=t): raised RuntimeError: planted"
    assert f"  FINDING RAISED {name}: raised RuntimeError: planted" in out
    assert [r["control"] for r in read_records(tmp_path, "finding")] == [None]


def test_a_crashing_theory_finding_is_an_inconclusive_record_naming_the_exception():
    from theory_checks.suite import SUITE

    (record,) = SUITE.run_finding(FINDING, control="no_such_control")
    assert record.verdict == "inconclusive" and record.test.startswith("raised KeyError") and record.n == 0
    assert record.control == "no_such_control" and record.details["raised"].startswith("KeyError")


class HalfFindingSuite:
    """Checks' protocol, plus findings() without run_finding()."""

    profiles = ("quick", "full")

    def catalogue(self):
        return {}

    def run(self, name, control=None, seed=None, profile="quick"):
        raise AssertionError

    def audit(self, names, seeds, profile="quick", controls=False, jobs=1):
        raise AssertionError

    def findings(self):
        return {}


HALF_SUITE = HalfFindingSuite()


def test_findings_are_optional_but_come_as_a_pair(monkeypatch):
    half = EntryPoint(name="half", value=f"{__name__}:HALF_SUITE", group=suites.ENTRY_POINT_GROUP)
    monkeypatch.setattr(suites, "entry_points", lambda group: [half])
    with pytest.raises(suites.SuiteError, match="suite 'half' .* has only one of findings"):
        suites.load_suites()
    monkeypatch.delattr(HalfFindingSuite, "findings")
    assert suites.finding_index(suites.load_suites()) == {}  # a suite without findings is still a suite


def test_list_names_every_finding_with_its_claim_source_and_scales(run_cli):
    from theory_checks.findings import load_all_findings

    code, out, _ = run_cli("list")
    line = next(line for line in out.splitlines() if line.strip().startswith(FINDING))
    assert code == 0 and f"suite theory: {len(load_all_findings())} findings" in out
    assert "[Baykal et al. 2022, Table 1" in line and "the dense model's eval MSE stays flat" in line
    assert "scale (of the source's): quick 1/64, full 1/8, paper 1; " in line
    assert line.endswith("planted: holds -> reproduced, fails -> not reproduced")
    code, out, _ = run_cli("list", "--json")
    entry = json.loads(out)["findings"]["theory"][FINDING]
    assert code == 0 and entry["expected"] == PLANTED and entry["scales"]["paper"]["fraction"] == 1


@pytest.mark.parametrize("args, pattern", [
    (["--finding", "no_such_finding"], "unknown finding(s): no_such_finding"),
    (["--only", "findings", "--check", "x"], "--check: --only findings runs no checks"),
    (["--only", "bench", "--finding", FINDING], "--finding: --only bench runs no checks"),
    (["--only", "findings", "--device", "cuda"], "--device: --only findings runs no benchmarks"),
])
def test_bad_finding_input_is_one_line(run_cli, tmp_path, args, pattern):
    code, out, err = run_cli("run", *args, "--results", tmp_path)
    assert code == cli.EXIT_USAGE and err.startswith("sparse-bench run: error: ") and pattern in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""
