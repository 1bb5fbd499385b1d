"""The results store: round trips, bad files named, legacy import once, concurrent writers and writers killed
mid-write (SIGKILL) losing no committed measurement and leaving no torn row."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sparse_bench.results import (
    CheckResult,
    StoreError,
    open_store,
    read_records,
    results_dir,
    store_path,
)

ROOT = Path(__file__).resolve().parents[1]
PROVENANCE = {"git_commit": "abc", "dirty": False, "machine": {"cpu": "test"}, "versions": {"torch": "x"}}


def _result(name="demo", verdict="pass", **kw) -> CheckResult:
    base = dict(
        name=name, source="test", prediction="p = 1/2", predicted=0.5, measured=0.51, ci_low=0.4, ci_high=0.6,
        test="exact binomial", p_value=0.8, margin=None, alpha=1e-3, verdict=verdict, n=100, seed=1,
        profile="quick", wall_time_s=0.01, params={"T": 8}, details={"curve": [1.0, 2.0]}, versions={},
    )
    base.update(kw)
    return CheckResult(**base)


def test_round_trip_runs_and_measurements(tmp_path):
    a, b = _result("a"), _result("b", verdict="fail", measured=float("inf"), control="broken", unit="probability")
    with open_store(tmp_path / "sub") as store:
        run = store.start_run("pytest", profile="quick", seed=3, extra={"catalogue": {"a": {}}},
                              provenance=PROVENANCE)
        assert store.add("check", [a, b], run) == 2
        store.add("bench", [{"name": "r", "kind": "moe_ratio_table", "R": 1.5}], run)
        store.finish_run(run, {"exit": 0})
    with open_store(tmp_path / "sub", create=False) as store:
        checks = store.read("check").records
        assert [CheckResult.from_dict(r) for r in checks][0] == a
        back = CheckResult.from_dict(checks[1])
        assert back.measured == float("inf") and back.control == "broken" and back.unit == "probability"
        (only,) = store.runs()
        assert (only.command, only.profile, only.seed, only.git_commit, only.dirty) == ("pytest", "quick", 3,
                                                                                       "abc", False)
        assert only.extra == {"catalogue": {"a": {}}, "exit": 0} and only.finished >= only.started
        assert only.machine == {"cpu": "test"}
        assert [m.record["R"] for m in store.read("bench").measurements] == [1.5]
        exported = json.loads(json.dumps(store.export()))
    assert [m["name"] for m in exported["measurements"]] == ["a", "b", "r"]
    assert exported["runs"][0]["id"] == 1 and exported["skipped"] == []


def test_latest_keeps_the_newest_measurement_of_each_spec(tmp_path):
    with open_store(tmp_path) as store:
        for value in (1.0, 2.0):
            run = store.start_run("x", provenance=PROVENANCE)
            store.add("check", [_result("a", measured=value), _result("a", measured=value, seed=2)], run)
        latest = store.latest("check").records
    assert sorted((r["seed"], r["measured"]) for r in latest) == [(1, 2.0), (2, 2.0)]


def test_an_invalid_record_writes_nothing(tmp_path):
    with open_store(tmp_path) as store:
        run = store.start_run("x", provenance=PROVENANCE)
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            store.add("bench", [{"name": "ok"}, {"name": "bad", "f": object()}], run)
        with pytest.raises(ValueError, match="string 'name'"):
            store.add("bench", [{"name": "ok"}, {"R": 1}], run)
        with pytest.raises(ValueError, match="kind must be one of"):
            store.add("speed", [{"name": "ok"}], run)
        with pytest.raises(StoreError, match="no run 99"):
            store.add("bench", [{"name": "ok"}], 99)
        assert store.read().measurements == []


def test_arguments_sqlite_cannot_hold_get_clear_errors(tmp_path):
    """Found by fuzzing: a seed or run id beyond 64 bits raised sqlite3's OverflowError from inside the store."""
    with open_store(tmp_path) as store:
        with pytest.raises(ValueError, match="seed must fit in 64 bits"):
            store.start_run("x", seed=2**63, provenance=PROVENANCE)
        with pytest.raises(TypeError, match="seed must be an int or None"):
            store.start_run("x", seed=True, provenance=PROVENANCE)
        with pytest.raises(TypeError, match="command must be a str"):
            store.start_run(None, provenance=PROVENANCE)
        run = store.start_run("x", provenance=PROVENANCE)
        for call in (lambda: store.add("bench", [{"name": "a"}], 2**70), lambda: store.read(run_id=-(2**64)),
                     lambda: store.finish_run(2**63), lambda: store.run(2**63)):
            with pytest.raises(ValueError, match="run_id must fit in 64 bits"):
                call()
        assert store.read().measurements == [] and [r.id for r in store.runs()] == [run]


