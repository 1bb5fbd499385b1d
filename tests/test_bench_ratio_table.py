"""The ratio-table runner on a tiny grid: record structure, identities, written JSON, peers verified, bad input.

No timing is asserted: only that the table is computed from its parts consistently and that peers which compute a
different function are refused (the negative control of the peer check).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from sparse_bench import ExpertBank
from sparse_bench import dispatch as dispatch_module
from sparse_bench.bench import GridPoint, format_table, run_ratio_table
from sparse_bench.bench.floor import grouped_floor_fn, routed_flops, weight_traffic_bytes
from sparse_bench.bench.gshard import GShardEinsumMoE
from sparse_bench.bench.peers import build_case, check_agrees, forward_backward_fn
from sparse_bench.bench.speed_targets import format_target_summary, record_targets, target_limit, target_summary
from sparse_bench.bench.ratio_table import format_row, thread_scaling
from sparse_bench.bench.timing import Timing, peak_bytes, time_interleaved
from sparse_bench.dispatch import (
    AUTO_PADDED_MAX_WASTE,
    AUTO_PADDED_MIN_EXPERTS,
    choose_dispatch,
    padding_waste,
)
from sparse_bench.routing import plan_from_assignments
from sparse_bench.threads import pinned_threads
from sparse_bench.results import read_records

TINY = GridPoint(num_experts=4, k=2, num_tokens=64, d_model=32, d_hidden=16)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # noisy-IQR warnings: sub-millisecond calls on a busy machine
        recs = run_ratio_table(
            "quick", out, points=[TINY], peers=("hf_mixtral", "gshard_einsum", "loop", "einsum", "prepacked"),
            min_run_time=0.001, memory="all", echo=None,
        )
    return out, recs


def test_one_record_per_direction_with_consistent_ratios(records):
    _, recs = records
    assert [r["direction"] for r in recs] == ["forward", "forward_backward"]
    for r in recs:
        assert r["point"] == TINY.to_dict()
        assert math.isclose(r["R"], r["shape"] * r["overhead"], rel_tol=1e-12)
        assert math.isclose(r["R"], r["ours"]["median_s"] / r["t_floor_s"], rel_tol=1e-12)
        assert r["flops"] == routed_flops(TINY.num_assignments, 32, 16, r["direction"] == "forward_backward")
        for name, peer in r["peers"].items():
            if "skipped" in peer:  # HF only when transformers is missing; prepacked is timed forward only
                assert name == "hf_mixtral" or (name, r["direction"]) == ("prepacked", "forward_backward")
                continue
            assert math.isclose(peer["speedup_of_ours"], peer["median_s"] / r["ours"]["median_s"], rel_tol=1e-12)
        traffic = r["weight_traffic"]
        assert math.isclose(traffic["t_s"], traffic["bytes"] / (traffic["bandwidth_gb_s"] * 1e9), rel_tol=1e-9)
        assert math.isclose(r["R_roofline"], r["ours"]["median_s"] / max(r["t_floor_s"], traffic["t_s"]),
                            rel_tol=1e-12)
        assert r["bound"] == ("weight traffic" if traffic["t_s"] > r["t_floor_s"] else "compute")
        assert r["memory"]["peak_bytes"] > 0 and r["memory"]["budget_bytes"] > 0
        assert set(r["targets"]) >= {"overhead_max", "overhead_ok", "gshard_ok", "memory_ok", "within_noise"}
        assert r["overhead_interval"]["low"] <= r["overhead"] <= r["overhead_interval"]["high"]
        scaling = r["thread_scaling"]  # the fixture runs on 2 threads (the default)
        assert scaling["threads"] == 2 and scaling["interval"]["rounds"] == 9
        assert math.isclose(scaling["speedup"], scaling["one_thread_s"] / r["floor_block"]["median_s"],
                            rel_tol=1e-12)
        assert scaling["contended"] == (scaling["speedup"] < 1.5)


def test_R_and_speedups_carry_intervals_from_the_paired_rounds(records):
    """R's interval is the order-statistic interval of the per-round ratio ours / floor block, scaled to A
    rows (9 rounds: the 2nd to 8th smallest); each timed peer's speedup gets one from peer / ours in the same
    rounds."""
    _, recs = records
    for r in recs:
        rounds = len(r["ours"]["samples_s"])
        assert rounds == 9 and len(r["floor_block"]["samples_s"]) == rounds
        per_round = sorted(o / f * 1024 / r["num_assignments"]
                           for o, f in zip(r["ours"]["samples_s"], r["floor_block"]["samples_s"]))
        assert (r["R_interval"]["low"], r["R_interval"]["high"]) == (per_round[1], per_round[-2])
        for peer in r["peers"].values():
            if "median_s" in peer:
                interval = peer["speedup_interval"]
                assert interval["low"] <= interval["high"] and interval["rounds"] == rounds


def test_thread_scaling_flags_a_machine_whose_cores_are_held(records):
    """A floor block as fast on one thread as on two (another process holds a core) is flagged, with a
    warning; one twice as fast on two is not. The interval pairs the rounds like R's."""
    two = Timing(0.010, 0.0, 9, tuple(0.010 + 1e-4 * i for i in range(9)))
    held = Timing(0.0105, 0.0, 9, tuple(0.0105 + 1e-4 * i for i in range(9)))
    with pytest.warns(UserWarning, match="ran 1.05x as fast on 2 threads as on one"):
        flagged = thread_scaling(held, two, 2, "E=8")
    assert flagged["contended"] and flagged["speedup"] == pytest.approx(1.05)
    idle = Timing(0.020, 0.0, 9, tuple(2 * t for t in two.samples))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = thread_scaling(idle, two, 2, "E=8")
    assert not scaled["contended"] and scaled["speedup"] == pytest.approx(2.0)
    assert (scaled["interval"]["low"], scaled["interval"]["high"]) == (pytest.approx(2.0), pytest.approx(2.0))
    row = format_row({**records[1][0], "thread_scaling": flagged})
    assert row.endswith("threads=1.05x CONTENDED")


