"""Lemma 4.2 of Baykal et al. (2022), the geometry of the LSH buckets on the input subspace: three findings
(../shared/THEORY.md §A, §D).

The lemma (§A): "With D = C·k hashes of width w, on a k-dimensional subspace Γ intersected with [-1,1]^d, with
probability ≥ 0.9: every bucket restricted to Γ has diameter ≤ w·(const), and at most (2√d / w)^{O(k)} buckets
meet Γ. The diameter bound does not depend on d." §D reads it as: "diameter/width flat in d, shrinking toward
a constant as C grows; bucket count (√d/w)^O(k)".

Hash i of the library's ``PStableHash`` cuts Γ (orthonormal basis U) along the hyperplanes
g_i . z = j w - b_i, g_i = U^T a_i; a bucket restricted to Γ is a cell of that arrangement. Diameters are
exact (the cell's vertices, ``cell_diameters``) for the cells holding query points uniform in the unit disk
of Γ (k = 2, inside Γ ∩ [-1, 1]^d for every d); counts are exact (``sparse_bench.dsm.buckets``).

(a) ``lemma42_diameter_flat_in_d``: the largest and the mean diameter / w of those cells (k = 2, C = 3,
w = 0.25) have exponent 0 in d. Band: ``lsh_common.RESOLUTION_BANDS`` (twice the paper profile's resolution on
pilot seeds): the cells on Γ have a d-free law, so no finite-size correction is due.

(b) ``lemma42_diameter_shrinks_with_C``: the same diameters / w shrink as C grows (C = 2 to 4, D = 2C hashes;
C = 1, two hashes on a plane, makes parallelograms whose diameters are heavy-tailed):
exponents of C below 0. Reading of "toward a constant": the lemma's constant is a bound that more hashes can
only tighten; the diameters themselves keep shrinking (each added hash cuts cells), so their limit is the
constant 0, and what can be tested both ways is that they shrink. The measured exponent is the rate
(a mean near -1: cells of D families of strips of width w have extent about w / D). The lemma's bound holds
with probability 0.9, so a seed's value is the median over 5 hashes (a hash whose projected directions are
nearly parallel has cells many times longer).

(c) ``lemma42_bucket_count``: "(2√d / w)^{O(k)} buckets meet Γ", read as log(count) linear in k log(√d / w)
with slope 1 (the O(k) exponent's constant): the count of buckets meeting the ball of radius √d of Γ (which
holds Γ ∩ [-1, 1]^d, the domain whose diameter 2√d the lemma's bound carries) is fitted per seed over
d ∈ {4, 16, 64} and a width sweep, one hash per (seed, d) scaled across widths. Slope 1 says the count grows
like the volume over a cell's, (√d / w)^k, and not like (√d / w)^{Ck} (every code combination of the D
hashes). Band: the implied exponent (slope x k) rounds to k for every k measured, the tightest being k = 3:
slope in (5/6, 7/6). The finite widths bend the slope a few hundredths below 1 (the buckets cut by the
sphere, a lower power of √d / w).

Planted settings. (a) holds: a hash drawn on Γ itself and lifted to R^d (``lsh_common.lifted_pstable``) with
the same query points for every d: identical cells; fails: hash directions of unit length
(``lsh_common.unit_hash``: cells on Γ grow like √d, exponent 1/2). (b) holds: nested hashes, the first Ck of
one hash's 8 directions (each larger C refines the smaller one's cells, so no diameter can grow); fails: the
width multiplied by C^3 (cells grow like C^3 / C = C^2). (c) holds: the count of cubes of side w tiling the
cube [-√d, √d]^k of Γ, (2√d / w)^k (the bound's own form, exponent 1 by construction); fails: every code
combination the D = Ck hashes take over the ball (the product of each hash's levels meeting it:
(√d / w)^{Ck}).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from sparse_bench.dsm.buckets import buckets_meeting_ball
from sparse_bench.hashing import PStableHash
from sparse_bench.targets import random_subspace
from theory_checks.framework import replicate_seed
from theory_checks.paper.geometry import unit_ball_points

from .decision import below, inside
from .lsh_common import (C_HASHES, RESOLUTION_BANDS, exponent_figure, geometric_interval, library_hash,
                         lifted_pstable, slope, unit_hash)
from .registry import Component, Reading, Scale, register_finding

SOURCE = "Baykal et al. 2022, Lemma 4.2 (../shared/THEORY.md §A; the §D reading)"
CLAIM = ("With D = C·k hashes of width w, on a k-dimensional subspace Γ intersected with [-1,1]^d, with "
         "probability ≥ 0.9: every bucket restricted to Γ has diameter ≤ w·(const), and at most "
         "(2√d / w)^{O(k)} buckets meet Γ. The diameter bound does not depend on d (Lemma 4.2); read as: "
         "diameter/width flat in d, shrinking toward a constant as C grows; bucket count (√d/w)^O(k) (§D)")
K_DIAMETER = 2  # cell_diameters enumerates vertices: k = 2 keeps C = 4 (8 hashes) affordable
WIDTH = 0.25
C_SWEEP_MAX = 4
QUERY_CHUNK = 64  # query points whose cells' vertices are enumerated at once (memory: chunk x S^2 distances)
TRAINING = "none: the finding measures the hash's buckets, not a trained model"


@dataclass(frozen=True)
class DiameterDesign:
    """(a), (b): the values swept (ambient dimensions d, or hashes per dimension C), query points, seeds."""

    values: tuple
    queries: int
    seeds: int


@dataclass(frozen=True)
class CountDesign:
    """(c): the ambient dimensions, the ratios √d / w swept per k, seeds."""

    dims: tuple
    ratios: dict
    seeds: int


D_DESIGNS = {"quick": DiameterDesign((4, 32, 256), 150, 4), "full": DiameterDesign((4, 16, 64, 256), 300, 10),
             "paper": DiameterDesign((4, 16, 64, 256), 400, 60)}
# C = 1 (D = k hashes) is left out: its cells are parallelograms, as long as the two directions are near
# parallel, so its diameters are heavy-tailed (the lemma needs C a large enough constant)
C_DESIGNS = {"quick": DiameterDesign((2, 4), 60, 4), "full": DiameterDesign((2, 3, 4), 100, 10),
             "paper": DiameterDesign((2, 3, 4), 100, 30)}
COUNT_DESIGNS = {
    "quick": CountDesign((4, 16, 64), {1: (8, 16, 32), 2: (4, 8, 16), 3: (2, 3, 4)}, 3),
    "full": CountDesign((4, 16, 64), {1: (8, 16, 32, 64), 2: (4, 8, 16, 32), 3: (2, 3, 4.5)}, 6),
    "paper": CountDesign((4, 16, 64), {1: (8, 16, 32, 64, 128), 2: (4, 8, 16, 32), 3: (2, 3, 4.5, 6)}, 10),
}


def _scales(designs: dict, text) -> dict:
    return {profile: Scale(design.seeds / designs["paper"].seeds,
                           f"{profile}: {text(design)}, {design.seeds} seeds (a lemma states no scale of its "
                           "own: the paper profile is the largest sweep that fits its time budget)", design,
                           ("none",))
            for profile, design in designs.items()}


def cell_diameters(z: torch.Tensor, proj: torch.Tensor, offsets: torch.Tensor, width: float) -> torch.Tensor:
    """Exact diameter of the hash cell (restricted to Gamma) containing each point z.

    z: (M, k) subspace coordinates; proj: (k, D) projected directions g_i; offsets: (D,). A cell is
    {z' : l_i w - b_i <= g_i . z' < (l_i + 1) w - b_i}; its vertices are the feasible solutions of k of the
    boundary equations taken from k distinct hashes. Returns (M,) float64.
    """
    k, D = proj.shape
    level = torch.floor((z @ proj + offsets) / width)  # (M, D) codes l_i
    lower, upper = level * width - offsets, (level + 1) * width - offsets  # (M, D) bounds on g_i . z'
    subsets = [(hs, sides) for hs in itertools.combinations(range(D), k)
               for sides in itertools.product((0, 1), repeat=k)]
    hs = torch.tensor([s[0] for s in subsets])  # (S, k)
    sides = torch.tensor([s[1] for s in subsets], dtype=torch.bool)  # (S, k)
    normals = proj.T[hs]  # (S, k, k): rows g_i of the chosen hashes
    rhs = torch.where(sides, upper[:, hs], lower[:, hs])  # (M, S, k)
    verts = torch.linalg.solve(normals.unsqueeze(0), rhs.unsqueeze(-1)).squeeze(-1)  # (M, S, k)
    vals = verts @ proj  # (M, S, D)
    tol = 1e-9 * width
    ok = ((vals >= lower.unsqueeze(1) - tol) & (vals <= upper.unsqueeze(1) + tol)).all(dim=2)  # (M, S)
    dist = torch.cdist(verts, verts)  # (M, S, S)
    both = ok.unsqueeze(2) & ok.unsqueeze(1)
    return torch.where(both, dist, torch.zeros_like(dist)).amax(dim=(1, 2))


def _diameters(z: torch.Tensor, basis: torch.Tensor, h: PStableHash) -> tuple[float, float]:
    """Largest and mean exact diameter of the cells on Γ holding the query points z (M, k), in units of the
    nominal width WIDTH (a planted hash may cut at another width)."""
    proj = basis.T @ h.directions  # (k, D): the hash's directions on Γ
    diam = torch.cat([cell_diameters(c, proj, h.offsets, h.width) for c in z.split(QUERY_CHUNK)])
    return float(diam.max()) / WIDTH, float(diam.mean()) / WIDTH


def _diameter_components(label: str, values: tuple, runs: list, predicted: str) -> list[Component]:
    return [Component(f"exponent of {label} in the {q} diameter / w ({predicted})",
                      tuple(slope(values, [row[i] for row in run]) for run in runs), source_value=0.0)
            for i, q in enumerate(("largest", "mean"))]


def _diameter_details(title: str, label: str, values: tuple, runs: list, predicted: float | None) -> dict:
    xs = [list(values) for _ in runs]
    rows = []
    for i, v in enumerate(values):
        largest, mean = (geometric_interval([run[i][j] for run in runs]) for j in (0, 1))
        rows.append([f"{v:g}", f"{largest[0]:.4g} [{largest[1]:.4g}, {largest[2]:.4g}]",
                     f"{mean[0]:.4g} [{mean[1]:.4g}, {mean[2]:.4g}]"])
    curves = [(f"{q} diameter / w", xs, [[row[j] for row in run] for run in runs], predicted)
              for j, q in enumerate(("largest", "mean"))]
    overlay = "" if predicted is None else f", the lemma's exponent {predicted:g} overlaid"
    figure = exponent_figure(f"{title} (geometric mean over {len(runs)} seeds, 95% interval){overlay}", label,
                             "cell diameter on Γ / w", curves)
    return dict(table={"title": f"{title}: diameter / w (geometric mean [95% interval] over seeds)",
                       "columns": [label, "largest diameter / w", "mean diameter / w"], "rows": rows},
                figure=figure)


# (a) flat in d ---------------------------------------------------------------------------------------------
def _d_seed(seed: int, design: DiameterDesign, make_hash) -> list[tuple]:
    gen = torch.Generator().manual_seed(seed)
    k = K_DIAMETER
    z = unit_ball_points(design.queries, k, gen)  # the same query points on Γ for every d
    hash_seed = int(torch.randint(0, 2**40, (1,), generator=gen))  # room for replicate_seed(hash_seed, d)
    return [_diameters(z, basis, make_hash(basis, C_HASHES * k, WIDTH, hash_seed))
            for basis in (random_subspace(d, k, gen) for d in design.values)]


D_BAND = RESOLUTION_BANDS["lemma42_diameter_flat_in_d"]


@register_finding(
    name="lemma42_diameter_flat_in_d", source=SOURCE, claim=CLAIM,
    reading=(f"k = {K_DIAMETER}, C = {C_HASHES}, w = {WIDTH:g}: the exponents of d in the largest and the "
             "mean exact diameter / w of the cells holding query points in the unit disk of Γ are 0; "
             f"reproduced when both intervals lie inside +-{D_BAND:g}, twice the half-width the paper "
             "profile resolves (lsh_common.RESOLUTION_BANDS: the cells on Γ have a d-free law, so no "
             "finite-size correction is due)"),
    source_value={"exponent of d in diameter / w": 0.0}, unit="exponent of d",
    scale_by_profile=_scales(D_DESIGNS, lambda g: f"k = {K_DIAMETER}, C = {C_HASHES}, w = {WIDTH:g}, d = "
                             + ", ".join(map(str, g.values)) + f", {g.queries} query points per d"),
    decision=inside(-D_BAND, D_BAND),
    controls={"holds": lambda: {"make_hash": lifted_pstable}, "fails": lambda: {"make_hash": unit_hash}},
)
def finding_diameter_flat_in_d(seed: int, scale: Scale, training: str, make_hash=library_hash):
    design = scale.design
    seeds = [replicate_seed(seed, r) for r in range(design.seeds)]
    runs = [_d_seed(s, design, make_hash) for s in seeds]
    details = _diameter_details(f"Lemma 4.2, k = {K_DIAMETER}, C = {C_HASHES}: cell diameter against the "
                                "ambient dimension d", "ambient dimension d", design.values, runs, 0.0)
    details["hash"] = make_hash.__name__
    return [Reading(params=dict(k=K_DIAMETER, C=C_HASHES, width=WIDTH),
                    components=_diameter_components("d", design.values, runs, "lemma: 0"), seeds=seeds,
                    test="per seed, least-squares slope of log(diameter / w) on log d", training=TRAINING,
                    details=details)]


# (b) shrinking as C grows ----------------------------------------------------------------------------------
def fresh_hashes(d: int, num_hashes: int, width: float, seed: int) -> PStableHash:
    """The library's hash with D = num_hashes, a seed of its own per D."""
    return PStableHash(d, num_hashes, width, replicate_seed(seed, num_hashes))


