"""``sparse-bench bench`` (the MoE ratio table: the grid, one shape, or a preset), ``components`` (the other
cost ratios) and ``calibrate`` (the crossovers behind ``dispatch="auto"``). torch is imported when a command
runs, never for ``--help``."""

from __future__ import annotations

from pathlib import Path

import click

from ..bench.presets import CPU_TOKENS, CUDA_TOKENS, PRESETS, ROUTERS
from .options import (
    EXIT_OK,
    Output,
    UserError,
    allocator_option,
    collected_warnings,
    command_line,
    device_option,
    dtype_option,
    given,
    json_option,
    min_run_time_option,
    no_write_option,
    profile_option,
    report_warnings,
    results_option,
    seed_option,
    summarise_warnings,
    threads_option,
    usable_store,
    user_errors,
)


class ShapeType(click.ParamType):
    """E,k,T,d,h: five positive integers."""

    name = "E,k,T,d,h"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            numbers = tuple(int(part) for part in parts)
        except ValueError:
            numbers = ()
        if len(numbers) != 5 or min(numbers) < 1:
            self.fail(f"must be E,k,T,d,h (five positive integers: experts, top-k, tokens, model width, "
                      f"expert width), got {value!r}", param, ctx)
        return numbers


def resolve_where(device: str, dtype: str):
    """(torch.device, torch.dtype) named by --device and --dtype; UserError for an absent device."""
    from ..bench.device import resolve_device, torch_dtype

    with user_errors(ValueError):
        return resolve_device(device), torch_dtype(dtype)


def measure_components(recorder, num_threads: int, min_run_time: float, out: Output) -> list[dict]:
    """The component ratios, printed, and stored in ``recorder``'s run (None: not stored)."""
    from ..bench.components import format_components, run_components
    from ..bench.ratio_table import write_records

    records = run_components(num_threads, min_run_time)
    out.say(format_components(records))
    if recorder is not None:
        write_records(records, recorder)
    return records


def run_bench(profile: str, recorder, where, dtype, seed: int, out: Output) -> list[dict]:
    """The ratio table of ``profile`` and (CPU float32 only, their targets' setting) the component ratios, for
    ``sparse-bench run``; records stored in ``recorder``'s run."""
    from ..bench import run_ratio_table
    from ..bench.device import is_cpu_float32

    records = run_ratio_table(profile, recorder, device=where, dtype=dtype, seed=seed, echo=out.say)
    if is_cpu_float32(where, dtype):
        records += measure_components(recorder, 2, 0.1 if profile == "quick" else 0.3, out)
    else:
        out.say("component ratios (routers, DSM, conv and pooling): measured for CPU float32 only, skipped")
    return records


def _points(shape, preset, tokens, router, where, dtype, out: Output):
    """(points to time or None for the profile's grid, the resolved preset or None)."""
    from ..bench.grid import GridPoint
    from ..bench.presets import preset_point

    try:
        if shape is not None:
            return [GridPoint(*shape, router=router)], None
        if preset is not None:
            resolved = preset_point(preset, where.type, tokens, router, itemsize=dtype.itemsize)
            out.say(resolved.describe())
            return [resolved.point], resolved
    except ValueError as error:
        option = f"--shape {','.join(map(str, shape))}" if shape is not None else f"--preset {preset}"
        raise UserError(f"{option}: {error}") from None
    return None, None


@click.command(short_help="Time the MoE ratio table: a grid, a shape or a preset.")
@profile_option("full")
@click.option("--shape", type=ShapeType(), default=None, metavar="E,k,T,d,h",
              help="time this one shape instead of a grid: experts, top-k, tokens, d_model, d_hidden")
@click.option("--preset", type=click.Choice(tuple(PRESETS)), default=None,
              help="time one published model's MoE layer (full size on CUDA, d and h scaled down on CPU)")
@click.option("--tokens", type=click.IntRange(1), default=None,
              help=f"tokens of a --preset's batch (default {CPU_TOKENS} on CPU, {CUDA_TOKENS} on CUDA)")
@click.option("--router", type=click.Choice(ROUTERS), default="topk", show_default=True,
              help="the router of a --shape or --preset layer (hash: k must be 1)")
@click.option("--dispatch", default="auto", show_default=True,
              help="our layer's dispatch strategy (a name of sparse_bench.dispatch.DISPATCHERS)")
@device_option
@dtype_option
@click.option("--backward/--forward-only", default=True, show_default=True,
              help="time forward and forward+backward, or the forward alone")
@threads_option(2)
@min_run_time_option(None)
@click.option("--peer", "peers", multiple=True, metavar="NAME",
              help="a peer to time beside our layer (repeatable; default by profile, see bench.peers)")
@click.option("--against", "revisions", multiple=True, metavar="REV",
              help="also time our layer as of git revision REV (a branch, tag or commit) in the same rounds, "
                   "as peer ours@SHA: never slower than it is a speed target (repeatable)")
