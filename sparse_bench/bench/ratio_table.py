"""The ratio table: our MoE layer against the GEMM floor and against peers, measured side by side in one process.

For each grid point and direction (forward; forward+backward) it times, with the same thread count and in
alternation (``timing.time_interleaved``):
the floor (expert GEMMs on well-shaped blocks, scaled to A rows), the grouped floor (the same GEMMs at the
realised per-expert counts), our layer, and each peer; it measures peak memory of our layer and HF's block.
``R = t_layer / t_floor`` splits as ``shape = t_grouped / t_floor`` times ``overhead = t_layer / t_grouped``;
``R_roofline = t_layer / max(t_floor, t_weights)`` also counts the weight-traffic floor (``floor.py``).
R and each speedup over a peer also get a 95% confidence interval from the per-round ratios
(``timing.paired_ratio_interval``), which the speed targets' verdicts read (``speed_targets``).
Each record also gives absolute figures: microseconds per call of our layer (a forward, or a
forward+backward), tokens per second, achieved GFLOP/s (expert FLOPs over that time) and the grouped floor's
microseconds; and the ATen calls of one forward and how many of them read a value on the host
(``op_count``: on a GPU every call is at least one kernel launch, and every host read a synchronisation).
A shared expert (of width n h, on every token) counts as n more rows per token in every floor.
Records go to the results store as ``bench`` measurements (``sparse_bench.results``).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..results import library_versions
from ..results.recorder import Recorder, record_once
from ..threads import pinned_threads
from .allocator import allocator_state
from .device import is_cpu_float32
from .floor import (
    FLOOR_BLOCK_ROWS,
    STREAM_BYTES,
    floor_block_fn,
    grouped_floor_fn,
    routed_flops,
    stream_read_fn,
    weight_traffic_bytes,
)
from .grid import PROFILES, GridPoint, grid_for
from .peers import ALL_PEERS, FORWARD_ONLY_PEERS, Case, build_case, forward_backward_fn, forward_fn
from .speed_targets import format_target_summary, record_targets, targets_apply
from .op_count import count_ops
from .timing import Timing, paired_ratio_interval, peak_bytes, time_call, time_interleaved

FLOOR_ONE_THREAD = "floor on one thread"
# Parallel efficiency below which a run is flagged as contended. Measured here (2 threads, d=512, 2026-12-03):
# on an otherwise idle machine the floor block ran 1.88-2.01x faster on 2 threads than on 1 (the 4 rows of
# `make report`; 1.94-2.01 in an earlier 7-round comparison); with three other Python processes running, one
# row of the same quick table read 1.16x, its R interval [1.49, 30.53].
CONTENDED_EFFICIENCY = 0.75
DIRECTIONS = ("forward", "forward_backward")
MIN_RUN_TIME = {"quick": 0.05, "full": 0.2}  # seconds of timed calls per measurement
QUICK_PEERS = ("hf_mixtral", "gshard_einsum")
FULL_PEERS = ALL_PEERS


def memory_budget(point: GridPoint, itemsize: int, backward: bool, weight_bytes: int) -> int:
    """Bytes of x + y + routed activations (gathered rows, 2h pre-activation, h activation per routed row;
    a shared expert's rows counted as routed ones).

    With backward: twice that (a gradient per activation) plus the weight gradients.
    """
    T, d, h = point.num_tokens, point.d_model, point.d_hidden
    A = point.num_assignments + T * point.shared_experts
    forward = (2 * T * d + A * (d + 3 * h)) * itemsize
    return 2 * forward + weight_bytes if backward else forward


def measure_point(case: Case, direction: str, num_threads: int, min_run_time: float, memory: str | None) -> dict:
    """One record: floor, grouped floor, our layer, peers and peak memory (memory: "ours", "all" or None)."""
    point, plan, layer = case.point, case.plan, case.layer
    backward = direction == "forward_backward"
    bank = layer.experts
    shared = layer.shared_expert.expert if layer.shared_expert is not None else None
    A = plan.num_assignments
    rows = A + point.num_tokens * point.shared_experts  # rows of width h through the experts, shared included
    label = f"{point.label} {direction}"

    def fn_for(module):
        return forward_backward_fn(module, case.x, case.upstream) if backward else forward_fn(module, case.x)

    counts = plan.expert_counts.tolist()
    stream = time_call(stream_read_fn(case.x.device), num_threads, min_run_time, f"stream {label}")
    traffic = weight_traffic_bytes(bank.w_in, bank.w_out, counts, backward)
    grouped_fns = [grouped_floor_fn(bank.w_in, bank.w_out, counts, backward)]
    if shared is not None:  # its GEMMs over every token, after the routed experts'
        traffic += weight_traffic_bytes(shared.w_in, shared.w_out, [point.num_tokens], backward)
        grouped_fns.append(grouped_floor_fn(shared.w_in, shared.w_out, [point.num_tokens], backward))
    bandwidth = STREAM_BYTES / stream.median  # bytes / s
    t_weights = traffic / bandwidth
    fns = {"floor": floor_block_fn(bank.w_in[0], bank.w_out[0], backward),
           "grouped": _in_turn(grouped_fns),
           "ours": fn_for(layer), "router": forward_fn(layer.router, case.x)}
    timed = [name for name in case.modules if not (backward and name in FORWARD_ONLY_PEERS)]
    fns.update({f"peer {name}": fn_for(case.modules[name]) for name in timed})
    scaling = num_threads > 1 and case.x.device.type == "cpu"
    if scaling:  # the same floor block on one thread, in the same rounds: is the machine's parallelism there?
        fns[FLOOR_ONE_THREAD] = fns["floor"]
    measured = time_interleaved(fns, num_threads, min_run_time, threads={FLOOR_ONE_THREAD: 1})
    timings = {name: t.to_dict() for name, t in measured.items()}
    block, grouped, ours, router = (timings[name] for name in ("floor", "grouped", "ours", "router"))
    t_floor = block["median_s"] * rows / FLOOR_BLOCK_ROWS
    peers = {name: {"skipped": reason} for name, reason in case.skipped.items()}
    peers.update({name: {"skipped": "forward only"} for name in case.modules if name not in timed})
    for name in timed:
        timing = timings[f"peer {name}"]
        timing["ratio_to_floor"] = timing["median_s"] / t_floor
        timing["speedup_of_ours"] = timing["median_s"] / ours["median_s"]
        timing["speedup_interval"] = paired_ratio_interval(measured[f"peer {name}"], measured["ours"])
        peers[name] = timing
    R = ours["median_s"] / t_floor
    flops = routed_flops(rows, point.d_model, point.d_hidden, backward)
    ops = count_ops(forward_fn(layer, case.x))  # one forward without autograd, outside the timed rounds
    record = {
        "kind": "moe_ratio_table",
        "name": record_name(direction, point, case.x.device, case.x.dtype),
        "direction": direction,
        "point": point.to_dict(),
        "dispatch": layer.dispatch_name,
        "chosen_strategy": _chosen(layer, plan, backward),
        "num_threads": num_threads,
        "device": str(case.x.device),
        "dtype": str(case.x.dtype).replace("torch.", ""),
        "num_assignments": A,
        "expert_rows": rows,
        "max_load_over_mean": max(counts) * len(counts) / A,
        "flops": flops,
        "gemm_gflops": routed_flops(FLOOR_BLOCK_ROWS, point.d_model, point.d_hidden, backward) / block["median_s"] * 1e-9,
        "floor_block": block,
        "t_floor_s": t_floor,
        "grouped": grouped,
        "ours": ours,
        "R": R,
        # per-round R (the floor block is timed in the same rounds): the interval the targets' verdicts read
        "R_interval": paired_ratio_interval(measured["ours"], measured["floor"],
                                            scale=FLOOR_BLOCK_ROWS / rows),
        "shape": grouped["median_s"] / t_floor,
        "overhead": ours["median_s"] / grouped["median_s"],
        "overhead_interval": paired_ratio_interval(measured["ours"], measured["grouped"]),
        "weight_traffic": {"bytes": traffic, "bandwidth_gb_s": bandwidth * 1e-9, "t_s": t_weights},
        "bound": "weight traffic" if t_weights > t_floor else "compute",
        "R_roofline": ours["median_s"] / max(t_floor, t_weights),  # against the larger of the two floors
        "router": router,  # the router's forward alone (part of t_layer): how much of the overhead is routing
        "router_share": router["median_s"] / ours["median_s"],
        "peers": peers,
        # absolute figures of our layer: per call (a forward, or a forward+backward), per token, per FLOP
        "time_us": ours["median_s"] * 1e6,
        "tokens_per_s": point.num_tokens / ours["median_s"],
        "achieved_gflop_per_s": flops / ours["median_s"] * 1e-9,
        "grouped_floor_us": grouped["median_s"] * 1e6,
        # a cost model for launch-bound shapes: ATen calls of one forward, and those reading on the host
        "ops_per_forward": ops.total,
        "host_syncs_per_forward": ops.host_syncs,
    }
    if scaling:
        record["thread_scaling"] = thread_scaling(measured[FLOOR_ONE_THREAD], measured["floor"], num_threads,
                                                  label)
    if memory:
        record["memory"] = _memory(case, fn_for, backward, compare_hf=memory == "all")
    if targets_apply(record):
        record["targets"] = record_targets(record, direction)
    return record


def _in_turn(fns: list[Callable[[], None]]) -> Callable[[], None]:
    """One callable running ``fns`` one after the other (a single one is returned as it is)."""
    if len(fns) == 1:
        return fns[0]

    def run() -> None:
        for fn in fns:
            fn()

    return run


def thread_scaling(one: Timing, many: Timing, num_threads: int, label: str) -> dict:
    """How much faster the floor block ran on num_threads than on one thread, timed in the same rounds: the
    speedup, its 95% interval and whether the machine looked contended (speedup < CONTENDED_EFFICIENCY x
    num_threads, which also warns). A contended run charges serial work and GEMMs differently than an idle
    machine would, so its R, shape and overhead are not comparable with other runs."""
    speedup = one.median / many.median
    contended = speedup < CONTENDED_EFFICIENCY * num_threads
    if contended:
        warnings.warn(f"{label}: the floor GEMM ran {speedup:.2f}x as fast on {num_threads} threads as on "
                      f"one: other work holds this machine's cores, so this run's ratios are not comparable "
                      f"with an idle machine's", stacklevel=2)
    return {"threads": num_threads, "one_thread_s": one.median, "speedup": speedup,
            "interval": paired_ratio_interval(one, many), "contended": contended}


def record_name(direction: str, point: GridPoint, device: torch.device, dtype: torch.dtype) -> str:
    """"moe_ratio_table/forward/E=8/k=2/T=512/d=512/h=256", then "/cuda/bfloat16" unless CPU float32 (the
    names of the first records, kept so that the report follows them across commits)."""
    name = f"moe_ratio_table/{direction}/{point.label.replace(' ', '/')}"
    if is_cpu_float32(device, dtype):
        return name
    return f"{name}/{device.type}/{str(dtype).replace('torch.', '')}"


def _chosen(layer, plan, backward: bool) -> str:
    from ..dispatch import choose_dispatch

    if layer.dispatch_name != "auto":
        return layer.dispatch_name
    return choose_dispatch(plan, layer.experts, plan.token_index.device, backward=backward)


def _memory(case: Case, fn_for, backward: bool, compare_hf: bool) -> dict:
    itemsize = case.x.element_size()
    weight_bytes = sum(p.numel() * p.element_size() for p in case.layer.parameters())
    budget = memory_budget(case.point, itemsize, backward, weight_bytes)
    ours = peak_bytes(fn_for(case.layer), case.x.device)
    out = {"peak_bytes": ours, "budget_bytes": budget, "ratio": ours / budget}
    if "hf_mixtral" in case.modules and compare_hf:
        out["hf_mixtral_peak_bytes"] = peak_bytes(fn_for(case.modules["hf_mixtral"]), case.x.device)
    return out


def run_ratio_table(
    profile: str = "quick",
    results_dir: str | Path | None = "results",
    *,
    points: Sequence[GridPoint] | None = None,
    directions: Sequence[str] = DIRECTIONS,
    peers: Sequence[str] | None = None,
    num_threads: int = 2,
    min_run_time: float | None = None,
    memory: str | None = "default",
    seed: int = 0,
    dispatch: str = "auto",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    echo: Callable[[str], None] | None = print,
) -> list[dict]:
    """Measure the ratio table for ``profile`` ("quick" or "full"); store the records in ``results_dir``'s
    results store as one run, or in a ``Recorder``'s run.

    points, peers, min_run_time default by profile; memory: "ours" (peak of our layer), "all" (and HF's
    block), None (skip), "default" ("ours" for quick, "all" for full). device and dtype: of the experts and
    activations (``peers.build_case``); the speed targets are judged on CPU float32 records only.
    results_dir=None writes nothing. echo gets each row as it is measured, then
    ``speed_targets.format_target_summary``. Returns the records.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    points = list(points) if points is not None else grid_for(profile)
    peers = tuple(peers) if peers is not None else (QUICK_PEERS if profile == "quick" else FULL_PEERS)
    min_run_time = MIN_RUN_TIME[profile] if min_run_time is None else min_run_time
    if memory == "default":
        memory = "ours" if profile == "quick" else "all"
    if memory not in ("ours", "all", None):
        raise ValueError(f"memory must be 'ours', 'all', 'default' or None, got {memory!r}")
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ValueError(f"directions must be drawn from {DIRECTIONS}, got {direction!r}")
    records = []
    owned = results_dir is not None and not isinstance(results_dir, Recorder)
    recorder = Recorder(results_dir, profile=profile, seed=seed) if owned else results_dir
    with pinned_threads(num_threads):
        for point in points:
            case = build_case(point, seed=seed, dispatch=dispatch, peers=peers, device=device, dtype=dtype)
            point_records = []
            for direction in directions:
                record = measure_point(case, direction, num_threads, min_run_time, memory)
                record.update({"profile": profile, "seed": seed, "timestamp": time.time()})
                point_records.append(record)
                if echo is not None:
                    echo(format_row(record))
            if recorder is not None:  # per point, so an interrupted sweep keeps what it measured
                write_records(point_records, recorder)
            records.extend(point_records)
    if owned:
        recorder.close()
    if echo is not None and any("targets" in r for r in records):
        echo("speed targets, each miss by what meeting it would take (overhead: less routing, gather and combine "
             "time; grouped floor: faster expert GEMMs; floor: beating the FLOP floor)")
        echo(format_target_summary(records))
    return records


def write_records(records: list[dict], results_dir: str | Path | Recorder) -> None:
    """Store records (with library versions and the host allocator) as bench measurements: in ``results_dir``'s
    store as a run of their own, or as part of a ``Recorder``'s run."""
    env = {"versions": library_versions(), "allocator": allocator_state()}
    records = [{**r, **env} for r in records]
    if isinstance(results_dir, Recorder):
        results_dir.add("bench", records)
    else:
        record_once("bench", records, results_dir)


def format_row(record: dict) -> str:
    """One table line: shape, direction, R = shape x overhead (with R's 95% interval), chosen strategy, our
    layer's us per call, tokens/s and GFLOP/s and the grouped floor's us, ATen calls and host reads per
    forward, peers' ratios, memory, and the floor's speedup from one thread to all (flagged when the machine
    was contended)."""
    p = record["point"]
    arrow = "fwd" if record["direction"] == "forward" else "fwd+bwd"
    head = f"E={p['num_experts']:<3d} k={p['k']} T={p['num_tokens']:<5d} h={p['d_hidden']:<5d} {arrow:7s}"
    if p.get("shared_experts"):
        head += f" shared={p['shared_experts']}"
    if p.get("router", "topk") != "topk":
        head += f" router={p['router']}"
    if not targets_apply(record):  # another device or dtype than the targets' CPU float32
        head += f" {record['device']} {record['dtype']}"
    interval = record.get("R_interval")
    spread = f"[{interval['low']:.2f},{interval['high']:.2f}]" if interval else ""
    body = (f"R={record['R']:5.2f}{spread} shape={record['shape']:5.2f} ovh={record['overhead']:5.2f} "
            f"Rroof={record['R_roofline']:5.2f} "
            f"router={record['router_share']:4.0%} [{record['chosen_strategy']}]")
    peers = []
    for name, peer in record["peers"].items():
        peers.append(f"{name}={peer['ratio_to_floor']:.2f}" if "ratio_to_floor" in peer else f"{name}=skip")
    mem = record.get("memory")
    tail = f" mem={mem['ratio']:.2f}x" if mem else ""
    scaling = record.get("thread_scaling")
    if scaling:
        tail += f" threads={scaling['speedup']:.2f}x" + (" CONTENDED" if scaling["contended"] else "")
    if "time_us" in record:  # records written before the absolute figures lack them
        body += (f" {record['time_us']:.0f}us {record['tokens_per_s']:.3g} tok/s "
                 f"{record['achieved_gflop_per_s']:.1f} GFLOP/s "
                 f"grouped floor {record['grouped_floor_us']:.0f}us")
    if "ops_per_forward" in record:
        body += f" ops={record['ops_per_forward']} syncs={record['host_syncs_per_forward']}"
    return f"{head} {body} | {' '.join(peers)}{tail}"


def format_table(records: list[dict]) -> str:
    """The whole table, one line per (point, direction), peers given as their own R (time / floor)."""
    return "\n".join(format_row(r) for r in records)