def nested_hashes(d: int, num_hashes: int, width: float, seed: int) -> PStableHash:
    """Planted: the first num_hashes of one hash's K_DIAMETER * C_SWEEP_MAX hashes, so a larger C refines."""
    full = PStableHash(d, K_DIAMETER * C_SWEEP_MAX, width, seed)
    h = PStableHash(d, num_hashes, width, seed)
    h.directions.copy_(full.directions[:, :num_hashes])
    h.offsets.copy_(full.offsets[:num_hashes])
    return h


def widening_hashes(d: int, num_hashes: int, width: float, seed: int) -> PStableHash:
    """Planted: the width multiplied by C^3 (C = num_hashes / k), so cells grow like C^3 / C = C^2."""
    c = num_hashes / K_DIAMETER
    return PStableHash(d, num_hashes, width * c**3, replicate_seed(seed, num_hashes))


C_DIMENSION = 16  # (b)'s ambient dimension
# (b): hashes per seed and C; a seed's value is their median, since the lemma's bound holds with probability
# 0.9 and a hash whose few projected directions are nearly parallel (about 1 in 10 at C = 2) has cells many
# times longer, which made single-hash slopes vary by +-1.5 between seeds
HASH_DRAWS = 5


def _c_seed(seed: int, design: DiameterDesign, make_hash) -> list[tuple]:
    """Per C, the medians over HASH_DRAWS hashes of the largest and the mean diameter / w."""
    gen = torch.Generator().manual_seed(seed)
    k = K_DIAMETER
    basis = random_subspace(C_DIMENSION, k, gen)
    z = unit_ball_points(design.queries, k, gen)  # the same query points for every C
    draws = [int(s) for s in torch.randint(0, 2**40, (HASH_DRAWS,), generator=gen)]
    rows = []
    for c in design.values:
        stats = np.array([_diameters(z, basis, make_hash(C_DIMENSION, c * k, WIDTH, s)) for s in draws])
        rows.append(tuple(float(v) for v in np.median(stats, axis=0)))
    return rows


