"""Provenance: which run, code, machine and libraries made the numbers, from the store's run rows only."""

from __future__ import annotations

import datetime as dt

from sparse_bench.results import Run

from .cells import fmt

MACHINE_KEYS = ("cpu", "arch", "cores", "memory_bytes", "os", "hostname", "torch_threads", "gpu",
                "gpu_memory_bytes", "gpu_count", "cuda")
MACHINE_LABELS = {"cpu": "CPU model", "arch": "architecture", "cores": "CPU cores", "memory_bytes": "memory",
                  "os": "operating system", "hostname": "host", "torch_threads": "torch threads",
                  "gpu": "GPU", "gpu_memory_bytes": "GPU memory", "gpu_count": "GPUs", "cuda": "CUDA"}
VERSION_KEYS = ("python", "torch", "numpy", "scipy", "matplotlib", "scikit-learn", "transformers",
                "hypothesis", "sparse_bench")
RUNS_LISTED = 12


def utc(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _bytes(value) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, (int, float)) else "not recorded"


def _commit(commit: str | None, dirty: bool | None) -> str:
    if commit is None:
        return "not a git checkout"
    return commit + {True: " (with uncommitted changes)", False: " (clean)", None: ""}[dirty]


def run_rows(run: Run | None, head: str | None) -> list[tuple[str, str]]:
    """The newest measuring run: command, profile, seed, times, commit and whether its tree was dirty."""
    if run is None:
        return [("run", "no run of the store recorded its provenance")]
    duration = f" ({run.finished - run.started:.0f} s)" if run.finished is not None else " (not finished)"
    return [
        ("run", f"{run.id} of the store"),
        ("command", run.command or "not recorded"),
        ("profile", str(run.profile or "not recorded")),
        ("seed", str(run.seed) if run.seed is not None else "not recorded"),
        ("started", utc(run.started)),
        ("finished", utc(run.finished) + duration),
        ("git commit of the run", _commit(run.git_commit, run.dirty)),
        ("git commit of the working tree", head or "not a git checkout"),
    ]


def machine_rows(machine: dict) -> list[tuple[str, str]]:
    """Every machine field the run recorded, the usual ones first (memory in GiB)."""
    keys = [k for k in MACHINE_KEYS if k in machine] + sorted(set(machine) - set(MACHINE_KEYS))
    rows = [(MACHINE_LABELS.get(k, k), _bytes(machine[k]) if k.endswith("_bytes") else fmt(machine[k]))
            for k in keys]
    return rows or [("machine", "not recorded")]


def version_rows(versions: dict) -> list[tuple[str, str]]:
    """The libraries' versions the run recorded; those the project depends on are listed even when absent."""
    keys = list(VERSION_KEYS) + sorted(set(versions) - set(VERSION_KEYS) - {"git_commit"})
    return [(k, str(versions.get(k, "not recorded"))) for k in keys]


def results_rows(checks: dict) -> list[tuple[str, str]]:
    """Where the check results shown come from: their commits, profiles and seeds."""
    records = list(checks.values())
    if not records:
        return [("check results", "none")]
    commits = sorted({str((r.get("versions") or {}).get("git_commit") or "unknown") for r in records})
    return [
        ("git commit(s) of the check results", ", ".join(commits)),
        ("profile(s) of the check results", ", ".join(sorted({str(r.get("profile")) for r in records}))),
        ("seed(s) of the check results", ", ".join(sorted({str(r.get("seed")) for r in records}))),
    ]


def runs_table(runs: list[Run]) -> list[list[str]]:
    """The newest RUNS_LISTED runs of the store, newest first: id, start, command, profile, seed, commit."""
    return [[str(r.id), utc(r.started), r.command or "", str(r.profile or ""),
             "" if r.seed is None else str(r.seed), _commit(r.git_commit, r.dirty)]
            for r in reversed(runs[-RUNS_LISTED:])]
