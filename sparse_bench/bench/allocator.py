"""The host allocator the benchmarks run under: glibc keeping freed memory in the process, or its default.

By default glibc serves every block above its mmap threshold (128 KiB, raised by use to at most 32 MiB) with a
fresh ``mmap`` and unmaps it on free. A layer that allocates the same large buffers on every call (weight
gradients, routed activations) then page-faults all of them again on each call (what that costs:
docs/performance-notes.md). PyTorch's CPU launcher (``python -m torch.backends.xeon.run_cpu``) preloads
tcmalloc or jemalloc by default for this reason.
``retain_freed_memory`` gets much of that reuse from glibc itself: ``mallopt`` raises the mmap and trim
thresholds to 2 GiB - 1, so freed blocks below that stay in the process's heap, where later allocations usually
find them already faulted in. Usually, not always: glibc may grow the heap instead of reusing a freed block (see
``tests/test_allocator.py``), so the effect is a measured one, and a caching allocator (tcmalloc, jemalloc
through ``LD_PRELOAD``, recorded in ``allocator_state``) remains the stronger remedy where installed.

The setting is process-wide and cannot be undone (glibc's adaptive threshold stays off), so the library never
calls it: the benchmark entry points do, unless asked for the system default, and every record says which.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
RETAIN_BYTES = 2**31 - 1  # mallopt takes a C int: blocks of 2 GiB or more are still mapped per allocation
ALLOCATORS = ("retain", "system")

_state = {"allocator": "system"}


def retain_freed_memory() -> dict:
    """Keep freed blocks below 2 GiB in this process's heap (glibc only). Returns ``allocator_state()``.

    Elsewhere (musl, macOS, Windows) it changes nothing and the state says why.
    """
    if platform.libc_ver()[0] != "glibc":
        _state.update(allocator="system", reason="not glibc: the benchmarks run on the platform's allocator")
        return allocator_state()
    libc = ctypes.CDLL(None)
    if not (libc.mallopt(M_MMAP_THRESHOLD, RETAIN_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, RETAIN_BYTES)):
        raise OSError("glibc's mallopt refused the mmap or trim threshold")
    _state.clear()
    _state.update(allocator="retain", mmap_threshold_bytes=RETAIN_BYTES, trim_threshold_bytes=RETAIN_BYTES)
    return allocator_state()


def use_allocator(name: str) -> dict:
    """Apply ``name`` ("retain": ``retain_freed_memory``; "system": leave the process as it is); return the state."""
    if name not in ALLOCATORS:
        raise ValueError(f"allocator must be one of {ALLOCATORS}, got {name!r}")
    return retain_freed_memory() if name == "retain" else allocator_state()


def allocator_state() -> dict:
    """What this process allocates with: {"allocator": "retain" | "system", ...}, plus LD_PRELOAD when set."""
    state = dict(_state)
    if os.environ.get("LD_PRELOAD"):
        state["ld_preload"] = os.environ["LD_PRELOAD"]
    return state