@register_finding(
    name="lemma42_diameter_shrinks_with_C", source=SOURCE, claim=CLAIM,
    reading=(f"k = {K_DIAMETER}, d = {C_DIMENSION}, w = {WIDTH:g}, C = 2 to {C_SWEEP_MAX} (D = Ck hashes): "
             "the exponents of C in the largest and the mean exact diameter / w are below 0 (the diameters "
             "shrink); 'toward a constant' is read as bounded, the lemma's constant being a bound more "
             "hashes only tighten: the diameters' own limit is 0 (module docstring)"),
    source_value={"exponent of C in diameter / w, at most (the lemma: shrinks)": 0.0}, unit="exponent of C",
    scale_by_profile=_scales(C_DESIGNS, lambda g: f"k = {K_DIAMETER}, d = {C_DIMENSION}, w = {WIDTH:g}, C = "
                             + ", ".join(map(str, g.values)) + f", {g.queries} query points per C"),
    decision=below(0.0),
    controls={"holds": lambda: {"make_hash": nested_hashes}, "fails": lambda: {"make_hash": widening_hashes}},
)
def finding_diameter_shrinks_with_c(seed: int, scale: Scale, training: str, make_hash=fresh_hashes):
    design = scale.design
    seeds = [replicate_seed(seed, r) for r in range(design.seeds)]
    runs = [_c_seed(s, design, make_hash) for s in seeds]
    details = _diameter_details(f"Lemma 4.2, k = {K_DIAMETER}, d = {C_DIMENSION}: cell diameter against the "
                                "hashes per dimension C", "hashes per intrinsic dimension C", design.values,
                                runs, None)
    details["hash"] = make_hash.__name__
    components = [Component(f"exponent of C in the {q} diameter / w (lemma: shrinks, below 0)",
                            tuple(slope(design.values, [row[i] for row in run]) for run in runs),
                            source_value=0.0)
                  for i, q in enumerate(("largest", "mean"))]
    return [Reading(params=dict(k=K_DIAMETER, d=C_DIMENSION, width=WIDTH), components=components, seeds=seeds,
                    test="per seed, least-squares slope of log(diameter / w) on log C", training=TRAINING,
                    details=details)]


