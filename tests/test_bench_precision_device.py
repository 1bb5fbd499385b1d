"""The ratio table in another dtype (bf16, fp16) and on another device: peers still compute our function,
records are named and judged apart from the CPU float32 ones, bad devices are refused. The CUDA tests run
where a GPU is."""

from __future__ import annotations

import warnings

import pytest
import torch

from sparse_bench.bench import GridPoint, run_ratio_table
from sparse_bench.bench.__main__ import main as bench_main
from sparse_bench.bench.device import resolve_device
from sparse_bench.bench.gshard import GShardEinsumMoE
from sparse_bench.bench.peers import PEER_REL_TOL, build_case, check_agrees, peer_tolerance
from sparse_bench.bench.speed_targets import target_summary
from sparse_bench.cli import main as cli_main
from sparse_bench.report.speed import ratio_table, target_table

TINY = GridPoint(num_experts=4, k=2, num_tokens=64, d_model=32, d_hidden=16)
PEERS = ("hf_mixtral", "gshard_einsum", "loop", "einsum", "sorted", "padded", "grouped", "prepacked")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_peer_tolerance_counts_the_roundings_of_low_precision():
    assert peer_tolerance(torch.float32, k=8) == PEER_REL_TOL
    assert peer_tolerance(torch.bfloat16, k=2) == pytest.approx(6 * 2.0**-7)
    assert peer_tolerance(torch.float16, k=1) == pytest.approx(5 * 2.0**-10)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_case_keeps_the_router_in_float32_and_every_peer_agrees(dtype):
    point = GridPoint(num_experts=8, k=2, num_tokens=128, d_model=64, d_hidden=32)
    case = build_case(point, peers=PEERS, dtype=dtype)  # raises if a peer disagrees beyond peer_tolerance
    assert case.x.dtype == case.upstream.dtype == case.layer.experts.w_in.dtype == dtype
    assert case.layer.router.weight.dtype == torch.float32
    assert set(case.modules) == set(PEERS) - {"prepacked"} or "hf_mixtral" in case.skipped
    assert "CPU float32" in case.skipped["prepacked"]
    with torch.no_grad():
        assert case.layer(case.x).dtype == dtype


def test_low_precision_peer_computing_another_function_is_refused():
    """Negative control in bf16: raw instead of renormalised top-2 weights exceed the rounding tolerance."""
    case = build_case(TINY, peers=("gshard_einsum",), dtype=torch.bfloat16)
    wrong = GShardEinsumMoE(case.layer.router.weight, case.layer.experts, k=2, normalize=False)
    with torch.no_grad():
        y = case.layer(case.x)
        check_agrees("gshard_einsum", case.modules["gshard_einsum"](case.x), y, k=2)
        with pytest.raises(AssertionError, match="disagrees"):
            check_agrees("broken_gshard", wrong(case.x), y, k=2)
        with pytest.raises(AssertionError, match="returns torch.float32"):
            check_agrees("float32_output", y.float(), y, k=2)


@pytest.fixture(scope="module")
def mixed_records():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # noisy-IQR warnings on sub-millisecond calls
        kwargs = {"points": [TINY], "peers": ("gshard_einsum",), "directions": ("forward",),
                  "min_run_time": 0.001, "memory": "ours", "echo": None}
        return [*run_ratio_table("quick", None, **kwargs),
                *run_ratio_table("quick", None, dtype=torch.bfloat16, **kwargs)]


def test_records_of_another_dtype_are_named_apart_and_not_judged_by_the_cpu_float32_targets(mixed_records):
    fp32, bf16 = mixed_records
    assert fp32["name"] == "moe_ratio_table/forward/E=4/k=2/T=64/d=32/h=16" and fp32["dtype"] == "float32"
    assert bf16["name"] == fp32["name"] + "/cpu/bfloat16" and bf16["dtype"] == "bfloat16"
    assert "targets" in fp32 and "targets" not in bf16
    assert bf16["memory"]["budget_bytes"] < fp32["memory"]["budget_bytes"]  # 2-byte activations
    assert [row["measured"] for row in target_summary(mixed_records)] == [1, 1]  # overhead, GShard: fp32 only
    columns, rows = ratio_table(mixed_records)
    assert [row[0] for row in rows] == ["E4 k2 T64 h16", "E4 k2 T64 h16 cpu bfloat16"]
    met = columns.index("targets met")
    assert "overhead " in rows[0][met] and rows[1][met] == "not judged (targets: CPU float32)"
    _, target_rows = target_table(mixed_records)
    assert all(row[2].endswith("/1") for row in target_rows)


@pytest.mark.parametrize("name, match", [("tpu", "tpu"), ("meta", "runs on cpu or cuda")])
def test_unknown_or_unsupported_devices_are_refused(name, match):
    with pytest.raises(ValueError, match=match):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_usage_error(capsys):
    assert bench_main(["--profile", "quick", "--no-write", "--device", "cuda"]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err
    assert cli_main(["bench", "--profile", "quick", "--device", "cuda:0", "--dtype", "bfloat16"]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_case_agrees_with_every_peer_and_with_the_cpu_layer(dtype):
    point = GridPoint(num_experts=8, k=2, num_tokens=256, d_model=64, d_hidden=32)
    case = build_case(point, peers=PEERS, device="cuda", dtype=dtype)
    cpu = build_case(point, peers=(), dtype=dtype)
    assert case.x.is_cuda and "prepacked" in case.skipped
    with torch.no_grad():
        check_agrees("cuda layer", case.layer(case.x).cpu(), cpu.layer(cpu.x), k=point.k)


@needs_cuda
def test_cuda_ratio_table_records_time_and_memory_on_the_gpu():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        records = run_ratio_table("quick", None, points=[TINY], peers=("hf_mixtral", "gshard_einsum"),
                                  device="cuda", dtype=torch.bfloat16, min_run_time=0.01, memory="all",
                                  echo=None)
    for record in records:
        assert record["device"].startswith("cuda") and record["name"].endswith("/cuda/bfloat16")
        assert record["R"] > 0 and record["memory"]["peak_bytes"] > 0 and "targets" not in record


def test_calibration_runs_in_bf16_and_refuses_prepacking_off_cpu_float32(capsys):
    from sparse_bench.bench.calibrate import crossover_rows
    from sparse_bench.bench.calibrate import main as calibrate_main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        (row,) = crossover_rows([TINY], num_threads=1, min_run_time=0.001, dtype=torch.bfloat16)
    assert row["sorted_s"] > 0 and row["padded_s"] > 0
    with pytest.raises(ValueError, match="CPU float32 only"):
        crossover_rows([TINY], num_threads=1, min_run_time=0.001, prepack=True, dtype=torch.bfloat16)
    assert calibrate_main(["--threads", "1", "--prepack", "--dtype", "float16"]) == 2
    assert "CPU float32 only" in capsys.readouterr().err


def test_a_peer_that_cannot_run_here_is_skipped_with_its_reason(monkeypatch):
    """A RuntimeError (a kernel missing for a device or dtype) skips that peer (disagreeing still raises)."""
    from sparse_bench.bench import peers

    def failing_peer(name, layer):
        if name == "loop":
            raise_here = torch.nn.Module()
            raise_here.forward = lambda x: torch.zeros(2, 3) @ torch.zeros(4, 5)  # shapes do not multiply
            return raise_here
        return original(name, layer)

    original = peers._peer
    monkeypatch.setattr(peers, "_peer", failing_peer)
    case = build_case(TINY, peers=("loop", "sorted"))
    assert set(case.modules) == {"sorted"} and case.skipped["loop"].startswith("failed here:")
