"""docs/THEORY.md §A items 1-3: collision laws of SimHash and p-stable hashes, and Cover's region count.

All three test ``sparse_bench.hashing`` against closed forms. Per-cell exact binomial tests are Holm-corrected
over the grid at ALPHA, so a correct hash fails with probability <= ALPHA.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from scipy import optimize, stats

from sparse_bench.hashing import PStableHash, SimHash
from theory_checks.framework import (ALPHA, binomial_test, by_profile, clopper_pearson, figure_spec,
                                     make_result, register_check, result_from_cells, series)

from . import cases
from .common import (AREA, affine_simhash, biased_simhash, cube_simhash, pair_at_angle,
                                  pair_in_coordinate_plane, quarter_offset_pstable, source)


@register_check(
    name="paper_simhash_collision_law", source=source(1), area=AREA,
    prediction="P[all m SimHash bits agree] = (1 - theta/pi)^m for any d", unit="probability",
    controls={"biased_directions": lambda: {"make_hash": biased_simhash},
              "cube_directions": lambda: {"make_hash": cube_simhash}},
)
def check_simhash_collision_law(seed: int, profile: str = "quick", make_hash=SimHash):
    """Each cell (angle, d, orientation, m): SimHash instances with 60 // m * m bits, every group of m bits an
    independent m-bit hash applied to one pair at that angle, in a random orientation and in the plane of the
    first two axes (the law holds in every orientation; only a rotation-invariant hash obeys it in both);
    collisions ~ Binomial(trials, (1 - theta/pi)^m)."""
    gen = torch.Generator().manual_seed(seed)
    instances = by_profile(profile, quick=cases.SIMHASH_INSTANCES[0], full=cases.SIMHASH_INSTANCES[1])
    cells = []
    orientations = ("random", "axes")
    for frac, d, orientation in itertools.product(cases.SIMHASH_ANGLES, cases.SIMHASH_DIMS, orientations):
        pair = (pair_at_angle(d, frac * math.pi, gen) if orientation == "random"
                else pair_in_coordinate_plane(d, frac * math.pi))
        for m in cases.SIMHASH_BITS:
            groups = 60 // m
            hits = 0
            for _ in range(instances):
                h = make_hash(d, groups * m, int(torch.randint(0, 2**62, (1,), generator=gen)))
                agree = (h.signs(pair[:1]) == h.signs(pair[1:])).reshape(groups, m)  # (groups, m)
                hits += int(agree.all(dim=1).sum())
            trials, p = instances * groups, (1 - frac) ** m
            cells.append(dict(angle_over_pi=frac, d=d, orientation=orientation, bits=m, trials=trials,
                              collisions=hits, predicted=p, observed=hits / trials,
                              p_value=binomial_test(hits, trials, p)))
    worst = max(cells, key=lambda c: abs(c["observed"] - c["predicted"]))
    return result_from_cells(
        "paper_simhash_collision_law", cells, head=worst, seed=seed, profile=profile,
        n=sum(c["trials"] for c in cells), test=f"exact binomial per cell, Holm over {len(cells)} cells",
        measured=worst["observed"], margin="none beyond the binomial tests (exact law)",
        params={"instances_per_cell": instances},
        details={"worst_cell": worst, "figure": collision_figure(
            cells, "angle_over_pi", "bits", "SimHash: P[all m bits agree] vs angle (every d)", "angle / pi",
            "(1 - θ/π)^m, m={}")})


def collision_figure(cells: list[dict], x_key: str, group_key: str, title: str, x_label: str,
                     law: str) -> dict:
    """Observed collision rates (Clopper-Pearson, 1 - ALPHA) against the closed form, a colour per group."""
    curves = []
    for g in sorted({c[group_key] for c in cells}):
        rows = sorted((c for c in cells if c[group_key] == g), key=lambda c: c[x_key])
        cis = [clopper_pearson(c["collisions"], c["trials"], 1 - ALPHA) for c in rows]
        curves.append(series(f"measured, {group_key}={g}", [c[x_key] for c in rows],
                             [c["observed"] for c in rows],
                             [lo for lo, _ in cis], [hi for _, hi in cis], group=str(g)))
        curves.append(series(law.format(g), [c[x_key] for c in rows], [c["predicted"] for c in rows],
                             style="predicted", group=str(g)))
    return figure_spec(title, x_label, "collision probability", *curves)


def pstable_collision_probability(r: float) -> float:
    """P[floor((a.x + b)/w) = floor((a.y + b)/w)] for a ~ N(0, I), b ~ U[0, w), r = w / ||x - y||."""
    return 2 * stats.norm.cdf(r) - 1 - 2 / (math.sqrt(2 * math.pi) * r) * (1 - math.exp(-r * r / 2))


@register_check(
    name="paper_pstable_collision_law", source=source(2), area=AREA,
    prediction="P[D p-stable hashes agree] = p(w/c)^D, p(r) = 2Phi(r) - 1 - 2(1 - e^{-r^2/2})/(sqrt(2 pi) r)",
    unit="probability",
    controls={"offsets_quarter_range": lambda: {"make_hash": quarter_offset_pstable}},
)
def check_pstable_collision_law(seed: int, profile: str = "quick", make_hash=PStableHash):
    """Each cell (r, d, D, w, anchor): one hash with trials * D independent coordinates applied to the pair
    (x, y), ||x|| = anchor * w, ||x - y|| = w / r; groups of D coordinates are independent D-hash trials."""
    gen = torch.Generator().manual_seed(seed)
    trials = by_profile(profile, quick=cases.PSTABLE_TRIALS[0], full=cases.PSTABLE_TRIALS[1])
    cells = []
    for r in cases.PSTABLE_RATIOS:
        for d in cases.PSTABLE_DIMS:
            for D in cases.PSTABLE_HASHES:
                for w in cases.PSTABLE_WIDTHS:
                    for anchor in cases.PSTABLE_ANCHOR_NORMS:
                        dirs = pair_at_angle(d, math.pi / 3, gen)  # two random unit vectors
                        x = anchor * w * dirs[0]
                        y = x + (w / r) * dirs[1]
                        h = make_hash(d, trials * D, w, int(torch.randint(0, 2**62, (1,), generator=gen)))
                        codes = h.codes(torch.stack([x, y]))  # (2, trials * D)
                        hits = int((codes[0] == codes[1]).reshape(trials, D).all(dim=1).sum())
                        p = pstable_collision_probability(r) ** D
                        cells.append(dict(r=r, d=d, D=D, width=w, anchor=anchor, trials=trials,
                                          collisions=hits,
                                          predicted=p, observed=hits / trials,
                                          p_value=binomial_test(hits, trials, p)))
    worst = max(cells, key=lambda c: abs(c["observed"] - c["predicted"]))
    return result_from_cells(
        "paper_pstable_collision_law", cells, head=worst, seed=seed, profile=profile, n=trials * len(cells),
        test=f"exact binomial per cell, Holm over {len(cells)} cells", measured=worst["observed"],
        margin="none beyond the binomial tests (exact law)", params={"trials_per_cell": trials},
        details={"worst_cell": worst, "figure": collision_figure(
            cells, "r", "D", "p-stable LSH: P[D hashes agree] vs r = w / distance (every d, w)",
            "r = width / distance",
            "p(r)^D, D={}")})


def cover_count(m: int, d: int) -> int:
    """Regions of m central hyperplanes in general position in R^d: 2 sum_{i<d} C(m-1, i) (= 2^m if m <= d).
    """
    return 2 * sum(math.comb(m - 1, i) for i in range(d))


def _feasible_patterns(normals: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sign patterns s in {-1,1}^m with {x : s_j a_j . x >= 1} non-empty (LP), and a point of each: (m, d)."""
    m, d = normals.shape
    found = []
    for code in range(1 << m):
        s = np.array([1.0 if (code >> j) & 1 else -1.0 for j in range(m)])
        res = optimize.linprog(np.zeros(d), A_ub=-(s[:, None] * normals), b_ub=-np.ones(m),
                               bounds=[(None, None)] * d, method="highs")
        if res.status == 0:
            found.append((s, res.x))
    return found


