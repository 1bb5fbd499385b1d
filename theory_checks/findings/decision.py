"""How a finding turns per-seed measurements into a verdict: intervals over seeds, pre-registered decisions.

A finding reads one or more *components* (e.g. an MSE ratio at each FLOP level), each measured once per seed
on paired data. Each component's interval is a Student t interval over seeds (seeds are the replication unit:
a seed draws the random features, the target, the data). The family level is ``FAMILY_CONF`` = 95%, split over
the components by Bonferroni (each at 1 - 0.05 / m), so that a definite verdict on a conjunction errs with
probability at most 5%.

Why 95% and not the checks' ALPHA (1e-3): a check gates the test suite, so its false alarms must be rare
across hundreds of runs; a finding gates nothing and reports a verdict with "inconclusive" between the two
definite ones. 95% is the level at which replications are conventionally reported, and with 5 seeds a 99.9%
interval (t quantile 8.6 on 4 degrees of freedom) would leave nearly every finding inconclusive.

Decisions (fixed when the finding is registered, before anything is measured): ``below(x)`` (the claim holds
when the value is below x), ``above(x)``, ``inside(lo, hi)`` (an equivalence band: reproduced when the
interval lies inside it, not reproduced when it lies wholly outside). A conjunction of components is
reproduced when every component is, not reproduced when any component is not, inconclusive otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from sparse_bench.results.records import interval_verdict

FAMILY_CONF = 0.95
SCALES = ("linear", "log")  # a "log" component is measured as per-seed logs and reported exponentiated


@dataclass(frozen=True)
class Decision:
    """A pre-registered rule from an interval to a verdict. kind: "below", "above" or "inside"."""

    kind: str
    low: float
    high: float

    def verdict(self, ci_low: float, ci_high: float) -> str:
        """The finding verdict of the interval [ci_low, ci_high] (NaN bounds: "inconclusive")."""
        if self.kind == "below":
            return interval_verdict(ci_low, ci_high, self.high, claim_holds_below=True)
        if self.kind == "above":
            return interval_verdict(ci_low, ci_high, self.low, claim_holds_below=False)
        under_top = interval_verdict(ci_low, ci_high, self.high, claim_holds_below=True)
        over_floor = interval_verdict(ci_low, ci_high, self.low, claim_holds_below=False)
        return combine([under_top, over_floor])

    def describe(self) -> str:
        if self.kind == "below":
            return f"reproduced when the interval lies below {self.high:g}, not reproduced when wholly above"
        if self.kind == "above":
            return f"reproduced when the interval lies above {self.low:g}, not reproduced when wholly below"
        return (f"reproduced when the interval lies inside [{self.low:.4g}, {self.high:.4g}], not reproduced "
                "when it lies wholly outside")


def below(threshold: float) -> Decision:
    """The claim holds when the value is below ``threshold``."""
    return Decision("below", -math.inf, float(threshold))


def above(threshold: float) -> Decision:
    """The claim holds when the value is above ``threshold``."""
    return Decision("above", float(threshold), math.inf)


def inside(low: float, high: float) -> Decision:
    """The claim holds when the value lies in [low, high] (an equivalence band, low < high)."""
    if not low < high:
        raise ValueError(f"inside: low must be below high, got [{low}, {high}]")
    return Decision("inside", float(low), float(high))


def combine(verdicts: list[str]) -> str:
    """The verdict of a conjunction: reproduced if all are, not reproduced if any is, else inconclusive."""
    if not verdicts:
        raise ValueError("combine: no verdicts")
    if "not reproduced" in verdicts:
        return "not reproduced"
    return "reproduced" if all(v == "reproduced" for v in verdicts) else "inconclusive"


def seed_interval(values, conf: float) -> tuple[float, float, float]:
    """Mean of per-seed values and its two-sided Student t interval at ``conf`` (n - 1 degrees of freedom).

    values: 1-D, at least 2 finite numbers. Values that do not vary give the point interval [mean, mean].
    Returns (mean, low, high).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"values must be 1-D with at least 2 seeds, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf}")
    mean, spread = float(x.mean()), float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + conf / 2, x.size - 1)) * spread / math.sqrt(x.size)
    return mean, mean - half, mean + half
