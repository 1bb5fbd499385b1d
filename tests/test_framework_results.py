"""Results files: atomic append, crash safety, corruption detection, CheckResult round trip."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from theory_checks.framework import (
    CheckResult,
    CorruptResultsError,
    append_records,
    default_results_path,
    read_check_results,
    read_records,
)


def _result(name="demo", verdict="pass", **kw) -> CheckResult:
    base = dict(
        name=name, source="test", prediction="p = 1/2", predicted=0.5, measured=0.51, ci_low=0.4, ci_high=0.6,
        test="exact binomial", p_value=0.8, margin=None, alpha=1e-3, verdict=verdict, n=100, seed=1,
        profile="quick", wall_time_s=0.01, params={"T": 8}, details={"curve": [1.0, 2.0]}, versions={},
    )
    base.update(kw)
    return CheckResult(**base)


def test_round_trip_and_append(tmp_path):
    path = tmp_path / "sub" / "checks.jsonl"
    a, b = _result("a"), _result("b", verdict="fail", measured=float("inf"), control="broken")
    append_records(path, [a])
    append_records(path, [b, {"kind": "audit", "pass_rate": 1.0}])
    records = read_records(path)
    assert [r.get("name") for r in records] == ["a", "b", None]
    assert records[1]["measured"] == "inf"
    back = read_check_results(path)
    assert back[0] == a
    assert back[1].measured == float("inf") and back[1].control == "broken"
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


def test_missing_file_reads_empty(tmp_path):
    assert read_records(tmp_path / "none.jsonl") == []


def test_result_rejects_bad_verdict():
    with pytest.raises(ValueError, match="verdict"):
        _result(verdict="maybe")


@pytest.mark.parametrize(
    "content, line, reason",
    [
        (b'{"a": 1}\n{"a": 2', 2, "partial write"),
        (b'{"a": 1}\n{"a": \n', 2, "invalid JSON"),
        (b'{"a": 1}\n[1, 2]\n', 2, "JSON object"),
        (b'{"a": 1}\n\xff\xfe\n', 2, "UTF-8"),
    ],
)
def test_corrupt_file_is_detected_with_file_and_line(tmp_path, content, line, reason):
    path = tmp_path / "checks.jsonl"
    path.write_bytes(content)
    with pytest.raises(CorruptResultsError, match=reason) as err:
        read_records(path)
    assert err.value.line == line and err.value.path == path
    assert str(path) in str(err.value) and f"line {line}" in str(err.value)
    with pytest.raises(CorruptResultsError):  # never append to a broken file
        append_records(path, [_result()])
    assert path.read_bytes() == content


def test_exception_mid_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "checks.jsonl"
    append_records(path, [_result("first")])
    before = path.read_bytes()

    def boom(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk gone"):
        append_records(path, [_result("second")])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checks.jsonl", "checks.jsonl.lock"]


def test_process_killed_mid_write_leaves_a_readable_file(tmp_path):
    """A real crash: the child dies (os._exit) after writing half of the new file, before the rename."""
    path = tmp_path / "checks.jsonl"
    append_records(path, [_result("first")])
    before = path.read_bytes()
    script = textwrap.dedent(
        f"""
        import os
        from theory_checks.framework import results_io
        real_fdopen = os.fdopen
        class HalfWriter:
            def __init__(self, f): self.f = f
            def __enter__(self): return self
            def __exit__(self, *a): return False
            def write(self, data):
                self.f.write(data[: len(data) // 2]); self.f.flush(); os._exit(3)
        results_io.os.fdopen = lambda fd, mode: HalfWriter(real_fdopen(fd, mode))
        results_io.append_records({str(path)!r}, [{{"name": "second", "verdict": "pass"}}])
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 3, proc.stderr.decode()
    assert path.read_bytes() == before
    assert [r["name"] for r in read_records(path)] == ["first"]
    append_records(path, [_result("third")])  # the leftover temp file does not get in the way
    assert [r["name"] for r in read_records(path)] == ["first", "third"]


def test_default_results_path_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_BENCH_RESULTS", str(tmp_path / "r"))
    assert default_results_path() == tmp_path / "r" / "checks.jsonl"
    monkeypatch.delenv("SPARSE_BENCH_RESULTS")
    assert default_results_path() == Path("results") / "checks.jsonl"


def test_non_json_record_rejected(tmp_path):
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        append_records(tmp_path / "x.jsonl", [{"f": object()}])
    json.dumps(_result().to_dict(), allow_nan=False)
