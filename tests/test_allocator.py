"""The benchmarks' host allocator: under "retain" glibc keeps a freed large block in the process.

Measured, not timed: a child process allocates and fills a 256 MiB tensor, frees it, and reads how much of its
resident memory went back to the kernel (/proc/self/statm). Under glibc's default the block was mapped for itself
and is unmapped on free (all 256 MiB return); under "retain" it stays in the heap for the next allocation (none
returns). The negative control is the same child under "system". Children keep the setting out of the pytest
process.

What retain buys is fewer page faults when later allocations reuse that memory. Reuse is glibc's decision and is
not guaranteed: a loop that allocates and frees one 256 MiB block grew the heap instead in 5 of 6 children (an
aligned request is slightly larger than the freed block, and small allocations next to it keep it from merging).
So the speed effect is measured in the benchmarks (README, "Host allocator"), not asserted here.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from sparse_bench.bench.allocator import ALLOCATORS, allocator_state, use_allocator
from sparse_bench.bench.ratio_table import write_records
from sparse_bench.results import read_records

CHILD = """
import json, os, sys, torch
from sparse_bench.bench.allocator import use_allocator
state = use_allocator(sys.argv[1])
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
block = torch.empty(256 * 2**20 // 4)
block.fill_(1.0)
before = resident()
del block
print(json.dumps({"returned_bytes": before - resident(), "state": state}))
"""

# Elsewhere "retain" is a documented no-op (the state says why), so there is nothing to measure; the other two
# tests run everywhere.
glibc_linux = pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or sys.platform != "linux",
                                 reason="mallopt is glibc's; /proc/self/statm is Linux's")


def returned_on_free(allocator: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, allocator], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@glibc_linux
def test_retain_keeps_a_freed_block_resident():
    system, retain = returned_on_free("system"), returned_on_free("retain")
    assert system["state"] == {"allocator": "system"}
    assert retain["state"]["allocator"] == "retain"
    block = 256 * 2**20
    # Negative control: glibc's default unmaps the block on free (allow an eighth for the interpreter's own churn).
    assert system["returned_bytes"] >= block * 7 / 8, system
    # retain: the block stays in the process.
    assert retain["returned_bytes"] <= block / 8, retain


def test_unknown_allocator_is_refused():
    with pytest.raises(ValueError, match="allocator must be one of"):
        use_allocator("jemalloc")
    assert ALLOCATORS == ("retain", "system")


def test_records_say_which_allocator(tmp_path):
    write_records([{"kind": "component_ratio", "name": "component/x", "ratio": 1.0}], tmp_path)
    (record,) = read_records(tmp_path, "bench")
    assert record["allocator"] == allocator_state()