@pytest.mark.parametrize("content, message", [
    (b"hello, not a database" * 100, "not a sparse-bench SQLite database"),
    (b"\x00" * 4096, "not a sparse-bench SQLite database"),
])
def test_a_file_that_is_not_sqlite_is_named(tmp_path, content, message):
    path = tmp_path / "results.sqlite"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=message) as error:
        open_store(tmp_path)
    assert str(path) in str(error.value)
    assert path.read_bytes() == content  # never overwritten


def test_another_applications_database_is_refused(tmp_path):
    path = tmp_path / "results.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(StoreError, match="another application .*songs"):
        open_store(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('application', 'other')")
    with pytest.raises(StoreError, match="another application"):
        open_store(tmp_path)


def test_a_newer_schema_is_refused(tmp_path):
    with open_store(tmp_path) as store:
        store.set_meta("schema_version", "99")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        open_store(tmp_path)


def test_missing_store_and_directory_in_its_place(tmp_path):
    with pytest.raises(StoreError, match="no results store"):
        open_store(tmp_path / "absent", create=False)
    (tmp_path / "results.sqlite").mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)


def test_the_reader_skips_and_reports_malformed_rows(tmp_path):
    with open_store(tmp_path) as store:
        run = store.start_run("x", provenance=PROVENANCE)
        store.add("bench", [{"name": "good"}], run)
    with sqlite3.connect(tmp_path / "results.sqlite") as db:  # what a foreign writer might leave
        db.execute("INSERT INTO measurements (run_id, kind, name, spec, record, created) "
                   "VALUES (1, 'bench', 'torn', '{}', '{\"name\": \"to', 0)")
        db.execute("INSERT INTO measurements (run_id, kind, name, spec, record, created) "
                   "VALUES (1, 'bench', 'other', '{}', '[1, 2]', 0)")
    with open_store(tmp_path) as store:
        result = store.read("bench")
    assert result.records == [{"name": "good"}]
    assert [(row, reason.split(" (")[0]) for row, reason in result.skipped] == [
        (2, "record is not JSON"), (3, "record is not an object with the row's name")]


def test_legacy_json_lines_are_imported_once(tmp_path):
    (tmp_path / "checks.jsonl").write_text(json.dumps(_result("old").to_dict()) + "\n")
    (tmp_path / "bench.jsonl").write_text('{"name": "r", "kind": "moe_ratio_table"}\n')
    for _ in range(2):
        with open_store(tmp_path) as store:
            assert [r["name"] for r in store.read("check").records] == ["old"]
            assert [r["name"] for r in store.read("bench").records] == ["r"]
    with open(tmp_path / "checks.jsonl", "a") as handle:  # a changed file is imported again, as a new run
        handle.write(json.dumps(_result("newer").to_dict()) + "\n")
    with open_store(tmp_path) as store:
        assert [r["name"] for r in store.read("check").records] == ["old", "old", "newer"]
        assert [run.command for run in store.runs()] == ["import checks.jsonl", "import bench.jsonl",
                                                         "import checks.jsonl"]


@pytest.mark.parametrize("content, line, reason", [
    (b'{"name": "a"}\n{"name": "b"', 2, "partial write"),
    (b'{"name": "a"}\n{"name": \n', 2, "invalid JSON"),
    (b'{"name": "a"}\n[1, 2]\n', 2, "JSON object"),
    (b'{"name": "a"}\n\xff\xfe\n', 2, "UTF-8"),
])
def test_a_corrupt_legacy_file_is_named_with_its_line(tmp_path, content, line, reason):
    (tmp_path / "audit.jsonl").write_bytes(content)
    with pytest.raises(StoreError, match=reason) as error:
        open_store(tmp_path)
    assert f"audit.jsonl, line {line}" in str(error.value)


def test_locations_and_environment(tmp_path, monkeypatch):
    assert store_path(tmp_path) == tmp_path / "results.sqlite"
    assert store_path(tmp_path / "mine.sqlite") == tmp_path / "mine.sqlite"
    monkeypatch.setenv("SPARSE_BENCH_RESULTS", str(tmp_path / "r"))
    assert results_dir() == tmp_path / "r"
    monkeypatch.delenv("SPARSE_BENCH_RESULTS")
    assert results_dir() == Path("results")


# -- faults: concurrent writers, writers killed mid-write -------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from sparse_bench.results import open_store
    location, tag, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    acks = open(sys.argv[5], "a", buffering=1) if len(sys.argv) > 5 else None
    with open_store(location) as store:
        run = store.start_run(f"writer {tag}", provenance={"machine": {}, "versions": {}})
        for i in range(count):
            records = [{"name": f"{tag}-{i}-{j}", "payload": "x" * 2000, "i": i, "j": j} for j in range(batch)]
            store.add("bench", records, run)
            if acks:  # written only after the transaction committed
                acks.write(f"{i}\\n")