# (c) bucket count ------------------------------------------------------------------------------------------
COUNT_BAND = (5 / 6, 7 / 6)  # slope x k rounds to k for k <= 3 (module docstring)


def exact_count(g: torch.Tensor, offsets: torch.Tensor, width: float, radius: float, k: int) -> int:
    """Buckets meeting the ball of radius ``radius`` of Γ, exactly (g: (k, D) directions on Γ)."""
    return buckets_meeting_ball(g, offsets, width, radius)


def _levels_meeting(g: torch.Tensor, offsets: torch.Tensor, width: float, radius: float) -> list[int]:
    """Per hash, the hyperplanes g_i . z = j w - b_i meeting the ball: |j w - b_i| < radius |g_i|."""
    counts = []
    for i in range(g.shape[1]):
        reach = radius * float(g[:, i].norm())
        b = float(offsets[i])
        j = torch.arange(math.floor((b - reach) / width), math.ceil((b + reach) / width) + 1)
        counts.append(int(((j * width - b).abs() < reach).sum()))
    return counts


def axis_grid_count(g, offsets, width, radius, k):
    """Planted: the cubes of side w tiling the cube [-radius, radius]^k of Γ, (2 radius / w)^k."""
    return (2 * radius / width) ** k


def code_combinations(g, offsets, width, radius, k):
    """Planted: every code combination the D hashes take over the ball, the product over hashes of (levels
    meeting it + 1): about (2 radius |g| / w)^D."""
    return math.prod(n + 1 for n in _levels_meeting(g, offsets, width, radius))


