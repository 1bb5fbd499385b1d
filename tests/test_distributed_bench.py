"""The README's torchrun command runs the expert-parallel benchmark end to end (tiny shapes) and writes records."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sparse_bench.distributed import bench
from sparse_bench.results import open_store

pytestmark = pytest.mark.timeout(120)

TINY = "--tokens 32 --d-model 8 --d-hidden 16 --experts 4 --k 2 --iters 2 --warmup 1".split()


def test_torchrun_two_ranks_prints_split_and_writes_records(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "sparse_bench.distributed.bench", *TINY, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "W=2 backend=gloo" in done.stdout and "exchange_ms" in done.stdout
    with open_store(out, create=False) as store:
        records = store.read("distributed").records
    assert [r["rank"] for r in records] == [0, 1]
    for rec in records:
        assert rec["world_size"] == 2 and set(rec["seconds"]) == set(bench.TIMED)
        assert rec["bytes_sent"] == (rec["rows_sent"] + rec["rows_returned"]) * 8 * 4
        assert rec["predicted_bytes_uniform"] == 2 * 32 * 2 * 8 * (1 / 2) * 4
        assert all(rec["seconds"][p]["median"] >= 0 for p in bench.TIMED)


@pytest.mark.parametrize("flag", ["--tokens", "--experts", "--k", "--iters"])
def test_bad_sizes_rejected(flag, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args([flag, "0"])
    assert flag in capsys.readouterr().err
