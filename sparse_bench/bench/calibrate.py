"""Measure the crossover behind ``dispatch="auto"``: time of "sorted" over "padded" per shape and thread
count, and of the opt-in "grouped" (PyTorch's grouped GEMM) over "sorted".

``python -m sparse_bench.bench.calibrate [--threads 1 2] [--min-run-time S] [--prepack | --backward]
[--device D] [--dtype T]`` prints one line per grid point with the padding waste (E * C_max / A),
``sorted / padded`` (> 1: padded is faster) and ``grouped / sorted``, for the forward without autograd;
``--prepack`` runs "sorted" on prepacked expert weights (``ExpertBank.prepack``, CPU float32); ``--backward``
times forward+backward into x and every weight instead. The ``AUTO_PADDED_*`` constants in
``sparse_bench/dispatch.py`` quote its output.
"""

from __future__ import annotations

import argparse
import warnings

import torch

from ..dispatch import padding_waste
from ..moe import MoELayer
from ..threads import pinned_threads
from .allocator import add_allocator_argument, use_allocator
from .device import DTYPES, add_device_arguments, is_cpu_float32, resolve_device
from .grid import GridPoint, issue_grid
from .peers import build_case, forward_backward_fn, forward_fn
from .timing import time_interleaved


def crossover_rows(points: list[GridPoint], num_threads: int, min_run_time: float, seed: int = 0,
                   prepack: bool = False, backward: bool = False, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> list[dict]:
    """For each point: padding waste and the medians of the sorted (on prepacked weights if prepack), padded
    and grouped strategies, forward without autograd, or forward+backward if backward; device and dtype as in
    ``build_case``."""
    if prepack and backward:
        raise ValueError("prepacked weights serve forwards without autograd only: give prepack or backward")
    if prepack and not is_cpu_float32(device, dtype):
        raise ValueError("prepacked weights are CPU float32 only: drop prepack or run on cpu in float32")
    rows = []
    with pinned_threads(num_threads):
        for point in points:
            case = build_case(point, seed=seed, dispatch="sorted", peers=("padded", "grouped"), device=device,
                              dtype=dtype)
            layer = MoELayer(case.layer.router, case.layer.experts.sharing_weights(prepack), dispatch="sorted")
            modules = {"sorted": layer, **case.modules}
            fns = {name: forward_backward_fn(module, case.x, case.upstream) if backward else forward_fn(module, case.x)
                   for name, module in modules.items()}
            t = time_interleaved(fns, num_threads, min_run_time)
            sorted_t, padded_t = t["sorted"].median, t["padded"].median
            grouped_t = t["grouped"].median if "grouped" in t else float("nan")  # nan: it cannot run here
            rows.append(
                {"point": point.label, "threads": num_threads, "waste": padding_waste(case.plan),
                 "sorted_s": sorted_t, "padded_s": padded_t, "sorted_over_padded": sorted_t / padded_t,
                 "grouped_s": grouped_t, "grouped_over_sorted": grouped_t / sorted_t}
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparse_bench.bench.calibrate", description=__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--min-run-time", type=float, default=0.3)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--prepack", action="store_true", help="sorted runs on prepacked expert weights")
    mode.add_argument("--backward", action="store_true", help="time forward+backward instead of the forward")
    add_allocator_argument(parser)
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    use_allocator(args.allocator)
    warnings.simplefilter("ignore", UserWarning)
    for threads in args.threads:
        try:  # a bad device, or prepack off CPU float32, is refused before anything is timed
            rows = crossover_rows(issue_grid(), threads, args.min_run_time, prepack=args.prepack,
                                  backward=args.backward, device=resolve_device(args.device),
                                  dtype=DTYPES[args.dtype])
        except ValueError as error:
            parser.error(str(error))
        for row in rows:
            print(f"{row['point']:34s} threads={threads} waste={row['waste']:.2f} "
                  f"sorted/padded={row['sorted_over_padded']:.2f} "
                  f"grouped/sorted={row['grouped_over_sorted']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
