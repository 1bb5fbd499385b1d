"""Benchmark of the expert-parallel MoE layer: time split (route / exchange / expert compute / combine, plus
backward) and bytes sent per rank.

    torchrun --nproc_per_node=2 -m sparse_bench.distributed.bench --tokens 2048 --d-model 256

Every rank holds ``--tokens`` tokens and E/W experts; the router (top-k, same weights everywhere) routes locally.
Times are medians (and IQRs) over ``--iters`` timed iterations after ``--warmup``; each phase ends with a CUDA
synchronise on GPUs. Phases: route = the router; exchange = counts exchange, gathering the rows to send and both
row all-to-alls (wall time, so it includes waiting for the slowest rank); expert_compute = regrouping received rows
by expert, the grouped FFN and the inverse regroup; combine = weighting and the per-token sum; forward = all of
these; backward = the whole backward pass (it runs the two all-to-alls again, reversed). Rank 0 prints a table and
stores one record per rank in the results store of ``--out``.
Without torchrun's environment the script runs as a single process (W = 1).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from ..experts import ExpertBank
from ..moe import MoELayer
from ..routing import TopKRouter
from .expert_parallel import PHASES, ExpertParallelDispatch
from .group import DEFAULT_TIMEOUT_S, device_for_backend, free_port, init_from_env

TIMED = ("route",) + PHASES + ("forward", "backward")
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sparse_bench.distributed.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=2048, help="tokens per rank (default 2048)")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--d-hidden", type=int, default=512)
    p.add_argument("--experts", type=int, default=8, help="E, total experts (divisible by the world size)")
    p.add_argument("--k", type=int, default=2, help="experts per token")
    p.add_argument("--activation", default="relu", choices=("relu", "gelu", "swiglu"))
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, choices=("gloo", "nccl"), help="default: nccl with CUDA, else gloo")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank (default: cores / local ranks)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="collective timeout in seconds")
    p.add_argument("--out", default=None,
                   help="results directory (or .sqlite file) for the records (default $SPARSE_BENCH_RESULTS, "
                   "else results; '' = none)")
    args = p.parse_args(argv)
    for name in ("tokens", "d_model", "d_hidden", "experts", "k", "iters"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def _single_process_env() -> None:
    """Let a plain ``python -m`` run act as a one-rank torchrun launch."""
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def run_rank(args, rank: int, world_size: int, device: torch.device) -> dict:
    """Build this rank's layer and inputs, time ``args.iters`` iterations; return per-phase samples and bytes."""
    router = TopKRouter(args.d_model, args.experts, k=args.k, generator=torch.Generator().manual_seed(args.seed))
    bank = ExpertBank(args.experts // world_size, args.d_model, args.d_hidden, activation=args.activation,
                      generator=torch.Generator().manual_seed(args.seed * 1_000 + rank + 1))
    layer = MoELayer(router, bank, dispatch=ExpertParallelDispatch(args.experts)).to(device)
    layer.dispatcher.timed = True
    gen = torch.Generator().manual_seed(args.seed * 1_000 + 500 + rank)
    x = torch.randn(args.tokens, args.d_model, generator=gen).to(device).requires_grad_()
    upstream = torch.randn(args.tokens, args.d_model, generator=gen).to(device)
    samples = {phase: [] for phase in TIMED}
    for step in range(args.warmup + args.iters):
        start = _sync(device)
        plan = layer.router(x)
        routed = _sync(device)
        y = layer.dispatcher(x, plan, layer.experts)
        done = _sync(device)
        (y * upstream).sum().backward()
        back = _sync(device)
        layer.zero_grad(set_to_none=True)
        x.grad = None
        if step >= args.warmup:
            samples["route"].append(routed - start)
            for phase in PHASES:
                samples[phase].append(layer.dispatcher.last_stats.seconds.get(phase, 0.0))
            samples["forward"].append(done - start)
            samples["backward"].append(back - done)
    stats = layer.dispatcher.last_stats
    return {"rank": rank, "samples": samples, "bytes_sent": stats.bytes_sent, "rows_sent": stats.rows_sent,
            "rows_returned": stats.rows_returned, "metadata_bytes": stats.metadata_bytes, "dropped": plan.dropped}


