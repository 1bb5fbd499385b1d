"""docs/THEORY.md §A item 11: the shape of the paper's Table 1, with seeds and paired tests.

Models (8-dimensional inputs uniform on [-1, 1]^8): a dense frozen random ReLU layer of width s and top-K DSMs
with s of 2s (50% active) and of 4s (25% active) units, all with ridge readouts whose ridge is chosen on a
validation set. FLOPs per input (d + 1) s: 18,432 / 36,864 / 73,728 in the full profile (the paper's), 1/64 of
that in the quick one. Targets: a random degree-4 polynomial (sum |c| < 1) and the random hypercube function.

Tested (paired over seeds, one-sided t on log MSE ratios averaged per seed over both targets, Holm over 4
tests at ALPHA): each DSM beats the dense model at equal FLOPs (averaged over the three levels), and each
DSM's error at the largest level is below its error at the smallest. Per-target, per-level ratios are in the
details. Not asserted, reported beside the paper's numbers: the paper's dense column is flat across FLOPs;
ours is measured (a ridge readout on a fixed sample improves with width), and how far apart the two are is
recorded. The paper trained by gradient descent on an unstated sample size; absolute MSEs are not comparable
across setups, so our table also gives MSE / Var f.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy import stats

from sparse_bench.dsm import RandomFeaturesDense, TopKDSM
from sparse_bench.targets import hypercube_function, random_polynomial, uniform_cube
from theory_checks.framework import (ALPHA, by_profile, figure_spec, holm, make_result, register_check,
                                     replicate_seed, series)

from . import cases
from .common import AREA, source

MODELS = ("dense", "dsm_50", "dsm_25")


class FixedMaskDSM(TopKDSM):
    """Defect: the mask ignores the input (the same ``active_units`` units for every x)."""

    def _mask_from(self, pre):
        keep = torch.zeros_like(pre, dtype=torch.bool)
        keep[:, : self.active_units] = True
        return keep


def _targets(seed: int):
    return {"polynomial": random_polynomial(cases.TABLE1_D, 4, seed=seed),
            "hypercube": hypercube_function(cases.TABLE1_D, seed=seed)}


def _one_replicate(seed: int, profile: str, make_dsm) -> dict:
    """Test MSE of every (target, model, level) for one seed, and Var f on the test set."""
    d = cases.TABLE1_D
    levels = by_profile(profile, quick=cases.TABLE1_ACTIVE[0], full=cases.TABLE1_ACTIVE[1])
    n_train = by_profile(profile, quick=cases.TABLE1_TRAIN[0], full=cases.TABLE1_TRAIN[1])
    n_test = by_profile(profile, quick=cases.TABLE1_TEST[0], full=cases.TABLE1_TEST[1])
    gen = torch.Generator().manual_seed(seed)
    x, x_val, x_test = (uniform_cube(n, d, gen) for n in (n_train, n_train // 4, n_test))
    out = {}
    for name, f in _targets(seed).items():
        y, y_val, y_test = f(x), f(x_val), f(x_test)
        mse = {}
        for s in levels:
            models = {"dense": RandomFeaturesDense(d, s, seed=seed), "dsm_50": make_dsm(d, 2 * s, s, seed),
                      "dsm_25": make_dsm(d, 4 * s, s, seed)}
            for label, model in models.items():
                model.fit_validated(x, y, x_val, y_val)
                mse[(label, s)] = float(((model.predict(x_test) - y_test) ** 2).mean())
        out[name] = dict(mse=mse, var=float(y_test.var()))
    return out


def _one_sided(log_ratios: list[float]) -> dict:
    """One-sided paired t-test of mean log ratio < 0, with a two-sided (1 - ALPHA) interval."""
    x = np.asarray(log_ratios)
    res = stats.ttest_1samp(x, 0.0, alternative="less")
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=1 - ALPHA)
    return dict(mean_log_ratio=float(x.mean()), ratio=float(math.exp(x.mean())),
                ci=[float(ci.low), float(ci.high)], p_value=float(res.pvalue), values=x.tolist())


@register_check(
    name="paper_table1_shape", source=source(11), area=AREA,
    prediction="at equal FLOPs top-K DSMs (50%, 25% active) beat the dense model, and their error falls as "
    "total width grows (paper's Table 1)",
    unit="MSE ratio",
    controls={"input_independent_mask": lambda: {"make_dsm": FixedMaskDSM}},
)
def check_table1_shape(seed: int, profile: str = "quick", make_dsm=TopKDSM):
    started = time.perf_counter()
    levels = by_profile(profile, quick=cases.TABLE1_ACTIVE[0], full=cases.TABLE1_ACTIVE[1])
    n_seeds = by_profile(profile, quick=cases.TABLE1_SEEDS[0], full=cases.TABLE1_SEEDS[1])
    reps = [_one_replicate(replicate_seed(seed, r), profile, make_dsm) for r in range(n_seeds)]
    low, high = levels[0], levels[-1]
    targets = list(reps[0])
    tests, table = {}, {}
    for dsm in ("dsm_50", "dsm_25"):  # per seed: mean over targets (and levels) of the log ratio
        tests[f"{dsm} < dense (mean over targets and FLOP levels)"] = _one_sided(
            [np.mean([math.log(rep[t]["mse"][(dsm, s)] / rep[t]["mse"][("dense", s)]) for t in targets
                      for s in levels]) for rep in reps])
        tests[f"{dsm} falls from {low} to {high} active units (mean over targets)"] = _one_sided(
            [np.mean([math.log(rep[t]["mse"][(dsm, high)] / rep[t]["mse"][(dsm, low)]) for t in targets])
             for rep in reps])
    for target in targets:
        runs = [rep[target]["mse"] for rep in reps]
        var = float(np.mean([rep[target]["var"] for rep in reps]))
        per_level = {f"{dsm} / dense at {(cases.TABLE1_D + 1) * s} FLOPs": _one_sided(
            [math.log(m[(dsm, s)] / m[("dense", s)]) for m in runs])
            for dsm in ("dsm_50", "dsm_25") for s in levels}
        # A top-50% mask over roughly symmetric pre-activations keeps about the units ReLU keeps, so dsm_50 at s
        # active units is close to dense at 2s units: reported, since it explains much of dsm_50's advantage.
        dsm50_vs_dense_2s = {f"dsm_50 at {s} active / dense of width {2 * s}": _one_sided(
            [math.log(m[("dsm_50", s)] / m[("dense", 2 * s)]) for m in runs]) for s in levels if 2 * s in levels}
        table[target] = dict(
            var_f=var, per_level_ratios=per_level, dsm50_vs_dense_of_twice_the_units=dsm50_vs_dense_2s,
            dense_trend_largest_over_smallest=_one_sided([math.log(m[("dense", high)] / m[("dense", low)])
                                                          for m in runs]),
            rows={label: {str((cases.TABLE1_D + 1) * s): dict(
                mean=float(np.mean([m[(label, s)] for m in runs])),
                sd=float(np.std([m[(label, s)] for m in runs], ddof=1)),
                mean_over_var=float(np.mean([m[(label, s)] for m in runs])) / var) for s in levels}
                for label in MODELS})
    names = list(tests)
    rejected = holm([tests[k]["p_value"] for k in names], ALPHA)
    for k, rej in zip(names, rejected):
        tests[k]["holm_rejects_null"] = rej
    paper_dense_ratio = cases.TABLE1_PAPER["dense"][-1] / cases.TABLE1_PAPER["dense"][0]
    headline = tests["dsm_25 < dense (mean over targets and FLOP levels)"]
    return make_result(
        "paper_table1_shape", passed=all(rejected), seed=seed, profile=profile, n=n_seeds,
        test=f"one-sided paired t on log MSE ratios over {n_seeds} seeds, Holm over {len(names)} tests",
        predicted=None, measured=headline["ratio"], ci=tuple(math.exp(c) for c in headline["ci"]),
        p_value=max(tests[k]["p_value"] for k in names),
        margin="each mean log ratio < 0 at level ALPHA after Holm (the input-independent-mask control has "
        "no effect, so it passes with probability <= ALPHA); measured = MSE(dsm_25) / MSE(dense), geometric "
        "mean over seeds, targets and FLOP levels, CI at 1 - ALPHA",
        params={"active_units": levels, "flops": [(cases.TABLE1_D + 1) * s for s in levels],
                "seeds": n_seeds},
        details={"table": _table1_rows(table, levels), "figures": _table1_figures(table, levels, n_seeds),
                 "tests": tests, "our_table": table,
                 "paper_table1": cases.TABLE1_PAPER,
                 "paper_dense_largest_over_smallest": paper_dense_ratio,
                 "dense_flat_in_paper_vs_ours": {
                     t: dict(paper=paper_dense_ratio,
                             ours=table[t]["dense_trend_largest_over_smallest"]["ratio"])
                     for t in table}},
        started=started)


def _table1_figures(table: dict, levels, n_seeds: int) -> list[dict]:
    """Per target: eval MSE / Var f of each model against FLOPs per input (mean over seeds, ± one sd)."""
    flops = [(cases.TABLE1_D + 1) * s for s in levels]
    figures = []
    for target, entry in table.items():
        curves = []
        for label in MODELS:
            cells = [entry["rows"][label][str(f)] for f in flops]
            mean = [c["mean_over_var"] for c in cells]
            sd = [c["sd"] / entry["var_f"] for c in cells]
            curves.append(series(f"{label} (mean ± sd over {n_seeds} seeds)", flops, mean,
                                 [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)]))
        figures.append(figure_spec(f"Table 1 shape, {target} target: eval MSE at equal FLOPs (prediction: "
                                   "DSMs below dense, falling with FLOPs)", "FLOPs per input (d + 1) s",
                                   "eval MSE / Var f", *curves, log_x=True))
    return figures


def _table1_rows(table: dict, levels) -> dict:
    """Our mean eval MSE (and MSE / Var f) per target, model and FLOP level, beside the paper's Table 1."""
    flops = [(cases.TABLE1_D + 1) * s for s in levels]
    rows = []
    for target, entry in table.items():
        for label in MODELS:
            cells = [entry["rows"][label][str(f)] for f in flops]
            values = [f"{c['mean']:.3g} ({c['mean_over_var']:.2f})" for c in cells]
            rows.append([f"ours, {target}", label] + values)
    for label, values in cases.TABLE1_PAPER.items():
        rows.append(["paper (its FLOPs: 18,432 / 36,864 / 73,728)", label] + [f"{v:.4g}" for v in values])
    return {"title": "Table 1 reproduction: eval MSE (MSE / Var f) at equal FLOPs, next to the paper's",
            "caption": f"our FLOP levels {flops}; paper's 18,432 / 36,864 / 73,728. Absolute MSEs are not "
                       "comparable "
                       "(different target variance and training); compare the shape across columns.",
            "columns": ["source", "model"] + [f"level {i + 1}" for i in range(len(flops))], "rows": rows}