def test_interleaved_timing_runs_a_callable_on_its_own_thread_count():
    """Every timed call of a callable given its own count runs on it; the first call is the warm-up, which
    runs on the caller's count."""
    seen = {"one": [], "all": []}
    fns = {name: (lambda name=name: seen[name].append(torch.get_num_threads())) for name in seen}
    with pinned_threads(2):
        time_interleaved(fns, 2, 1e-4, rounds=3, threads={"one": 1})
    assert len(seen["one"]) > 1 and set(seen["one"][1:]) == {1}
    assert set(seen["all"]) == {2}


def test_records_are_written_as_json_lines(records):
    out, recs = records
    written = read_records(out, "bench")
    assert [w["name"] for w in written] == [r["name"] for r in recs]
    assert all("torch" in w["versions"] for w in written)
    assert len(format_table(recs).splitlines()) == len(recs)


def test_each_speed_target_needs_the_R_at_which_it_is_met(records):
    """needed_R restates each target as a bound on our R: met exactly when R <= needed_R (the peers' targets are
    recorded as speedups, so this ties the two forms together); a miss, and only a miss, has a limit."""
    _, recs = records
    for r in recs:
        targets = r["targets"]
        names = {"overhead", "hf", "gshard", "revision"}
        assert set(targets["needed_R"]) == names & {k[:-3] for k in targets if k.endswith("_ok")}
        for name, needed in targets["needed_R"].items():
            assert (r["R"] <= needed * (1 + 1e-12)) == targets[f"{name}_ok"] or math.isclose(r["R"], needed)
            assert (name in targets["limit"]) == (not targets[f"{name}_ok"])


@pytest.mark.parametrize("needed, shape, limit", [
    (0.9, 1.3, "floor"), (0.999, 0.9, "floor"),  # faster than the FLOP floor, whatever the grouped floor
    (1.2, 1.3, "grouped floor"), (1.0, 1.01, "grouped floor"),
    (1.2, 1.1, "overhead"), (1.3, 1.3, "overhead"),  # the grouped floor itself would meet it
])
def test_target_limit(needed, shape, limit):
    assert target_limit(needed, shape) == limit


