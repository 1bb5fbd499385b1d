"""The benchmarks' host allocator: "retain" must stop glibc from page-faulting a freed large buffer again.

Counted, not timed: a child process allocates and fills a 256 MiB tensor, frees it, and counts the minor page
faults of a second allocate-and-fill. Under glibc's default the block is mapped afresh (65,536 faults with 4 KiB
pages, 128 with transparent huge pages); under "retain" it is reused from the heap. The negative control is the
same child under "system", which must show the faults. Children keep the setting out of the pytest process.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from sparse_bench.bench.allocator import ALLOCATORS, allocator_state, use_allocator
from sparse_bench.bench.ratio_table import write_records
from theory_checks.framework.results_io import read_records

CHILD = """
import json, resource, sys, torch
from sparse_bench.bench.allocator import use_allocator
state = use_allocator(sys.argv[1])
numel = 256 * 2**20 // 4
torch.empty(numel).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.empty(numel).fill_(1.0)
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "state": state}))
"""

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def second_fill_faults(allocator: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, allocator], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@glibc_only
def test_retain_reuses_freed_memory_without_page_faults():
    system, retain = second_fill_faults("system"), second_fill_faults("retain")
    assert system["state"] == {"allocator": "system"}
    assert retain["state"]["allocator"] == "retain"
    # Negative control: glibc's default maps the block afresh, so the second fill faults its pages in again
    # (at least one fault per 2 MiB huge page: 128).
    assert system["faults"] >= 128, system
    # Reuse: fewer than an eighth of the default's faults (a handful come from the interpreter itself).
    assert retain["faults"] * 8 < system["faults"], (retain, system)


def test_unknown_allocator_is_refused():
    with pytest.raises(ValueError, match="allocator must be one of"):
        use_allocator("jemalloc")
    assert ALLOCATORS == ("retain", "system")


def test_records_say_which_allocator(tmp_path):
    write_records([{"kind": "component_ratio", "name": "component/x", "ratio": 1.0}], tmp_path)
    (record,) = read_records(tmp_path / "bench.jsonl")
    assert record["allocator"] == allocator_state()
