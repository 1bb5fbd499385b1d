"""docs/THEORY.md §A items 9 and 13: FLOPs per input by counting, and k-NN regression as a DSM.

Item 9 counts the multiply-adds of matrix products that ``predict`` actually executes
(``torch.utils.flop_counter.FlopCounterMode``; 2 FLOPs per multiply-add there, 1 in the paper's convention).
Wall-clock timing of the same claim belongs to the benchmarks. Both checks are exact: no tolerance.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import KNeighborsRegressor
from torch.utils.flop_counter import FlopCounterMode

from sparse_bench.dsm import DSM, LSHModel, RandomFeaturesDense, knn_as_dsm
from sparse_bench.targets import random_polynomial, uniform_cube, uniform_sphere
from theory_checks.framework import by_profile, figure_spec, make_result, register_check, series

from . import cases
from .common import AREA, source


class OneHotLSHModel(LSHModel):
    """Defect: looks bucket constants up by a one-hot matrix product, so its cost grows with the table size.
    """

    def table_predictions(self, x):
        rows = []
        for h, ids, means in zip(self.hashes, self.table_ids, self.table_means):
            onehot = (h.bucket(x).unsqueeze(1) == ids.unsqueeze(0)).to(torch.float64)  # (n, B)
            hit = onehot.sum(dim=1)
            rows.append((onehot @ means.unsqueeze(1)).squeeze(1) + (1 - hit) * self.default)
        return torch.stack(rows)


def _counted_multiply_adds(fn, x) -> float:
    with FlopCounterMode(display=False) as counter:
        fn(x)
    return counter.get_total_flops() / 2 / x.shape[0]


@register_check(
    name="paper_flops_per_input", source=source(9), area=AREA,
    prediction="LSH multiply-adds per input are the same for every table size (d * D per table); "
    "dense random features cost (d + 1) * width",
    unit="max/min ratio",
    controls={"one_hot_lookup": lambda: {"lsh_class": OneHotLSHModel}},
)
def check_flops_per_input(seed: int, profile: str = "quick", lsh_class=LSHModel):
    gen = torch.Generator().manual_seed(seed)
    d, hashes = cases.FLOPS_D, 4
    f = random_polynomial(d, 4, seed=seed)
    x_train = uniform_cube(20_000, d, gen)
    x = uniform_cube(cases.FLOPS_INPUTS, d, gen)
    lsh_rows, dense_rows = [], []
    for w in cases.FLOPS_LSH_WIDTHS:
        model = lsh_class(d, "pstable", num_hashes=hashes, width=w, seed=seed).fit(x_train, f(x_train))
        lsh_rows.append(dict(width=w, buckets=model.num_nonempty_buckets,
                             counted=_counted_multiply_adds(model.predict, x),
                             declared=model.flops_per_input()))
    for width in cases.FLOPS_DENSE_WIDTHS:
        model = RandomFeaturesDense(d, width, seed=seed)
        model.fit(x_train[:512], f(x_train[:512]))  # any readout: only the work is counted
        dense_rows.append(dict(width=width, counted=_counted_multiply_adds(model.predict, x),
                               declared=model.flops_per_input()))
    lsh_flat = len({r["counted"] for r in lsh_rows}) == 1 and lsh_rows[0]["counted"] == d * hashes
    dense_exact = all(r["counted"] == r["declared"] == (d + 1) * r["width"] for r in dense_rows)
    spread = max(r["counted"] for r in lsh_rows) / min(r["counted"] for r in lsh_rows)
    return make_result(
        "paper_flops_per_input", passed=lsh_flat and dense_exact, seed=seed, profile=profile,
        n=len(lsh_rows) + len(dense_rows),
        test="exact count of matrix-product multiply-adds (FlopCounterMode)",
        predicted=1.0, measured=spread, margin="exact: max/min LSH count over table sizes must be 1",
        params={"d": d, "num_hashes": hashes, "inputs": cases.FLOPS_INPUTS},
        details={"lsh": lsh_rows, "dense": dense_rows, "lsh_flat": lsh_flat, "dense_exact": dense_exact,
                 "figure": _flops_figure(lsh_rows, dense_rows, d * hashes, d)})


def _flops_figure(lsh_rows: list[dict], dense_rows: list[dict], lsh_predicted: int, d: int) -> dict:
    """Counted multiply-adds per input: LSH against its buckets (flat), dense against its width (linear)."""
    buckets, widths = [r["buckets"] for r in lsh_rows], [r["width"] for r in dense_rows]
    return figure_spec(
        "Multiply-adds per input counted by FlopCounterMode", "table size: LSH buckets / dense width",
        "multiply-adds per input",
        series("LSH, counted", buckets, [r["counted"] for r in lsh_rows], group="lsh"),
        series("LSH: d * D for every table size", buckets, [lsh_predicted] * len(buckets), style="predicted",
               group="lsh"),
        series("dense, counted", widths, [r["counted"] for r in dense_rows], group="dense"),
        series(f"dense: (d + 1) * width, d = {d}", widths, [(d + 1) * w for w in widths], style="predicted",
               group="dense"),
        log_x=True, log_y=True)


def rounding_gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u), u the float64 unit roundoff: the relative error bound of an n-term sum."""
    u = np.finfo(np.float64).eps / 2
    return n * u / (1 - n * u)


