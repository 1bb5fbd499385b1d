"""The false-alarm audit (theory_checks.audit): a fast run on one cheap check, and the full audit (slow)."""

import pytest

from theory_checks import audit
from sparse_bench.results import read_records

CHEAP_CHECK = "switch_loss_balanced_and_collapsed"  # exact identities, ~0.1 s per seed


def test_audit_two_seeds_one_check(tmp_path, capsys):
    code = audit.main(["--seeds", "2", "--check", CHEAP_CHECK, "--results", str(tmp_path), "--controls"])
    assert code == 0
    (record,) = read_records(tmp_path, "audit")
    assert record["name"] == CHEAP_CHECK and record["seeds"] == 2 and record["first_seed"] == 1
    assert record["passes"] == 2 and record["pass_rate"] == 1.0 and record["failed_seeds"] == []
    assert record["control_catch_rates"] == {"loss_missing_factor_E": 1.0}
    assert "pass rate 2/2" in capsys.readouterr().out


def test_audit_rejects_bad_arguments(tmp_path, capsys):
    assert audit.main(["--check", "no_such_check", "--results", str(tmp_path)]) == 2
    assert audit.main(["--check", "all", "--area", "no_such_area", "--results", str(tmp_path)]) == 2
    assert audit.main(["--seeds", "0"]) == 2
    assert audit.main(["--profile", "medium"]) == 2
    assert "sparse-bench audit: error: --profile 'medium': the theory checks take" in capsys.readouterr().err


@pytest.mark.slow
def test_every_routing_check_passes_the_100_seed_audit(tmp_path):
    """Every routing check passes on >= 99% of 100 fresh seeds (quick profile; ~15 min on one core)."""
    argv = ["--seeds", "100", "--check", "all", "--area", "routing", "--results", str(tmp_path)]
    assert audit.main(argv) == 0
