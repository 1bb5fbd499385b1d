"""``sparse-bench bench`` for one layer: a shape of your own, a preset of a published model (scaled on CPU),
another router or a shared expert; the records' absolute figures (us, tokens/s, GFLOP/s, grouped floor)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from sparse_bench import cli
from sparse_bench.bench import GridPoint, full_grid, quick_grid, run_ratio_table
from sparse_bench.bench.floor import routed_flops
from sparse_bench.bench.peers import build_case
from sparse_bench.bench.presets import CPU_WEIGHT_BYTES, PRESETS, ROUTERS, cpu_scale, get_preset, preset_point
from sparse_bench.moe import MoELayer
from sparse_bench.results import read_records
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter

ROUTER_CLASSES = {"topk": TopKRouter, "expert_choice": ExpertChoiceRouter, "hash": HashRouter,
                  "lsh": LSHRouter, "sinkhorn": SinkhornRouter}
FAST = ["--profile", "quick", "--min-run-time", "0.001", "--threads", "1", "--no-memory", "--forward-only"]


def test_each_preset_scales_by_the_smallest_power_of_two_that_fits_the_cpu_budget():
    for name, preset in PRESETS.items():
        scale = cpu_scale(preset)
        assert scale & (scale - 1) == 0 and preset.weight_bytes(scale) <= CPU_WEIGHT_BYTES
        assert scale == 1 or preset.weight_bytes(scale // 2) > CPU_WEIGHT_BYTES, name
        resolved = preset_point(name, "cpu")
        point = resolved.point
        assert (point.d_model * scale, point.d_hidden * scale) == (preset.d_model, preset.d_hidden)
        assert (point.num_experts, point.k, point.shared_experts) == (preset.num_experts, preset.k,
                                                                      preset.shared_experts)
        assert f"divided by {scale}" in resolved.describe() or scale == 1
    # Mixtral by hand: 8 experts x 3 d h x 4 bytes = 5.25 GiB at full size; / 4^2 = 336 MiB > 256 MiB;
    # / 8^2 = 84 MiB
    assert cpu_scale(get_preset("mixtral-8x7b")) == 8
    assert cpu_scale(get_preset("mixtral-8x7b"), itemsize=2) == 4  # 168 MiB in bf16


def test_presets_are_full_size_on_cuda_with_their_tokens():
    resolved = preset_point("deepseek-v3", "cuda", tokens=128)
    assert resolved.scale == 1 and resolved.point == GridPoint(256, 8, 128, 7168, 2048, shared_experts=1)
    assert resolved.to_dict()["d_model_full"] == 7168 and "full size" in resolved.describe()
    with pytest.raises(ValueError, match="--preset must be one of"):
        preset_point("gpt-5", "cpu")


def test_bench_times_a_shape_of_no_grid_with_absolute_figures(capsys, tmp_path):
    point = GridPoint(4, 2, 64, 32, 16)
    assert point not in full_grid() and point not in quick_grid()
    code = cli.main(["bench", "--shape", "4,2,64,32,16", "--peer", "gshard_einsum", *FAST, "--results",
                     str(tmp_path), "--json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert code == 0
    (record,) = document["records"]
    assert record["name"] == "moe_ratio_table/forward/E=4/k=2/T=64/d=32/h=16"
    ours = record["ours"]["median_s"]
    assert record["flops"] == routed_flops(128, 32, 16, backward=False) == 6 * 128 * 32 * 16
    assert record["time_us"] == pytest.approx(ours * 1e6)
    assert record["tokens_per_s"] == pytest.approx(64 / ours)
    assert record["achieved_gflop_per_s"] == pytest.approx(record["flops"] / ours * 1e-9)
    assert record["grouped_floor_us"] == pytest.approx(record["grouped"]["median_s"] * 1e6)
    assert "speedup_of_ours" in record["peers"]["gshard_einsum"]
    assert [r["name"] for r in read_records(tmp_path, "bench")] == [record["name"]]
    assert "tok/s" in captured.err and "GFLOP/s" in captured.err  # the row, on stderr under --json


def test_bench_preset_on_cpu_records_its_scale(capsys):
    code = cli.main(["bench", "--preset", "olmoe-1b-7b", "--tokens", "16", "--peer", "loop", *FAST,
                     "--no-write", "--json"])
    captured = capsys.readouterr()
    (record,) = json.loads(captured.out)["records"]
    assert code == 0 and record["preset"] == {"name": "olmoe-1b-7b", "model": "allenai/OLMoE-1B-7B-0924",
                                              "scale": 4, "d_model_full": 2048, "d_hidden_full": 1024,
                                              "device_type": "cpu"}
    assert record["point"]["d_model"] == 512 and record["point"]["d_hidden"] == 256
    assert "d and h divided by 4 on cpu (d 2048 -> 512, h 1024 -> 256" in captured.err


@pytest.mark.parametrize("args, pattern", [
    (["--shape", "4,5,64,32,16"], "--shape 4,5,64,32,16: k must be in [1, 4], got 5"),
    (["--shape", "4,2,64"], "must be E,k,T,d,h"),
    (["--shape", "4,2,64,32,16", "--router", "hash"], "k must be 1, got 2"),
    (["--shape", "4,1,64,32,16", "--preset", "switch-base"], "give --shape or --preset, not both"),
    (["--router", "lsh"], "--router applies to a --shape or --preset"),
    (["--preset", "nope"], "Invalid value for '--preset'"),
    (["--shape", "4,1,64,32,16", "--dispatch", "fastest"], "--dispatch must be one of"),
    (["--peer", "vllm"], "unknown peer(s) vllm"),
    (["--device", "tpu"], "--device 'tpu'"),
])
def test_bad_bench_input_is_one_line(capsys, args, pattern):
    assert cli.main(["bench", *args, "--no-write"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("sparse-bench bench: error: ") and pattern in err, err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("router", ROUTERS)
def test_every_router_builds_a_case_its_strategy_peers_agree_with(router):
    """build_case checks every peer against our layer (raising on a mismatch); the top-k-only peers are
    skipped for another router, with the reason."""
    point = GridPoint(8, 1 if router == "hash" else 2, 64, 32, 16, router=router)
    case = build_case(point, peers=("loop", "padded", "hf_mixtral", "gshard_einsum"))
    assert set(case.modules) == {"loop", "padded"} or router == "topk"
    if router != "topk":
        assert case.skipped["hf_mixtral"].startswith("routes top-k")
    assert isinstance(case.layer.router, ROUTER_CLASSES[router])


def test_a_shared_expert_adds_its_ffn_and_its_rows_to_the_floor():
    point = GridPoint(4, 2, 64, 32, 16, shared_experts=1)
    case = build_case(point, peers=("loop", "hf_mixtral"))
    assert "hf_mixtral" in case.skipped and "loop" in case.modules
    routed = MoELayer(case.layer.router, case.layer.experts, dispatch="loop")
    with torch.no_grad():
        expected = routed(case.x) + case.layer.shared_expert(case.x)
        torch.testing.assert_close(case.layer(case.x), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # noisy-IQR warnings of sub-millisecond calls
        (record,) = run_ratio_table("quick", None, points=[point], directions=("forward",), peers=(),
                                    num_threads=1, min_run_time=0.001, memory=None, echo=None)
    assert record["name"].endswith("/h=16/shared=1") and record["num_assignments"] == 128
    assert record["expert_rows"] == 128 + 64 and record["flops"] == routed_flops(192, 32, 16, backward=False)
