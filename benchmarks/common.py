"""Shared pieces of the asv suite: the Benchmark base (pinned threads), safe_import, cached seeded inputs,
measurements shared within a run, and what a quick run (``asv run --quick``) measures.

Rules: nothing heavy runs at import (asv imports every module to discover benchmarks, and the fork server
imports them once before forking every benchmark, so a tensor operation at import would start thread pools
that a fork cannot take along); inputs are built in ``setup`` from explicit generators and checked against a
reference there, outside the timed region; impossible or unavailable cases raise NotImplementedError in setup,
which asv reports as a skip. Seeded inputs are frozen once published: change an input and the benchmark gets a
new name.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import sys
import tempfile
from pathlib import Path

NUM_THREADS = 2  # the speed targets are stated for 2 threads
SEED = 20221128
# What ``asv run --quick`` hands the process that runs a benchmark (every benchmark once, nothing saved).
QUICK_SETTINGS = {"number": 1, "repeat": 1, "rounds": 1, "warmup_time": 0}


class Benchmark:
    """Base class: pins torch's intra-op thread count and the host allocator the ratio table runs under
    (asv runs each benchmark in a process of its own).

    ``quick_params``: the parameter tuples a quick run measures (None: all). A quick run is a smoke test of
    every benchmark; where a class's full grid takes minutes, the other tuples are skipped there. A full run
    measures every tuple.
    """

    timeout = 600
    quick_params: list[tuple] | None = None

    def prepare_process(self) -> None:
        import torch

        torch.set_num_threads(NUM_THREADS)
        with safe_import():
            from sparse_bench.bench.allocator import retain_freed_memory

            retain_freed_memory()

    def skip_outside_quick_params(self, *params) -> None:
        """In a quick run, raise NotImplementedError (asv: skipped) unless ``params`` is in
        ``quick_params``."""
        if self.quick_params is not None and params not in self.quick_params and quick_run():
            raise NotImplementedError(f"a quick run measures {type(self).__name__}.quick_params only")


def quick_run() -> bool:
    """Whether this process runs a benchmark for ``asv run --quick``.

    asv_runner has no public flag for it: it passes --quick's settings (``QUICK_SETTINGS``) as the local
    ``extra_params`` of the function that runs the benchmark, which is read here from the call stack. Outside
    asv, in ``setup_cache`` (which asv gives no settings) or with an asv_runner that keeps them elsewhere, the
    answer is False: the full measurement, never a silently smaller one.
    """
    frame = sys._getframe(1)
    while frame is not None:
        extra = frame.f_locals.get("extra_params")
        if frame.f_globals.get("__name__", "").startswith("asv_runner") and isinstance(extra, dict):
            return all(extra.get(key) == value for key, value in QUICK_SETTINGS.items())
        frame = frame.f_back
    return False


class SharedRunBenchmark(Benchmark):
    """Base of classes whose benchmarks share measurements within one asv run.

    asv runs one benchmark (and one parameter tuple) per process. Its ``setup_cache`` runs once per run, in
    a directory that asv keeps until the last benchmark using that cache has run; here it returns that
    directory, which asv passes to ``setup`` and to every benchmark as their first argument. ``shared``
    computes a value in the first benchmark that needs it and leaves it there for the others, so the five
    ``track_`` figures of one ratio-table measurement cost one measurement. (asv keys the cache by where
    ``setup_cache`` is defined: all subclasses share this one directory, and ``shared`` keeps their files
    apart by class.)
    """

    def setup_cache(self):
        return os.getcwd()

    def shared(self, shared_dir: str, key: str, compute):
        """``compute()``, once per run for every benchmark of this class that asks for ``key``."""
        path = Path(shared_dir) / f"{type(self).__module__}.{type(self).__name__}-{key}.pickle"
        if path.exists():
            with path.open("rb") as f:
                return pickle.load(f)
        value = compute()
        fd, tmp = tempfile.mkstemp(dir=shared_dir, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f)
        os.replace(tmp, path)  # whole or absent: a benchmark killed mid-write leaves no torn file
        return value


class AreaRatios(SharedRunBenchmark):
    """Base of each area's ``CostRatios``: every ratio of ``area`` in ``sparse_bench.bench.components``, timed
    side by side in one measurement per run; a subclass sets ``area`` and the ratio names in ``params`` and
    exposes ``track_ratio = AreaRatios.ratio`` (this base has no ``track_`` attribute, so asv does not run
    it)."""

    area = ""
    param_names = ["ratio"]

    def setup(self, shared_dir, ratio):
        self.skip_outside_quick_params(ratio)
        self.ratios = self.shared(shared_dir, "ratios", self._measure)

    def _measure(self) -> dict[str, float]:
        self.prepare_process()
        area_ratios = None
        with safe_import():
            from sparse_bench.bench.components import area_ratios
        require(area_ratios=area_ratios)
        return area_ratios(self.area)

    def ratio(self, shared_dir, ratio):
        return self.ratios[ratio]

    ratio.unit = "ratio"


def skip(reason: str) -> None:
    """Skip the running benchmark from inside its body. asv skips on any NotImplementedError raised in setup,
    but inside a ``time_``/``track_`` body only on asv_runner's ``SkipNotImplemented`` (a subclass of it)."""
    try:
        from asv_runner.benchmarks.mark import SkipNotImplemented
    except ImportError:  # outside asv (a plain import of the suite): the base class says the same
        raise NotImplementedError(reason) from None
    raise SkipNotImplemented(reason)


@contextlib.contextmanager
def safe_import():
    """Import names that may not exist at an older commit: ``X = None``, then ``with safe_import(): ...``.

    An ImportError leaves the names None; ``require`` turns that into a skip in setup.
    """
    try:
        yield
    except ImportError:
        pass


def require(**names) -> None:
    """Raise NotImplementedError (asv: skipped) naming every guarded import that is missing at this commit."""
    missing = [name for name, value in names.items() if value is None]
    if missing:
        raise NotImplementedError(f"not available at this commit: {', '.join(missing)}")


@functools.lru_cache(maxsize=16)
def get_tokens(num_tokens: int, d_model: int, seed: int = SEED):
    """(num_tokens, d_model) float32 standard normal tokens, built on first use and cached (read-only)."""
    import torch

    return torch.randn(num_tokens, d_model, generator=torch.Generator().manual_seed(seed))


@functools.lru_cache(maxsize=16)
def get_token_ids(num_tokens: int, vocab: int = 32000, seed: int = SEED):
    """(num_tokens,) int64 token ids uniform in [0, vocab), cached."""
    import torch

    return torch.randint(vocab, (num_tokens,), generator=torch.Generator().manual_seed(seed))


def relative_error(a, b) -> float:
    """max |a - b| / max |b| (0 for empty tensors)."""
    if b.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max()) / max(float(b.double().abs().max()), 1e-30)