def knn_without_bias(points, values, k):
    """Defect: the paper's unit-vector construction (rank by b . x) applied to points that are not unit norm.
    """
    return DSM(points.to(torch.float64), torch.zeros(points.shape[0], dtype=torch.float64), k, "indicator",
               readout=values.to(torch.float64) / k)


@register_check(
    name="paper_knn_is_dsm", source=source(13), area=AREA,
    prediction="knn_as_dsm(points, values, k) predicts exactly what k-NN regression predicts (ties aside)",
    unit="mismatched queries",
    controls={"no_distance_bias": lambda: {"build": knn_without_bias}},
)
def check_knn_is_dsm(seed: int, profile: str = "quick", build=knn_as_dsm):
    """Against scikit-learn's brute-force KNeighborsRegressor, on cube and sphere points, in float64 (unit
    roundoff u). Both rank points by a squared distance |q|^2 - 2 q.p + |p|^2 (or its monotone equivalent),
    whose rounding error is at most gamma_(d+2) (|q| + |p|)^2 with gamma_n = n u / (1 - n u), the standard
    bound for an n-term dot product; queries whose k-th and (k+1)-th squared distances lie within twice that
    (one error per implementation) are set aside as ties. The rest must agree to 2 gamma_k max|v|: each side's
    k-term mean of values v rounds by at most gamma_k max|v|."""
    gen = torch.Generator().manual_seed(seed)
    queries = by_profile(profile, quick=cases.KNN_QUERIES[0], full=cases.KNN_QUERIES[1])
    rows, mismatches, total = [], 0, 0
    for sampler in (uniform_cube, uniform_sphere):
        for d, n_points, k in cases.KNN_CASES:
            pts, q = sampler(n_points, d, gen), sampler(queries, d, gen)
            vals = torch.randn(n_points, generator=gen, dtype=torch.float64)
            ref = KNeighborsRegressor(n_neighbors=k, algorithm="brute").fit(pts.numpy(), vals.numpy())
            squared = np.sort(((q.numpy()[:, None] - pts.numpy()[None]) ** 2).sum(axis=2), axis=1)
            norms = float(np.linalg.norm(q.numpy(), axis=1).max() + np.linalg.norm(pts.numpy(), axis=1).max())
            tie = 2 * rounding_gamma(d + 2) * norms**2
            untied = np.ones(queries, bool)
            if k < n_points:
                untied = ~(np.abs(squared[:, k] - squared[:, k - 1]) <= tie)
            diff = np.abs(build(pts, vals, k).predict(q).numpy() - ref.predict(q.numpy()))[untied]
            bad = int((diff > 2 * rounding_gamma(k) * float(vals.abs().max())).sum())
            mismatches += bad
            total += int(untied.sum())
            rows.append(dict(sampler=sampler.__name__, d=d, points=n_points, k=k, compared=int(untied.sum()),
                             mismatches=bad, max_abs_diff=float(diff.max(initial=0.0)), tie=tie))
    return make_result(
        "paper_knn_is_dsm", passed=mismatches == 0, seed=seed, profile=profile, n=total,
        test="exact comparison with sklearn KNeighborsRegressor(algorithm='brute')", predicted=0.0,
        measured=mismatches, margin="2 gamma_k max|v| absolute (float64 rounding of two k-term means); ties: "
        "squared distances within 2 gamma_(d+2) (max|q| + max|p|)^2",
        params={"queries_per_case": queries},
        details={"cases": rows, "no_figure": "exact agreement with scikit-learn on every untied query (a "
                 "count of mismatches, 0 or the check fails); per-case differences are in the details"})