def test_target_summary_counts_misses_by_limit():
    def record(direction, R, shape, hf_R=None):
        peers = {"hf_mixtral": {"ratio_to_floor": hf_R, "speedup_of_ours": hf_R / R}} if hf_R else {}
        rec = {"direction": direction, "R": R, "shape": shape, "overhead": R / shape, "peers": peers}
        rec["targets"] = record_targets(rec, direction)
        return rec

    recs = [record("forward", 1.1, 1.0, hf_R=1.2),  # overhead 1.1 met; HF not slow: never slower, met
            record("forward", 1.4, 1.0, hf_R=1.8),  # overhead 1.4 missed; HF (slow: 1.5x) needs 1.2: overhead
            record("forward", 1.3, 1.25, hf_R=1.2),  # overhead 1.04 met; HF (1x) needs 1.2 < shape: grouped floor
            record("forward_backward", 1.2, 1.0),   # overhead 1.2 <= 1.25 met; no peers
            {"direction": "forward", "R": 2.0, "shape": 1.0, "targets": {"R_ok": False}}]  # no needed_R: skipped
    rows = {(row["direction"], row["target"]): row for row in target_summary(recs)}
    assert rows[("forward", "overhead")] == {
        "direction": "forward", "target": "overhead", "label": "overhead <= 1.15", "met": 2, "measured": 3,
        "overhead": 1, "grouped floor": 0, "floor": 0, "within_noise": 0}
    hf = rows[("forward", "hf")]
    assert (hf["met"], hf["measured"], hf["overhead"], hf["grouped floor"]) == (1, 3, 1, 1)
    assert rows[("forward_backward", "overhead")]["met"] == 1 and ("forward_backward", "hf") not in rows
    assert len(format_target_summary(recs).splitlines()) == 3


def test_never_slower_than_another_revision():
    """A peer ours@REV (our layer at another revision) is a target: met when ours is at least as fast; a
    slower layer misses it, and an interval holding 1 is within noise."""
    def record(speedup, interval=None):
        peer = {"ratio_to_floor": 1.5 * speedup, "speedup_of_ours": speedup, "speedup_interval": interval}
        rec = {"direction": "forward", "R": 1.5, "shape": 1.3, "overhead": 1.5 / 1.3,
               "peers": {"ours@0123456789ab": peer}}
        rec["targets"] = record_targets(rec, "forward")
        return rec["targets"]

    assert record(1.3)["revision_ok"] and not record(0.8)["revision_ok"]
    assert record(0.8)["limit"]["revision"] == "grouped floor"  # the old layer's R 1.2 is below the shape 1.3
    assert record(0.98, {"low": 0.9, "high": 1.05})["within_noise"] == ["revision"]
    assert "revision_ok" not in record_targets({"direction": "forward", "R": 1.2, "shape": 1.1, "overhead": 1.09,
                                                "peers": {}}, "forward")


def test_verdicts_whose_interval_holds_the_bound_are_within_noise():
    """A verdict is within noise when its 95% interval holds the target's bound, met or missed alike; an
    interval wholly on one side, or none recorded (older records), leaves the verdict as it is."""
    def record(interval, hf_interval=None, overhead=1.14):
        hf = {"ratio_to_floor": 1.2, "speedup_of_ours": 1.02, "speedup_interval": hf_interval}
        rec = {"direction": "forward", "R": overhead, "shape": 1.0, "overhead": overhead,
               "peers": {"hf_mixtral": hf}, "overhead_interval": interval}
        rec["targets"] = record_targets(rec, "forward")
        return rec

    straddles = record({"low": 1.10, "high": 1.20}, {"low": 0.97, "high": 1.08})  # overhead, HF met: unclear
    clear = record({"low": 1.12, "high": 1.149}, {"low": 1.01, "high": 1.04})
    assert straddles["targets"]["within_noise"] == ["overhead", "hf"] and straddles["targets"]["overhead_ok"]
    assert clear["targets"]["within_noise"] == [] and record(None)["targets"]["within_noise"] == []
    missed = record({"low": 1.151, "high": 1.3}, overhead=1.2)
    assert not missed["targets"]["overhead_ok"] and missed["targets"]["within_noise"] == []
    rows = {row["target"]: row for row in target_summary([straddles, clear, missed])}
    assert (rows["overhead"]["within_noise"], rows["hf"]["within_noise"]) == (1, 1)
    assert format_target_summary([straddles]).splitlines()[0].endswith("within noise 1")


