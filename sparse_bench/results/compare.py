"""Compare two runs measurement by measurement: B against A, flagging a change only where the intervals
separate.

Each side is one run of a results store (``resolve_side``: a run id, the newest run at a git commit, or
another store's newest run or ``PATH:RUN_ID``). Measurements present on both sides are matched by their spec
(``store.measurement_spec``) and broken into figures (``figures``): a benchmark's R with its interval, each
peer's speedup with its interval, a component ratio with its interval; a check's or finding's measured value
with its confidence interval and its verdict; an audit's pass rate with its interval. A figure whose two
intervals separate (one lies wholly above the other), by more than a relative ``threshold``, is flagged: a
regression or an improvement where the figure has a better direction, "changed" where it has none. A figure
without an interval on either side is shown and never flagged; a changed verdict always is.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .store import Measurement, ResultsStore, Run, StoreError, store_path

REGRESSION, IMPROVEMENT, CHANGED = "regression", "improvement", "changed"
_RUN_OF_STORE = re.compile(r"^(?P<path>.+):(?P<run>\d+)$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")


@dataclass(frozen=True)
class Estimate:
    """A value and its interval (low, high; None where the record gives none)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class Figure:
    """One quantity of a measurement: label ("R", "speedup over hf_mixtral", "measured"), its estimate, unit,
    which way is better ("lower", "higher", or None: no direction) and, for checks, the verdict."""

    label: str
    estimate: Estimate
    better: str | None
    unit: str | None = None
    verdict: str | None = None


@dataclass(frozen=True)
class Row:
    """One figure of one measurement on both sides: A's and B's estimates (and verdicts), B/A with the
    interval [B.low / A.high, B.high / A.low] (None unless both values, and both intervals for its bounds,
    are positive), and the flag (None: no change the intervals can tell)."""

    kind: str
    name: str
    spec: str
    label: str
    unit: str | None
    better: str | None
    a: Estimate
    b: Estimate
    ratio: Estimate | None
    flag: str | None
    verdict_a: str | None = None
    verdict_b: str | None = None
    control: str | None = None  # a check's planted defect, for a control's row


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the store's database file, the run, and its measurements (newest per
    spec)."""

    store: Path
    run: Run
    measurements: list[Measurement]

    def describe(self) -> str:
        run = self.run
        commit = (run.git_commit or "no commit")[:10] + ("+dirty" if run.dirty else "")
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started))
        return f"run {run.id} of {self.store} ({commit}, {started}, {run.command})"

    def to_dict(self) -> dict:
        return {"store": str(self.store), "run": self.run.to_dict(), "measurements": len(self.measurements)}


@dataclass
class Comparison:
    """Rows of every figure of the measurements both runs hold, and the specs only one side has."""

    a: Side
    b: Side
    threshold: float
    rows: list[Row] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)  # names of measurements A has and B lacks
    only_b: list[str] = field(default_factory=list)

    def flagged(self, flag: str) -> list[Row]:
        return [row for row in self.rows if row.flag == flag]

    def to_dict(self) -> dict:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "threshold": self.threshold,
                "rows": [asdict(row) for row in self.rows], "only_a": self.only_a, "only_b": self.only_b,
                "regressions": len(self.flagged(REGRESSION)), "improvements": len(self.flagged(IMPROVEMENT)),
                "changed": len(self.flagged(CHANGED))}


def _number(value) -> float | None:
    """A record's number as a float; None for a missing one, a non-number or a non-finite one stored as
    text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _estimate(value, interval) -> Estimate:
    """value with an interval given as {"low", "high"}, [low, high] or None."""
    if isinstance(interval, dict):
        low, high = interval.get("low"), interval.get("high")
    elif isinstance(interval, (list, tuple)) and len(interval) == 2:
        low, high = interval
    else:
        low = high = None
    return Estimate(_number(value), _number(low), _number(high))


def figures(kind: str, record: dict) -> list[Figure]:
    """The compared figures of one stored record of ``kind`` (records of an unknown shape give none)."""
    if kind in ("check", "finding"):
        measured = _estimate(record.get("measured"), [record.get("ci_low"), record.get("ci_high")])
        return [Figure("measured", measured, None, record.get("unit"), record.get("verdict"))]
    if kind == "audit":
        pass_rate = _estimate(record.get("pass_rate"), record.get("pass_rate_ci95"))
        return [Figure("pass rate", pass_rate, "higher")]
    if kind == "distributed":
        seconds = record.get("seconds") or {}
        return [Figure(f"{phase} s", Estimate(_number((seconds.get(phase) or {}).get("median"))), "lower")
                for phase in ("forward", "backward") if phase in seconds]
    if record.get("kind") == "moe_ratio_table":
        out = [Figure("R", _estimate(record.get("R"), record.get("R_interval")), "lower")]
        for peer, timing in sorted((record.get("peers") or {}).items()):
            if isinstance(timing, dict) and "speedup_of_ours" in timing:
                speedup = _estimate(timing["speedup_of_ours"], timing.get("speedup_interval"))
                out.append(Figure(f"speedup over {peer}", speedup, "higher"))
        if "time_us" in record:
            out.append(Figure("time", Estimate(_number(record["time_us"])), "lower", "us"))
        return out
    if record.get("kind") == "component_ratio":
        bounded = str(record.get("target", "")).startswith("<=")  # a range ("in [a, b]") has no direction
        ratio = _estimate(record.get("ratio"), record.get("interval"))
        return [Figure("ratio", ratio, "lower" if bounded else None)]
    return []


