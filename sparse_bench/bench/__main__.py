"""``python -m sparse_bench.bench [--quick] [--results DIR] [--device cuda] [--dtype bfloat16]``: print the
ratio table and append it as JSON lines."""

from __future__ import annotations

import argparse
import warnings

from .allocator import add_allocator_argument, use_allocator
from .device import DTYPES, add_device_arguments, resolve_device
from .ratio_table import DIRECTIONS, run_ratio_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparse_bench.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="two small grid points (< 2 minutes on 2 cores)")
    parser.add_argument("--results", default="results", help="results directory (default: results)")
    parser.add_argument("--no-write", action="store_true", help="print only; write no records")
    parser.add_argument("--threads", type=int, default=2, help="torch thread count (default 2)")
    parser.add_argument("--min-run-time", type=float, default=None, help="seconds of timed calls per measurement")
    parser.add_argument("--direction", choices=DIRECTIONS, action="append", help="repeatable; default both")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--dispatch", default="auto", help="our layer's dispatch strategy (default auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peers", nargs="+", help="peers to time (default: by profile; see bench.peers)")
    add_allocator_argument(parser)
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    use_allocator(args.allocator)
    warnings.simplefilter("ignore", UserWarning)  # noisy-IQR warnings: the IQR is in the records
    run_ratio_table(
        "quick" if args.quick else "full",
        None if args.no_write else args.results,
        directions=tuple(args.direction) if args.direction else DIRECTIONS,
        num_threads=args.threads,
        min_run_time=args.min_run_time,
        memory=None if args.no_memory else "default",
        seed=args.seed,
        dispatch=args.dispatch,
        peers=args.peers,
        device=device,
        dtype=DTYPES[args.dtype],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