def test_no_results_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default results dir is relative: a stray write would land here
    run_ratio_table("quick", None, points=[TINY], peers=(), directions=("forward",), min_run_time=0.001,
                    memory=None, echo=None)
    assert not any(tmp_path.iterdir())


def test_peer_computing_another_function_is_refused():
    """Negative control: a GShard layer with raw (not renormalised) top-2 weights must fail the agreement check."""
    case = build_case(TINY, peers=("gshard_einsum",))
    wrong = GShardEinsumMoE(case.layer.router.weight, case.layer.experts, k=2, normalize=False)
    with torch.no_grad():
        y = case.layer(case.x)
        check_agrees("gshard_einsum", case.modules["gshard_einsum"](case.x), y)
        with pytest.raises(AssertionError, match="disagrees"):
            check_agrees("broken_gshard", wrong(case.x), y)


def test_weight_traffic_counts_used_experts_only():
    w_in, w_out = torch.zeros(3, 8, 32), torch.zeros(3, 16, 8)  # 256 + 128 floats per expert
    assert weight_traffic_bytes(w_in, w_out, [5, 0, 7], backward=False) == 2 * 384 * 4
    assert weight_traffic_bytes(w_in, w_out, [5, 0, 7], backward=True) == 3 * 2 * 384 * 4
    assert weight_traffic_bytes(w_in.double(), w_out.double(), [1, 1, 1], backward=False) == 3 * 384 * 8


def test_grouped_floor_and_peak_bytes():
    w_in, w_out = torch.zeros(3, 8, 32), torch.zeros(3, 16, 8)
    grouped_floor_fn(w_in, w_out, [5, 0, 7], backward=True)()
    with pytest.raises(ValueError, match="counts"):
        grouped_floor_fn(w_in, w_out, [5, 7], backward=False)

    def two_live_mebibytes():
        a = torch.ones(2**18)  # 1 MiB of float32
        b = torch.ones(2**18)
        del a
        c = torch.ones(2**18)  # reuses nothing: a is freed, so at most 2 MiB are live at once
        return b, c

    assert peak_bytes(two_live_mebibytes, torch.device("cpu")) == 2 * 2**20