""")


def _writer(tmp_path, tag, count, batch, acks=None) -> subprocess.Popen:
    args = [sys.executable, "-c", WRITER, str(tmp_path), tag, str(count), str(batch)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(args + ([str(acks)] if acks else []), env=env, stderr=subprocess.PIPE)


def _check_whole(records: list[dict], batch: int) -> dict[str, set[int]]:
    """Every batch whole (all its rows or none): returns the committed batch numbers of each writer."""
    seen: dict[tuple[str, int], set[int]] = {}
    for record in records:
        tag = record["name"].split("-")[0]
        assert record["payload"] == "x" * 2000, f"torn row {record['name']}"
        seen.setdefault((tag, record["i"]), set()).add(record["j"])
    for (tag, i), rows in seen.items():
        assert rows == set(range(batch)), f"batch {i} of writer {tag} is partial: {sorted(rows)}"
    batches: dict[str, set[int]] = {}
    for tag, i in seen:
        batches.setdefault(tag, set()).add(i)
    return batches


def _concurrent_writers(tmp_path, writers: int, count: int, batch: int) -> None:
    procs = [_writer(tmp_path, f"w{n}", count, batch) for n in range(writers)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    batches = _check_whole(read_records(tmp_path, "bench"), batch)
    assert batches == {f"w{n}": set(range(count)) for n in range(writers)}


def _killed_writers(tmp_path, rounds: int, batch: int, seed: int) -> None:
    import random

    rng = random.Random(seed)
    for r in range(rounds):
        acks = tmp_path / f"acks{r}"
        proc = _writer(tmp_path, f"k{r}", 10_000, batch, acks)
        deadline = time.monotonic() + 120
        while not (acks.exists() and acks.read_text()):  # a first commit, then kill inside a later one
            assert proc.poll() is None and time.monotonic() < deadline, "writer never committed"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        with open_store(tmp_path) as store:  # the store opens, reads whole rows and takes new writes
            result = store.read("bench")
        assert result.skipped == []
        acknowledged = {int(line) for line in acks.read_text().split()}
        committed = _check_whole(result.records, batch).get(f"k{r}", set())
        assert acknowledged <= committed, f"acknowledged batches lost: {sorted(acknowledged - committed)}"
        assert len(committed - acknowledged) <= 1  # at most the one committed as the kill landed
        assert committed == set(range(len(committed)))  # in order, no gap


def test_concurrent_writers_lose_nothing(tmp_path):
    _concurrent_writers(tmp_path, writers=3, count=20, batch=5)


def test_writers_killed_mid_write_lose_no_committed_measurement(tmp_path):
    _killed_writers(tmp_path, rounds=2, batch=50, seed=0)


@pytest.mark.slow
def test_many_concurrent_writers_lose_nothing(tmp_path):
    _concurrent_writers(tmp_path, writers=8, count=200, batch=10)


@pytest.mark.slow
def test_many_writers_killed_mid_write(tmp_path):
    _killed_writers(tmp_path, rounds=20, batch=200, seed=1)


def test_finding_verdicts_from_intervals_and_round_trip(tmp_path):
    from sparse_bench.results import FindingResult, interval_verdict

    assert interval_verdict(0.5, 0.9, 1.0) == "reproduced"
    assert interval_verdict(1.1, 1.3, 1.0) == "not reproduced"
    assert interval_verdict(0.9, 1.1, 1.0) == "inconclusive"
    assert interval_verdict(1.1, 1.3, 1.0, claim_holds_below=False) == "reproduced"
    assert interval_verdict(float("nan"), 1.0, 2.0) == "inconclusive"
    finding = FindingResult(
        name="table1", source="paper, Table 1", claim="DSM beats dense", reading="ratio < 1", source_value=0.5,
        measured=1.36, ci_low=1.28, ci_high=1.44, unit="MSE ratio", test="paired t", decision="CI vs 1",
        verdict="not reproduced", scale="paper's FLOPs", scale_fraction=1.0, training="ridge", seeds=[1, 2],
        n=5, profile="paper", wall_time_s=1.0)
    with pytest.raises(ValueError, match="verdict must be one of"):
        FindingResult(**{**finding.to_dict(), "verdict": "pass"})
    with open_store(tmp_path) as store:
        store.add("finding", [finding], store.start_run("x", provenance=PROVENANCE))
        assert FindingResult.from_dict(store.read("finding").records[0]) == finding
