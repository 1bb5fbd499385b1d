"""The asv suite is discoverable and runs: ``asv machine --yes``, ``asv check -E existing`` and a quick dry
run of one benchmark in the current environment (``--python=same``; saves nothing), in which the quick run
measures the class's ``quick_params`` only and skips the rest. Every ``track_`` benchmark states its unit."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("asv")
ROOT = Path(__file__).resolve().parents[1]


def asv(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "asv", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def benchmark_classes(monkeypatch) -> list[type]:
    """Every class of the suite that asv runs (one with a ``time_``, ``track_``, ``peakmem_`` or ``mem_``
    method)."""
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks

    classes = []
    for info in pkgutil.iter_modules(benchmarks.__path__):
        module = importlib.import_module(f"benchmarks.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            prefixes = ("time_", "track_", "peakmem_", "mem_")
            if cls.__module__ == module.__name__ and any(n.startswith(prefixes) for n in dir(cls)):
                classes.append(cls)
    return classes


def test_every_track_has_a_unit_and_memory_is_tracked_in_bytes(monkeypatch):
    classes = benchmark_classes(monkeypatch)
    assert len(classes) >= 10, [c.__name__ for c in classes]
    tracks = [(cls, name) for cls in classes for name in dir(cls) if name.startswith("track_")]
    units = {f"{cls.__module__}.{cls.__name__}.{name}": getattr(getattr(cls, name), "unit", None)
             for cls, name in tracks}
    missing = [name for name, unit in units.items() if not isinstance(unit, str) or not unit]
    assert not missing, f"track_ benchmarks without a unit: {missing}"
    # peakmem_ reads the process's peak RSS, mostly interpreter and torch start-up: memory is a bytes track_.
    peakmem = [f"{c.__name__}.{name}" for c in classes for name in dir(c) if name.startswith("peakmem_")]
    assert not peakmem, f"peakmem_ benchmarks left: {peakmem}"
    assert "bytes" in units.values(), units


def test_asv_check_and_quick_dry_run():
    machine = asv("machine", "--yes")
    assert machine.returncode == 0, machine.stdout + machine.stderr
    check = asv("check", "-E", "existing")
    assert check.returncode == 0 and "No problems found" in check.stdout, check.stdout + check.stderr
    run = asv("run", "--quick", "--dry-run", "--python=same", "--show-stderr", "-b",
              r"^moe\.PrepackedWeights\.time_forward")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "moe.PrepackedWeights.time_forward" in output and "failed" not in output, output
    # 12 parameter tuples, 4 of them in quick_params: the other 8 are skipped with the quick run's reason.
    assert output.count("a quick run measures PrepackedWeights.quick_params only") == 8, output