def _ratio(a: Estimate, b: Estimate) -> Estimate | None:
    if a.value is None or b.value is None or a.value <= 0 or b.value <= 0:
        return None
    if a.has_interval and b.has_interval and a.low > 0 and b.low > 0:
        return Estimate(b.value / a.value, b.low / a.high, b.high / a.low)
    return Estimate(b.value / a.value)


def _interval_flag(figure: Figure, a: Estimate, b: Estimate, ratio: Estimate | None,
                   threshold: float) -> str | None:
    if not (a.has_interval and b.has_interval) or a.value is None or b.value is None:
        return None
    if not (a.high < b.low or b.high < a.low):  # the intervals overlap: no change this pair of runs can tell
        return None
    if ratio is not None and 1 / (1 + threshold) <= ratio.value <= 1 + threshold:
        return None
    if figure.better is None:
        return CHANGED
    worse = b.value > a.value if figure.better == "lower" else b.value < a.value
    return REGRESSION if worse else IMPROVEMENT


def _verdict_flag(kind: str, record: dict, verdict_a: str | None, verdict_b: str | None) -> str | None:
    """A changed verdict: a check turning fail (or a control turning pass: its planted defect no longer
    caught) is a regression, the reverse an improvement; a finding's change has no direction."""
    if verdict_a == verdict_b or verdict_a is None or verdict_b is None:
        return None
    if kind != "check":
        return CHANGED
    good = "fail" if record.get("control") else "pass"
    return IMPROVEMENT if verdict_b == good else REGRESSION


def compare_sides(a: Side, b: Side, threshold: float = 0.0) -> Comparison:
    """The comparison of B against A (``threshold``: the smallest relative change flagged, 0 = any)."""
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    in_a = {m.spec: m for m in a.measurements}
    in_b = {m.spec: m for m in b.measurements}
    comparison = Comparison(a, b, threshold)
    comparison.only_a = sorted(in_a[spec].name for spec in in_a.keys() - in_b.keys())
    comparison.only_b = sorted(in_b[spec].name for spec in in_b.keys() - in_a.keys())
    for spec in sorted(in_a.keys() & in_b.keys(), key=lambda s: (in_a[s].kind, in_a[s].name, s)):
        ma, mb = in_a[spec], in_b[spec]
        figures_b = {f.label: f for f in figures(mb.kind, mb.record)}
        for fa in figures(ma.kind, ma.record):
            fb = figures_b.get(fa.label)
            if fb is None:
                continue
            ratio = _ratio(fa.estimate, fb.estimate)
            flag = (_verdict_flag(ma.kind, ma.record, fa.verdict, fb.verdict)
                    or _interval_flag(fa, fa.estimate, fb.estimate, ratio, threshold))
            comparison.rows.append(Row(ma.kind, ma.name, spec, fa.label, fa.unit or fb.unit, fa.better,
                                       fa.estimate, fb.estimate, ratio, flag, fa.verdict, fb.verdict,
                                       ma.record.get("control")))
    return comparison


def _newest_per_spec(measurements: list[Measurement]) -> list[Measurement]:
    newest = {m.spec: m for m in measurements}  # read oldest first: later rows win
    return sorted(newest.values(), key=lambda m: m.id)


def _side(store: ResultsStore, run: Run) -> Side:
    return Side(store.path, run, _newest_per_spec(store.read(run_id=run.id).measurements))


def _newest_side(store: ResultsStore, runs: list[Run], what: str) -> Side:
    for run in reversed(runs):
        side = _side(store, run)
        if side.measurements:
            return side
    raise StoreError(f"{store.path}: {what} holds no measurements")


def resolve_side(ref: str, default_store: str | Path) -> Side:
    """The run ``ref`` names: ``PATH:RUN_ID`` (a run of another store), a PATH (a results directory or .sqlite
    file: its newest run with measurements), a run id of ``default_store``, or a git commit prefix (4+ hex
    digits: the newest run at that commit in ``default_store``). StoreError naming what was tried."""
    match = _RUN_OF_STORE.match(ref)
    if match and Path(match["path"]).exists():
        with ResultsStore(match["path"], create=False) as store:
            return _side(store, store.run(int(match["run"])))
    if Path(ref).exists():
        with ResultsStore(ref, create=False) as store:
            return _newest_side(store, store.runs(), "the store")
    with ResultsStore(default_store, create=False) as store:
        runs = store.runs()
        if ref.isdigit() and any(run.id == int(ref) for run in runs):
            return _side(store, store.run(int(ref)))
        if _COMMIT.match(ref):
            at_commit = [run for run in runs if (run.git_commit or "").startswith(ref.lower())]
            commits = sorted({run.git_commit for run in at_commit})
            if len(commits) > 1:
                shown = ", ".join(commit[:12] for commit in commits)
                raise StoreError(f"{ref!r} is ambiguous in {store.path}: commits {shown}")
            if at_commit:
                return _newest_side(store, at_commit, f"commit {commits[0][:12]}")
    raise StoreError(f"{ref!r} is neither a run id or a commit of a run in {store_path(default_store)}, nor "
                     f"a results store (a directory, a .sqlite file, or PATH:RUN_ID)")


def compare(a: str, b: str, results: str | Path, threshold: float = 0.0) -> Comparison:
    """``compare_sides`` of the runs ``a`` and ``b`` name (``resolve_side``, run ids and commits in the store
    of ``results``)."""
    return compare_sides(resolve_side(a, results), resolve_side(b, results), threshold)
