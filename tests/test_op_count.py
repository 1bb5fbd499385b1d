"""The op counter behind the benchmark's ops per forward: which ATen calls read a value on the host, the
counts in a ratio-table row, and the asv tracks."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

from sparse_bench.bench.grid import GridPoint
from sparse_bench.bench.op_count import count_ops
from sparse_bench.bench.peers import build_case, forward_fn
from sparse_bench.bench.ratio_table import format_row, run_ratio_table

ROOT = Path(__file__).resolve().parents[1]


def test_host_reads_are_told_apart_from_reads_that_stay_on_the_device():
    t = torch.arange(6.0)
    index, mask = torch.tensor([0, 2]), t > 2
    assert count_ops(lambda: t[index]).host_syncs == 0  # integer indexing: the output size is the index's
    assert count_ops(lambda: t.repeat_interleave(torch.tensor([1, 2] * 3), output_size=9)).host_syncs == 0
    assert count_ops(lambda: torch.searchsorted(t, t)).host_syncs == 0
    for read in (lambda: t[mask], lambda: t.nonzero(), lambda: int(t.max()), lambda: bool(t.any()),
                 lambda: torch.bincount(index), lambda: t.repeat_interleave(torch.tensor([1, 2] * 3)),
                 lambda: t.tolist()):
        assert count_ops(read).host_syncs == 1


def test_counts_every_call_and_restores_tolist():
    t = torch.ones(3)
    counts = count_ops(lambda: (t + 1).mul(2).sum())
    assert counts.total == 3 and counts.ops["aten.add"] == 1 and counts.host_syncs == 0
    assert "tolist" not in vars(torch.Tensor)  # the counting wrapper is gone, the inherited method back


def test_asv_tracks_ops_and_host_syncs(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.moe import DispatchStrategies

    bench = DispatchStrategies()
    bench.setup(8, 2, "grouped")
    ops = bench.track_ops_per_forward(8, 2, "grouped")
    assert ops == count_ops(bench.forward).total and ops > 10
    assert bench.track_host_syncs_per_forward(8, 2, "grouped") == count_ops(bench.forward).host_syncs
    sys.modules.pop("benchmarks.moe", None)


def test_ratio_table_rows_carry_the_forward_op_counts():
    point = GridPoint(num_experts=4, k=2, num_tokens=64, d_model=32, d_hidden=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # noisy timings of sub-millisecond calls
        (record,) = run_ratio_table("quick", None, points=[point], peers=(), directions=("forward",),
                                    min_run_time=0.001, memory=None, echo=None)
    case = build_case(point, dispatch="auto", peers=())
    counts = count_ops(forward_fn(case.layer, case.x))
    assert record["ops_per_forward"] == counts.total > 0
    assert record["host_syncs_per_forward"] == counts.host_syncs
    assert f"ops={counts.total} syncs={counts.host_syncs}" in format_row(record)