def _count_seed(seed: int, design: CountDesign, k: int, counter) -> list[tuple]:
    """Per (d, ratio √d / w): (k log(√d / w), log count), one hash per d scaled across the widths."""
    gen = torch.Generator().manual_seed(seed)
    points = []
    for d in design.dims:
        basis = random_subspace(d, k, gen)
        hash_seed = int(torch.randint(0, 2**40, (1,), generator=gen))
        for ratio in design.ratios[k]:
            radius = math.sqrt(d)
            h = PStableHash(d, C_HASHES * k, radius / ratio, hash_seed)  # same directions, offsets scale
            count = counter(basis.T @ h.directions, h.offsets, h.width, radius, k)
            points.append((d, ratio, count))
    return points


@register_finding(
    name="lemma42_bucket_count", source=SOURCE, claim=CLAIM,
    reading=(f"(2√d / w)^{{O(k)}} read as: log(count of buckets meeting the ball of radius √d of Γ, which "
             "holds Γ ∩ [-1, 1]^d) linear in k log(√d / w) with slope 1, fitted per seed over d and w for k "
             f"= 1, 2, 3; reproduced when every k's interval lies inside ({COUNT_BAND[0]:.4g}, "
             f"{COUNT_BAND[1]:.4g}), where slope x k rounds to k for every k <= 3 (slope C = 3 would be "
             "every code combination)"),
    source_value={"slope of log count on k log(√d / w)": 1.0}, unit="slope (count exponent / k)",
    scale_by_profile=_scales(COUNT_DESIGNS, lambda g: "d = " + ", ".join(map(str, g.dims)) + ", √d / w = "
                             + "; ".join(f"k={k}: " + ", ".join(f"{r:g}" for r in rs) for k, rs in
                                         g.ratios.items())),
    decision=inside(*COUNT_BAND),
    controls={"holds": lambda: {"counter": axis_grid_count}, "fails": lambda: {"counter": code_combinations}},
)
def finding_bucket_count(seed: int, scale: Scale, training: str, counter=exact_count):
    design = scale.design
    seeds = [replicate_seed(seed, r) for r in range(design.seeds)]
    components, curves, rows = [], [], []
    for k in sorted(design.ratios):
        runs = [_count_seed(s, design, k, counter) for s in seeds]
        x = [k * math.log(ratio) for _, ratio, _ in runs[0]]
        slopes = tuple(float(np.polyfit(x, [math.log(c) for *_, c in run], 1)[0]) for run in runs)
        components.append(Component(f"k={k}: slope of log count on k log(√d / w) (lemma: 1)", slopes,
                                    source_value=1.0))
        xs = [[ratio**k for _, ratio, _ in run] for run in runs]
        curves.append((f"k={k}: buckets", xs, [[c for *_, c in run] for run in runs], 1.0))
        for i, (d, ratio, _) in enumerate(runs[0]):
            mean, low, high = geometric_interval([run[i][2] for run in runs])
            rows.append([str(k), str(d), f"{ratio:g}", f"{math.sqrt(d) / ratio:.4g}",
                         f"{mean:.4g} [{low:.4g}, {high:.4g}]"])
    figure = exponent_figure(
        f"Lemma 4.2: buckets meeting the ball of radius √d of Γ against (√d / w)^k (geometric mean over "
        f"{len(seeds)} seeds, 95% interval; points of every d), slope 1 overlaid", "(√d / w)^k",
        "buckets meeting the ball", curves)
    details = dict(counter=counter.__name__, figure=figure,
                   table={"title": "Buckets meeting the ball of radius √d of Γ (geometric mean [95% "
                                   "interval])",
                          "columns": ["k", "d", "√d / w", "w", "buckets"], "rows": rows})
    return [Reading(params=dict(C=C_HASHES), components=components, seeds=seeds,
                    test="per seed and k, least-squares slope of log count on k log(√d / w) over every "
                         "(d, w)",
                    training=TRAINING, details=details)]