def test_peak_bytes_sees_temporaries_freed_inside_a_composite_op():
    """An autograd Function making and dropping two 1 MiB temporaries in turn peaks at 1 MiB (+ its output), not 2:
    frees are counted when they happen, not when the enclosing op ends."""

    class TwoTemporaries(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            first = x.repeat(2**18)  # 1 MiB
            total = first.sum()
            del first
            second = x.repeat(2**18)  # 1 MiB, after the first is gone
            return total + second.sum()

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = torch.ones(1)
    peak = peak_bytes(lambda: TwoTemporaries.apply(x), torch.device("cpu"))
    assert 2**20 <= peak < 2**20 + 2**12


def test_auto_choice_follows_threads_experts_expert_size_and_padding_waste(monkeypatch):
    E = AUTO_PADDED_MIN_EXPERTS
    bank = ExpertBank(E, 8, 4, activation="swiglu")  # 384 bytes of weights per expert
    balanced = plan_from_assignments(torch.arange(2 * E), torch.arange(2 * E) % E, torch.ones(2 * E), 2 * E, E)
    skewed = plan_from_assignments(torch.arange(8), torch.tensor([0] * 7 + [1]), torch.ones(8), 8, E)
    assert padding_waste(balanced) == 1.0 and padding_waste(skewed) == 7 * E / 8 > AUTO_PADDED_MAX_WASTE
    cpu = torch.device("cpu")
    assert choose_dispatch(balanced, bank, cpu, num_threads=1) == "sorted"
    assert choose_dispatch(balanced, bank, cpu, num_threads=2) == "padded"
    assert choose_dispatch(skewed, bank, cpu, num_threads=2) == "sorted"
    few_experts = plan_from_assignments(torch.arange(8), torch.arange(8) % 4, torch.ones(8), 8, 4)
    assert padding_waste(few_experts) == 1.0 and choose_dispatch(few_experts, bank, cpu, num_threads=2) == "sorted"
    many_rows = plan_from_assignments(torch.arange(200 * E) % (100 * E), torch.arange(200 * E) % E,
                                      torch.ones(200 * E), 100 * E, E)
    assert padding_waste(many_rows) == 1.0 and choose_dispatch(many_rows, bank, cpu, num_threads=2) == "sorted"
    monkeypatch.setattr(dispatch_module, "AUTO_PADDED_MAX_EXPERT_BYTES", 383)  # now the experts count as large
    assert choose_dispatch(balanced, bank, cpu, num_threads=2, backward=False) == "sorted"
    with torch.no_grad():  # backward=None: no graph is recorded, so the forward's cap applies
        assert choose_dispatch(balanced, bank, cpu, num_threads=2) == "sorted"
    # a backward follows (explicitly, or grad mode on with weights that require grad): the larger cap applies
    assert choose_dispatch(balanced, bank, cpu, num_threads=2, backward=True) == "padded"
    assert choose_dispatch(balanced, bank, cpu, num_threads=2) == "padded"
    forty_rows = plan_from_assignments(torch.arange(40 * E), torch.arange(40 * E) % E, torch.ones(40 * E), 40 * E, E)
    assert padding_waste(forty_rows) == 1.0 and 32 < 40 <= dispatch_module.AUTO_PADDED_MAX_ROWS_PER_EXPERT
    assert choose_dispatch(forty_rows, bank, cpu, num_threads=2, backward=True) == "sorted"  # large experts: <= 32
    bank.requires_grad_(False)  # frozen experts: no weight gradients, the forward's cap
    assert choose_dispatch(balanced, bank, cpu, num_threads=2) == "sorted"
    monkeypatch.setattr(dispatch_module, "AUTO_PADDED_MAX_EXPERT_BYTES_WITH_GRAD", 383)
    assert choose_dispatch(balanced, bank, cpu, num_threads=2, backward=True) == "sorted"


@pytest.mark.parametrize(
    "kwargs,match",
    [({"profile": "huge"}, "profile"), ({"directions": ("sideways",)}, "directions"), ({"memory": "some"}, "memory")],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    args = {"profile": "quick", "results_dir": None, "points": [TINY], "echo": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_ratio_table(**args)


def test_grid_point_rejects_bad_shapes():
    with pytest.raises(ValueError, match="k"):
        GridPoint(4, 5, 64, 32, 16)
    with pytest.raises(ValueError, match="swiglu"):
        GridPoint(4, 2, 64, 32, 16, activation="relu")


@pytest.mark.parametrize("backward", [False, True])
def test_calibration_rows_time_both_strategies(backward):
    from sparse_bench.bench.calibrate import crossover_rows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        (row,) = crossover_rows([TINY], num_threads=1, min_run_time=0.001, backward=backward)
    assert row["point"] == TINY.label and row["waste"] >= 1.0
    assert math.isclose(row["sorted_over_padded"], row["sorted_s"] / row["padded_s"], rel_tol=1e-12)
    assert math.isclose(row["grouped_over_sorted"], row["grouped_s"] / row["sorted_s"], rel_tol=1e-12)
    with pytest.raises(ValueError, match="prepack or backward"):
        crossover_rows([TINY], num_threads=1, min_run_time=0.001, prepack=True, backward=True)


def test_forward_backward_peak_counts_the_new_gradients_every_call():
    """The gradients (here 4 MiB of weight) are part of each fwd+bwd call's peak, however many calls ran before:
    dropping them at the start of a call had the previous call's gradients freed inside the reading (0.0x)."""
    layer = torch.nn.Linear(1024, 1024, bias=False)
    x, upstream = torch.randn(4, 1024), torch.randn(4, 1024)
    run = forward_backward_fn(layer, x, upstream)
    run()
    weight_bytes = layer.weight.numel() * layer.weight.element_size()
    peaks = [peak_bytes(run, torch.device("cpu")) for _ in range(2)]
    assert all(weight_bytes <= p < 2 * weight_bytes for p in peaks), peaks
