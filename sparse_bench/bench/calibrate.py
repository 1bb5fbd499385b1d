"""Measure the crossover behind ``dispatch="auto"``: time of "sorted" over "padded" per shape and thread
count, and of the opt-in "grouped" (PyTorch's grouped GEMM) over "sorted".

``sparse-bench calibrate [--threads 1 --threads 2] [--min-run-time S] [--prepack | --backward] [--device D]
[--dtype T]`` (or ``python -m sparse_bench.bench.calibrate``) prints one line per grid point with the padding
waste (E * C_max / A), ``sorted / padded`` (> 1: padded is faster) and ``grouped / sorted``, for the forward
without autograd;
``--prepack`` runs "sorted" on prepacked expert weights (``ExpertBank.prepack``, CPU float32); ``--backward``
times forward+backward into x and every weight instead; ``--device cuda`` measures the CUDA crossover. The
measurements behind the crossover constants in ``sparse_bench/dispatch.py`` (``AUTO_PADDED_*`` on CPU,
``AUTO_DEVICE_STRATEGY`` elsewhere) are kept in docs/performance-notes.md.
"""

from __future__ import annotations

import sys

import torch

from ..dispatch import padding_waste
from ..moe import MoELayer
from ..threads import pinned_threads
from .device import is_cpu_float32
from .grid import GridPoint
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
    """``python -m sparse_bench.bench.calibrate ARGS`` is ``sparse-bench calibrate ARGS``."""
    from ..cli import main as cli_main

    return cli_main(["calibrate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
