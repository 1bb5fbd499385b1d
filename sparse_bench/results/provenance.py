"""Provenance of a run: the git commit (and whether the tree was dirty), the machine and library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache

import cpuinfo

from .records import library_versions


def git_state() -> tuple[str | None, bool | None]:
    """(HEAD's commit, whether tracked files differ from it), or (None, None) outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip() or None
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


@lru_cache(maxsize=1)
def machine_info() -> dict:
    """CPU model, cores, memory, OS, torch threads and GPU (name, memory, count; "none" without CUDA)."""
    import torch

    try:  # py-cpuinfo reads cpuid and /proc/cpuinfo portably
        cpu = cpuinfo.get_cpu_info().get("brand_raw") or platform.processor()
    except Exception:  # noqa: BLE001 - a missing or failing probe must not stop a run
        cpu = platform.processor() or platform.machine()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    info = {
        "cpu": cpu,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "os": platform.platform(),
        "hostname": platform.node(),
        "torch_threads": torch.get_num_threads(),
        "gpu": "none",
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory, gpu_count=torch.cuda.device_count(),
                    cuda=torch.version.cuda)
    return info


def all_versions() -> dict:
    """``library_versions()`` plus the optional libraries a run may use (matplotlib, scikit-learn,
    transformers), each "absent" when not installed."""
    from importlib import metadata

    versions = dict(library_versions())
    for dist in ("matplotlib", "scikit-learn", "transformers", "hypothesis"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions


def collect() -> dict:
    """Everything a run row records: git_commit, dirty, machine, versions."""
    commit, dirty = git_state()
    return {"git_commit": commit, "dirty": dirty, "machine": machine_info(), "versions": all_versions()}