@register_check(
    name="paper_cover_region_count", source=source(3), area=AREA,
    prediction="m central hyperplanes in R^d: at most 2 sum_{i<d} C(m-1,i) SimHash buckets (2^m if m <= d), "
    "all reached",
    unit="regions",
    controls={"affine_hyperplanes": lambda: {"make_hash": affine_simhash}},
)
def check_cover_region_count(seed: int, profile: str = "quick", make_hash=SimHash):
    """Per case: distinct buckets of Gaussian sample points (must never exceed Cover's count), the LP count of
    feasible sign patterns of the hash's normals (must equal it), and every LP point's bucket equals its
    pattern's code (so all regions are reached). Deterministic given the draws: no tolerance."""
    gen = torch.Generator().manual_seed(seed)
    samples = by_profile(profile, quick=cases.COVER_SAMPLES[0], full=cases.COVER_SAMPLES[1])
    rows, passed = [], True
    for d, m in cases.COVER_CASES:
        h = make_hash(d, m, int(torch.randint(0, 2**62, (1,), generator=gen)))
        x = torch.randn(samples, d, generator=gen, dtype=torch.float64)
        sampled = int(torch.unique(h.bucket(x)).numel())
        feasible = _feasible_patterns(h.directions.T.numpy())
        lp_points = torch.tensor(np.stack([p for _, p in feasible]))
        codes = torch.tensor([int(sum(1 << j for j in range(m) if s[j] > 0)) for s, _ in feasible])
        reached = bool(torch.equal(h.bucket(lp_points), codes))
        expected = cover_count(m, d)
        ok = sampled <= expected and len(feasible) == expected and reached
        passed &= ok
        rows.append(dict(d=d, m=m, cover=expected, sampled_regions=sampled, lp_regions=len(feasible),
                         lp_points_hash_to_their_pattern=reached, ok=ok))
    worst = max(rows, key=lambda r: r["sampled_regions"] / r["cover"])
    return make_result(
        "paper_cover_region_count", passed=passed, seed=seed, profile=profile, n=samples * len(rows),
        test="exact counts: sampled <= Cover, LP-feasible == Cover, LP points bucket to their pattern",
        predicted=worst["cover"], measured=worst["sampled_regions"], margin="exact (no tolerance)",
        params={"samples_per_case": samples}, details={"cases": rows, "figure": _cover_figure(rows, samples)})


def _cover_figure(rows: list[dict], samples: int) -> dict:
    """Per (d, m): Cover's count against the LP count of regions and the buckets sampled points reached."""
    cases = [f"d={r['d']} m={r['m']}" for r in rows]
    return figure_spec(
        "SimHash buckets of m central hyperplanes in R^d: Cover's count vs regions found", "case",
        "regions (log scale)",
        series("Cover's count 2 sum_{i<d} C(m-1, i)", cases, [r["cover"] for r in rows], style="predicted"),
        series("regions found by linear programming", cases, [r["lp_regions"] for r in rows]),
        series(f"buckets reached by {samples} Gaussian points", cases, [r["sampled_regions"] for r in rows]),
        log_y=True)
