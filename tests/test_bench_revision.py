"""Our layer at another git revision as a ratio-table peer (sparse_bench.bench.revision)."""

from __future__ import annotations

import importlib
import os
import shutil

import pytest
import torch

from sparse_bench.bench.grid import GridPoint
from sparse_bench.bench.peers import build_case, check_agrees
from sparse_bench.bench.ratio_table import run_ratio_table
from sparse_bench.bench.revision import RevisionError, import_revision, peer_name, resolve

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
TINY = GridPoint(num_experts=4, k=2, num_tokens=64, d_model=32, d_hidden=16)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_BENCH_CACHE", str(tmp_path / "cache"))


def test_a_revision_is_its_own_package_and_computes_our_function():
    sha = resolve("HEAD")
    package = import_revision("HEAD")
    assert package.__name__ == f"sparse_bench_at_{sha[:12]}" and import_revision(sha) is package
    moe = importlib.import_module(f"{package.__name__}.moe")
    assert moe.__file__.startswith(os.environ["SPARSE_BENCH_CACHE"])  # its own code, not ours
    case = build_case(TINY, seed=3, peers=(peer_name(sha),))
    theirs = case.modules[peer_name(sha)]
    with torch.no_grad():
        check_agrees(peer_name(sha), theirs(case.x), case.layer(case.x), TINY.k)


def test_the_peer_is_timed_and_judged():
    name = peer_name(resolve("HEAD"))
    records = run_ratio_table("quick", None, points=[TINY], peers=(name,), directions=("forward",),
                              min_run_time=0.002, memory=None, echo=None)
    peer = records[0]["peers"][name]
    assert peer["speedup_of_ours"] > 0 and "revision_ok" in records[0]["targets"]


def test_an_unknown_revision_is_a_clear_error(run_cli):
    with pytest.raises(RevisionError, match="no-such-revision"):
        resolve("no-such-revision")
    code, out, err = run_cli("bench", "--shape", "4,2,64,32,16", "--against", "no-such-revision", "--no-write")
    assert code != 0 and "--against" in err and "no-such-revision" in err
