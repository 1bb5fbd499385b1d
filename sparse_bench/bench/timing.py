"""Timing and peak-memory measurement for the ratio table: pinned threads, median and IQR, live-bytes peak.

Callables compared with each other are timed in alternation (``time_interleaved``): on a shared machine the
speed drifts over seconds, and timing one callable after another would charge the drift to their ratio. Each
round times one block of every callable, so a ratio has one sample per round in which the drift cancels;
``paired_ratio_interval`` turns those samples into a distribution-free confidence interval.

Times come from ``torch.utils.benchmark.Timer.blocked_autorange`` (which synchronises CUDA inside the clock).
Peak memory on CUDA is ``torch.cuda.max_memory_allocated``; on CPU it is the high-water mark of live tensor
bytes reconstructed from the profiler's memory records. The profiler books an op's own allocations net of the
frees made inside it (``self_cpu_memory_usage``) and frees made outside any op as ``[memory]`` events; a net
allocation is placed at its op's start and a net free at its op's end, which can only overstate the peak.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.benchmark import Timer

NOISY_IQR_FRACTION = 0.1  # warn when IQR / median exceeds this: the machine was busy or the run too short
RATIO_CONFIDENCE = 0.95  # confidence of the intervals put on measured ratios (``paired_ratio_interval``)
# Rounds of ``time_interleaved``. 9 rather than 7: the 95% interval for a median of 9 ratios is their 2nd to 8th
# smallest (coverage 1 - 20/2^9 = 0.961), so one round disturbed by other work on the machine does not widen it;
# with 7 it is (min, max), and one such round read R in [1.94, 6.98] at E8 k1 T512 h1024 (2026-12-03).
INTERLEAVED_ROUNDS = 9


@dataclass(frozen=True)
class Timing:
    """A robust summary of repeated timings: median and interquartile range (seconds), number of blocks, and
    the seconds per call of each block in the order timed (from ``time_interleaved``: one block per round)."""

    median: float
    iqr: float
    blocks: int
    samples: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {"median_s": self.median, "iqr_s": self.iqr, "blocks": self.blocks,
                "samples_s": list(self.samples)}


def time_call(fn: Callable[[], object], num_threads: int, min_run_time: float, label: str = "") -> Timing:
    """Median and IQR of ``fn()`` over blocks of calls lasting at least ``min_run_time`` seconds in all."""
    fn()  # warm-up outside the clock (allocator, lazy init, first-touch of buffers)
    timer = Timer("fn()", globals={"fn": fn}, num_threads=num_threads, label=label)
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    samples = tuple(float(t) for t in measurement.times)
    result = Timing(median=float(measurement.median), iqr=float(measurement.iqr), blocks=len(samples),
                    samples=samples)
    if result.median > 0 and result.iqr / result.median > NOISY_IQR_FRACTION:
        spread = result.iqr / result.median
        warnings.warn(f"{label}: IQR is {spread:.0%} of the median; timings are noisy", stacklevel=2)
    return result


def time_interleaved(fns: dict[str, Callable[[], object]], num_threads: int, min_run_time: float,
                     rounds: int = INTERLEAVED_ROUNDS, threads: dict[str, int] | None = None
                     ) -> dict[str, Timing]:
    """Time several callables in alternation, so that a shared machine's slow drifts hit all of them alike.

    Each callable is warmed up and its block size set so that one block lasts about min_run_time / rounds
    seconds; then ``rounds`` rounds each time one block of every callable in turn (``Timer.timeit``, which
    synchronises CUDA). Median and IQR are over the per-call times of the blocks. threads: a thread count for
    some of the callables in place of num_threads.
    """
    timers, blocks = {}, {}
    for name, fn in fns.items():
        fn()  # warm-up outside the clock
        count = (threads or {}).get(name, num_threads)
        timers[name] = Timer("fn()", globals={"fn": fn}, num_threads=count, label=name)
        once = timers[name].timeit(1).mean
        blocks[name] = max(1, int(min_run_time / rounds / max(once, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, timer in timers.items():
            samples[name].append(timer.timeit(blocks[name]).mean)
    out = {}
    for name, values in samples.items():
        q1, median, q3 = (float(v) for v in torch.tensor(values, dtype=torch.float64).quantile(
            torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)))
        out[name] = Timing(median=median, iqr=q3 - q1, blocks=rounds, samples=tuple(values))
        if median > 0 and (q3 - q1) / median > NOISY_IQR_FRACTION:
            warnings.warn(f"{name}: IQR is {(q3 - q1) / median:.0%} of the median; timings are noisy", stacklevel=2)
    return out


def median_interval(values, confidence: float = RATIO_CONFIDENCE) -> dict | None:
    """The distribution-free confidence interval for the median of i.i.d. continuous ``values``: the order
    statistics that scipy's ``quantile_test`` gives, with their exact coverage ``1 - 2 P(Binomial(n, 1/2) < j)``
    (j the rank of the lower bound). Returns {"low", "high", "confidence", "rounds"}, or None when even
    (min, max) falls short of ``confidence`` (n < 6 at 95%)."""
    from scipy.stats import binom, quantile_test

    ratios = np.sort(np.asarray(values, dtype=float))
    n = ratios.size
    if n < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need at least one value and 0 < confidence < 1, got n={n}, confidence={confidence}")
    interval = quantile_test(ratios, q=float(np.median(ratios)), p=0.5).confidence_interval(confidence)
    if not (np.isfinite(interval.low) and np.isfinite(interval.high)):
        return None
    rank = int(np.searchsorted(ratios, interval.low, side="left")) + 1
    coverage = float(1.0 - 2.0 * binom.cdf(rank - 1, n, 0.5))
    return {"low": float(interval.low), "high": float(interval.high), "confidence": coverage, "rounds": int(n)}


def paired_ratio_interval(numerator: Timing, denominator: Timing, scale: float = 1.0,
                          confidence: float = RATIO_CONFIDENCE) -> dict | None:
    """Confidence interval for the median of the per-round ratio ``scale * numerator / denominator``.

    Both Timings come from one ``time_interleaved`` run, so their samples pair up round by round and a drift
    of the machine's speed that hits both in a round cancels in that round's ratio. The interval is
    ``median_interval`` of the per-round ratios (no assumption on their distribution, only that the rounds
    are exchangeable). Returns {"low", "high", "confidence" (exact coverage), "rounds"}, or None when the
    samples do not pair up or are too few for the confidence asked.
    """
    n = len(numerator.samples)
    if n == 0 or n != len(denominator.samples):
        return None
    return median_interval([scale * a / b for a, b in zip(numerator.samples, denominator.samples)], confidence)


def holds(interval: dict | None, bound: float) -> bool:
    """Whether a confidence interval {"low", "high"} (None: not measured) holds ``bound``: a verdict against
    that bound is then within the run's noise."""
    return interval is not None and interval["low"] <= bound <= interval["high"]


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes of tensors allocated while ``fn()`` runs, above what was live before it (results dropped)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Every allocation and free is one raw "[memory]" event with its own timestamp. The EventList view files
    # them under the op that was running, which loses when a temporary was freed inside a composite op (an
    # autograd Function running many aten ops): counting those until the op ends overstated the peak of our
    # grouped SwiGLU by 2 MiB of 5 (E=8 k=1 T=512 h=256).
    changes = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for _, delta in sorted(changes, key=lambda c: c[0]):
        live += delta
        peak = max(peak, live)
    return int(peak)