def predicted_uniform_bytes(args, world_size: int, element_size: int) -> float:
    """2 T k d (W - 1)/W bytes per element: the expectation for uniformly random top-k routing."""
    return 2 * args.tokens * args.k * args.d_model * (world_size - 1) / world_size * element_size


def make_records(args, results: list[dict], world_size: int, backend: str, device: torch.device) -> list[dict]:
    from sparse_bench.results import library_versions

    command = f"torchrun --nproc_per_node={world_size} -m sparse_bench.distributed.bench {shlex.join(sys.argv[1:])}"
    records = []
    for res in results:
        seconds = {}
        for phase, values in res["samples"].items():
            q25, q50, q75 = np.percentile(values, [25, 50, 75])
            seconds[phase] = {"median": float(q50), "iqr": float(q75 - q25)}
        records.append({
            "name": "expert_parallel_bench", "world_size": world_size, "rank": res["rank"], "backend": backend,
            "device": device.type, "tokens_per_rank": args.tokens, "d_model": args.d_model, "d_hidden": args.d_hidden,
            "num_experts": args.experts, "k": args.k, "activation": args.activation, "dtype": "float32",
            "iters": args.iters, "warmup": args.warmup, "seed": args.seed, "threads_per_rank": torch.get_num_threads(),
            "seconds": seconds, "bytes_sent": res["bytes_sent"], "rows_sent": res["rows_sent"],
            "rows_returned": res["rows_returned"], "metadata_bytes": res["metadata_bytes"], "dropped": res["dropped"],
            "predicted_bytes_uniform": predicted_uniform_bytes(args, world_size, 4),
            "command": command.strip(),
            "unix_time": time.time(), "versions": library_versions(),
        })
    return records


def format_table(records: list[dict]) -> str:
    """One line per rank: median ms per phase, MB sent (measured and the uniform-routing expectation)."""
    head = records[0]
    lines = [
        f"W={head['world_size']} backend={head['backend']} device={head['device']} "
        f"tokens/rank={head['tokens_per_rank']} d={head['d_model']} h={head['d_hidden']} E={head['num_experts']} "
        f"k={head['k']} threads/rank={head['threads_per_rank']} iters={head['iters']}",
        "rank " + " ".join(f"{p + '_ms':>17}" for p in TIMED) + "   MB_sent  MB_uniform_pred",
    ]
    for rec in records:
        cells = " ".join(
            f"{rec['seconds'][p]['median'] * 1e3:9.2f}±{rec['seconds'][p]['iqr'] * 1e3:7.2f}" for p in TIMED
        )
        sent, predicted = rec["bytes_sent"] / 1e6, rec["predicted_bytes_uniform"] / 1e6
        lines.append(f"{rec['rank']:>4} {cells} {sent:9.4g} {predicted:9.4g}")
    lines.append("(median ± IQR over iterations; MB = 1e6 bytes of token rows sent to other ranks in one forward)")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    _single_process_env()
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // local_ranks))
    info = init_from_env(args.backend, timeout_s=args.timeout)
    backend = dist.get_backend()
    device = device_for_backend(backend)
    try:
        if args.experts % info.world_size:
            raise SystemExit(f"--experts={args.experts} is not divisible by the world size {info.world_size}")
        result = run_rank(args, info.rank, info.world_size, device)
        gathered = [None] * info.world_size
        dist.all_gather_object(gathered, result)
        if info.rank == 0:
            records = make_records(args, gathered, info.world_size, backend, device)
            print(format_table(records), flush=True)
            if args.out != "":
                from sparse_bench.results.recorder import Recorder

                with Recorder(args.out or None, command=records[0]["command"], seed=args.seed) as recorder:
                    recorder.add("distributed", records)
                print(f"stored {len(records)} records in {recorder.path}", flush=True)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
