"""Shared pieces of the asv suite: the Benchmark base (pinned threads), safe_import, cached seeded inputs.

Rules (TOOLING.md, STYLE.md §3): nothing heavy runs at import (asv imports every module to discover benchmarks);
inputs are built in ``setup`` from explicit generators and checked against a reference there, outside the timed
region; impossible or unavailable cases raise NotImplementedError in setup, which asv reports as a skip. Seeded
inputs are frozen once published: change an input and the benchmark gets a new name.
"""

from __future__ import annotations

import contextlib
import functools

NUM_THREADS = 2  # the targets are stated for 2 threads
SEED = 20221128


class Benchmark:
    """Base class: pins torch's intra-op thread count and the host allocator the ratio table runs under
    (asv runs each benchmark in a fresh process)."""

    timeout = 600

    def prepare_process(self) -> None:
        import torch

        torch.set_num_threads(NUM_THREADS)
        with safe_import():
            from sparse_bench.bench.allocator import retain_freed_memory

            retain_freed_memory()


class AreaRatios(Benchmark):
    """Base of each area's ``CostRatios``: every ratio of ``area`` in ``sparse_bench.bench.components`` measured
    side by side once per run (``setup_cache``); a subclass exposes one ``track_ratio = AreaRatios.ratio`` per
    ratio name in its ``params`` (this base has no ``track_`` attribute, so asv does not run it)."""

    area = ""
    param_names = ["ratio"]

    def setup_cache(self):
        self.prepare_process()
        area_ratios = None
        with safe_import():
            from sparse_bench.bench.components import area_ratios
        require(area_ratios=area_ratios)
        return area_ratios(self.area)

    def ratio(self, ratios, ratio):
        return ratios[ratio]

    ratio.unit = "ratio"


def skip(reason: str) -> None:
    """Skip the running benchmark from inside its body. asv skips on any NotImplementedError raised in setup, but
    inside a ``time_``/``track_`` body only on asv_runner's ``SkipNotImplemented`` (a subclass of it)."""
    try:
        from asv_runner.benchmarks.mark import SkipNotImplemented
    except ImportError:  # outside asv (a plain import of the suite): the base class says the same
        raise NotImplementedError(reason) from None
    raise SkipNotImplemented(reason)


@contextlib.contextmanager
def safe_import():
    """Import names that may not exist at an older commit: ``X = None`` first, then ``with safe_import(): ...``.

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
    """(num_tokens, d_model) float32 standard normal tokens, built on first use and cached (treat as read-only)."""
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
