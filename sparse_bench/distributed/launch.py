"""Run a function on W local processes in one process group, with a deadline, and reap every process.

``run_workers(fn, world_size, args)`` starts W processes (forkserver: a fresh server process imports torch once
and forks every rank, so ranks start fast and never inherit a parent's thread pools), joins them into one group on
127.0.0.1 (a free port, a timeout on every collective), calls ``fn(rank, world_size, *args)`` in each and returns
the W return values. When a rank fails (raises, exits early, or its collective times out), the others get
``grace_s`` seconds to finish, then every survivor is terminated; past ``timeout_s`` all are terminated. Either
way every process is joined before ``WorkerFailure`` is raised, naming what each rank did. Used by the tests;
torchrun is the user launcher.

``fn`` and its args must be picklable by reference (a module-level function), as with the spawn start method.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .group import free_port

POLL_S = 0.05
PRELOAD = ["torch", "sparse_bench.distributed"]  # imported once by the fork server, not by every rank


class WorkerFailure(RuntimeError):
    """Some rank did not return. ``statuses[rank]`` says what it did; ``exitcodes`` and ``pids`` are per rank."""

    def __init__(self, message: str, statuses: list[str], exitcodes: list[int | None], pids: list[int]):
        super().__init__(message)
        self.statuses, self.exitcodes, self.pids = statuses, exitcodes, pids


def _worker_main(rank, world_size, port, backend, pg_timeout_s, threads, result_dir, fn, args):
    """Entry point of one spawned rank: init the group, call fn, save its outcome to ``result_dir/rank{r}.pt``."""
    torch.set_num_threads(threads)
    path = Path(result_dir) / f"rank{rank}.pt"
    try:
        dist.init_process_group(
            backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
            timeout=datetime.timedelta(seconds=pg_timeout_s),
        )
        value = fn(rank, world_size, *args)
        torch.save({"ok": True, "value": value}, path)
    except BaseException as err:  # report everything, including KeyboardInterrupt, then exit nonzero
        torch.save({"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}, path)
        os._exit(1)  # skip interpreter teardown, which can block on a half-closed group
    if dist.is_initialized():
        dist.destroy_process_group()


def _wait(procs, deadline: float, grace_s: float) -> bool:
    """Poll until all processes exit, a failure's grace period ends, or the deadline passes. True if timed out."""
    failed_at = None
    while any(p.is_alive() for p in procs):
        now = time.monotonic()
        if now >= deadline:
            return True
        if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
            failed_at = now
        if failed_at is not None and now - failed_at >= grace_s:
            return False
        time.sleep(POLL_S)
    return False


def _reap(procs) -> None:
    """Terminate survivors (SIGTERM, then SIGKILL after 2 s) and join every process."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(2.0)
        if p.is_alive():
            p.kill()
            p.join()


def run_workers(
    fn,
    world_size: int,
    args: tuple = (),
    *,
    timeout_s: float = 60.0,
    pg_timeout_s: float = 10.0,
    grace_s: float = 5.0,
    backend: str = "gloo",
    threads: int = 1,
) -> list:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` local ranks; return their values in rank order.

    timeout_s: deadline for the whole run (spawn included); pg_timeout_s: how long one collective may wait for a
    peer; grace_s: how long survivors may keep running after a rank failed; threads: torch threads per rank.
    Raises WorkerFailure (after reaping every process) unless every rank returned.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sparse_bench_workers_") as result_dir:
        procs = [
            ctx.Process(
                target=_worker_main,
                args=(rank, world_size, port, backend, pg_timeout_s, threads, result_dir, fn, args),
                daemon=True,
            )
            for rank in range(world_size)
        ]
        started = time.monotonic()
        for p in procs:
            p.start()
        try:
            timed_out = _wait(procs, started + timeout_s, grace_s)
        finally:
            _reap(procs)
        outcomes = [_load(Path(result_dir) / f"rank{rank}.pt") for rank in range(world_size)]
    statuses = [_status(outcome, p, timed_out) for outcome, p in zip(outcomes, procs)]
    if timed_out or not all(o is not None and o["ok"] for o in outcomes):
        lead = f"timed out after {timeout_s:.0f} s" if timed_out else "a rank failed"
        lines = "\n".join(f"  rank {r}: {s}" for r, s in enumerate(statuses))
        raise WorkerFailure(
            f"{world_size} worker processes: {lead} (all reaped)\n{lines}",
            statuses, [p.exitcode for p in procs], [p.pid for p in procs],
        )
    return [o["value"] for o in outcomes]


def _load(path: Path):
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=False)
    except Exception as err:  # a rank killed mid-write leaves a truncated file
        return {"ok": False, "error": f"unreadable result file ({type(err).__name__})", "traceback": ""}


def _status(outcome, proc, timed_out: bool) -> str:
    if outcome is not None:
        return "returned" if outcome["ok"] else f"raised {outcome['error']}"
    if timed_out and proc.exitcode is not None and proc.exitcode < 0:
        return f"still running at the deadline, killed (signal {-proc.exitcode})"
    if proc.exitcode is not None and proc.exitcode < 0:
        return f"terminated by signal {-proc.exitcode} after another rank failed"
    return f"exited with code {proc.exitcode} before reporting"