@click.option("--no-memory", is_flag=True, help="skip the peak-memory measurements")
@seed_option("seed of the weights and inputs", default=0)
@allocator_option
@results_option
@no_write_option
@json_option
def bench(profile, shape, preset, tokens, router, dispatch, device, dtype, backward, threads, min_run_time,
          peers, revisions, no_memory, seed, allocator, results: Path, no_write: bool, as_json: bool) -> int:
    """The MoE ratio table: R = t_layer / t_floor with its interval, shape x overhead, peers, memory, and
    absolute figures (us per call, tokens/s, GFLOP/s, grouped floor), for the profile's grid or one layer."""
    from ..bench.allocator import use_allocator
    from ..bench.peers import ALL_PEERS
    from ..bench.ratio_table import DIRECTIONS, FULL_PEERS, QUICK_PEERS, run_ratio_table, write_records
    from ..bench.revision import RevisionError, peer_name, resolve
    from ..dispatch import DISPATCHERS
    from ..results.recorder import Recorder

    if shape is not None and preset is not None:
        raise UserError("give --shape or --preset, not both")
    if tokens is not None and preset is None:
        raise UserError("--tokens sets the batch of a --preset (a --shape gives T itself)")
    if given(click.get_current_context(), "router") and shape is None and preset is None:
        raise UserError("--router applies to a --shape or --preset layer (the grid's points route top-k)")
    if dispatch not in DISPATCHERS:
        raise UserError(f"--dispatch must be one of {', '.join(sorted(DISPATCHERS))}, got {dispatch!r}")
    unknown = [name for name in peers if name not in ALL_PEERS]
    if unknown:
        raise UserError(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(ALL_PEERS)}")
    if revisions:
        try:
            named = tuple(peer_name(resolve(rev)) for rev in revisions)
        except RevisionError as error:
            raise UserError(f"--against: {error}") from None
        peers = (peers or (QUICK_PEERS if profile == "quick" else FULL_PEERS)) + named
    out = Output(as_json)
    where, torch_dt = resolve_where(device, dtype)
    points, resolved = _points(shape, preset, tokens, router, where, torch_dt, out)
    if not no_write:
        usable_store(results)
    use_allocator(allocator)
    recorder = None if no_write else Recorder(results, command=command_line(), profile=profile, seed=seed)
    with collected_warnings() as caught:
        try:
            records = run_ratio_table(
                profile, recorder if resolved is None else None, points=points,
                directions=DIRECTIONS if backward else ("forward",), peers=peers or None,
                num_threads=threads, min_run_time=min_run_time, memory=None if no_memory else "default",
                seed=seed, dispatch=dispatch, device=where, dtype=torch_dt, echo=out.say)
            if resolved is not None:  # the preset and its scale go into every record, then to the store
                for record in records:
                    record["preset"] = resolved.to_dict()
                if recorder is not None:
                    write_records(records, recorder)
        finally:
            if recorder is not None:
                recorder.close()
    summary = summarise_warnings(caught)
    report_warnings(out, summary)
    if recorder is not None and recorder.path is not None:
        out.say(f"records stored in {recorder.path} (run {recorder.run_id})")
    out.data({"results": None if recorder is None else str(recorder.path),
              "run_id": None if recorder is None else recorder.run_id, "records": records,
              "warnings": summary})
    return EXIT_OK


@click.command(short_help="Time the component cost ratios (routers, DSM, conv).")
@threads_option(2)
@min_run_time_option(0.3)
@allocator_option
@results_option
@no_write_option
@json_option
def components(threads: int, min_run_time: float, allocator: str, results: Path, no_write: bool,
               as_json: bool) -> int:
    """The cost ratios of the parts other than the MoE layer (routers, DSM, conv and pooling), each against
    its target, timed side by side (CPU float32)."""
    from ..bench.allocator import use_allocator
    from ..results.recorder import Recorder

    out = Output(as_json)
    if not no_write:
        usable_store(results)
    use_allocator(allocator)
    recorder = None if no_write else Recorder(results, command=command_line())
    with collected_warnings() as caught:
        try:
            records = measure_components(recorder, threads, min_run_time, out)
        finally:
            if recorder is not None:
                recorder.close()
    summary = summarise_warnings(caught)
    report_warnings(out, summary)
    out.data({"results": None if recorder is None else str(recorder.path), "records": records,
              "warnings": summary})
    return EXIT_OK


@click.command(short_help="Measure the crossovers behind dispatch=auto.")
@threads_option((1, 2), multiple=True)
@min_run_time_option(0.3)
@click.option("--prepack", is_flag=True, help="time sorted on prepacked expert weights (CPU float32)")
@click.option("--backward", is_flag=True, help="time forward+backward instead of the forward")
@allocator_option
@device_option
@dtype_option
@json_option
def calibrate(threads: tuple[int, ...], min_run_time: float, prepack: bool, backward: bool, allocator: str,
              device: str, dtype: str, as_json: bool) -> int:
    """The crossovers behind dispatch="auto" on the benchmark grid: sorted / padded per shape and thread
    count, with the padding waste, and grouped / sorted (constants kept in sparse_bench/dispatch.py)."""
    from ..bench.allocator import use_allocator
    from ..bench.calibrate import crossover_rows
    from ..bench.grid import full_grid

    if prepack and backward:
        raise UserError("prepacked weights serve forwards without autograd only: give --prepack or "
                        "--backward")
    out = Output(as_json)
    where, torch_dt = resolve_where(device, dtype)
    use_allocator(allocator)
    rows = []
    with collected_warnings() as caught:
        for count in threads:
            with user_errors(ValueError):  # prepacking off CPU float32 is refused before anything is timed
                found = crossover_rows(full_grid(), count, min_run_time, prepack=prepack, backward=backward,
                                       device=where, dtype=torch_dt)
            for row in found:
                out.say(f"{row['point']:34s} threads={count} waste={row['waste']:.2f} "
                        f"sorted/padded={row['sorted_over_padded']:.2f} "
                        f"grouped/sorted={row['grouped_over_sorted']:.2f}")
            rows += found
    summary = summarise_warnings(caught)
    report_warnings(out, summary)
    out.data({"rows": rows, "warnings": summary})
    return EXIT_OK
