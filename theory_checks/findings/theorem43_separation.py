"""Theorem 4.3 / eq. 1 of Baykal et al. (2022): the per-input compute of the LSH model and of a dense model
with a frozen random first layer at equal error, as ε shrinks; two findings, k = 1 and k = 2
(../shared/THEORY.md §A, §D).

The theorem (§A): "A dense model of width w whose first layer is random and frozen needs w = Ω((√d L /
(Cε))^k) for the same task. Sizes and samples of the two match; the gap is per-input compute: sparse
O(d k log(1/ε)) versus dense Ω(d (2√d/(Cε))^k)." §D: "at equal error, dense per-input FLOPs grow like ε^(−k)
while LSH stays O(d k log(1/ε))".

Setting: inputs uniform on [-1, 1]^k (the subspace is the whole space, d = k: the theorem's √d and d are
constants in ε), target a bump family (``BumpFamily``: cones of radius and height 2ε on a grid of spacing 4ε,
random signs, Lipschitz constant exactly 1), the task reaching sup-error ε, half a bump's height, on a lattice
of step ε/2 holding every bump's apex: a model must resolve each of the (1/(2ε))^k bumps, the kind of family
the lower bound is built from. Per ε and seed:

- dense: the smallest width on the grid round(2^(j/4)) whose random ReLU features (``RandomFeaturesDense``),
  with a ridge readout chosen on a validation set, reach sup-error ε; its FLOPs (d + 1) x width (the paper's
  convention). Ridge is the best least-squares readout of the frozen features, so gradient descent could only
  need more width: the paper trained none for this theorem, and the separation measured with ridge is the
  smaller one.
- LSH: the fewest hashes D in {k, 2k, 3k} for which some width (from ε down by 2^(-1/4)) reaches sup-error ε
  with bucket means on 16 training samples per bucket meeting the domain (on the lattice points whose bucket
  holds a sample: the few a finite sample misses are slivers at the domain's edge; their share is reported);
  its FLOPs d x D + 1 (``LSHModel.flops_per_input``).

Component: the separation exponent, the per-seed least-squares slope of log(dense FLOPs / LSH FLOPs) on
log(1/ε); the theorem's is k (dense Ω(ε^-k), LSH O(log(1/ε))). Reading: one-sided, as the theorem's two
bounds are (a lower bound on dense, an upper bound on LSH): reproduced when the interval lies above k - 1/2,
the separation growing at least at the k-dimensional rate (an implied dimension that rounds to k or more, as
``lsh_common.dimension_band`` reads the rates); not reproduced when it lies below (dense compute growing like
a lower dimension's, or LSH compute growing with 1/ε like a power). The dense and LSH exponents are reported
beside.

Planted settings. holds: a dense model whose units are the bumps' own cones, one per bump, so it needs
exactly (1/(2ε))^k units: exponent k by construction; fails: a dense model given the target itself as one
more unit (table1's oracle unit), which fits at any width, so its compute stays flat: exponent 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sparse_bench.dsm import LSHModel, RandomFeaturesDense, select_ridge
from sparse_bench.dsm.buckets import buckets_meeting_ball
from sparse_bench.dsm.masked import RIDGE_GRID
from sparse_bench.targets import BumpFamily, uniform_cube
from theory_checks.framework import replicate_seed

from .decision import above
from .lsh_common import C_HASHES, exponent_figure, geometric_interval, slope
from .registry import Component, Reading, Scale, register_finding

SOURCE = "Baykal et al. 2022, Theorem 4.3 and eq. 1 (../shared/THEORY.md §A; the §D reading)"
CLAIM = ("A dense model of width w whose first layer is random and frozen needs w = Ω((√d L / (Cε))^k) for "
         "the same task. Sizes and samples of the two match; the gap is per-input compute: sparse "
         "O(d k log(1/ε)) versus dense Ω(d (2√d/(Cε))^k) (Theorem 4.3, eq. 1); read as: at equal error, "
         "dense per-input FLOPs grow like ε^(−k) while LSH stays O(d k log(1/ε)) (§D)")
WIDTH_STEP = 2**0.25  # dense widths searched: round(WIDTH_STEP^j), j = 0, 1, ...
DENSE_CAP = 4096  # the largest dense width tried; a level that needs more is reported as capped
LSH_WIDTH_STEP = 2**-0.25
LSH_WIDTH_TRIES = 16  # LSH widths tried per D, from ε down to ε / 16
LSH_PER_BUCKET = 16
LATTICE_PER_SPACING = 8  # evaluation lattice: 8 points per bump spacing (step ε/2), every apex on it
TRAINING = ("dense: ridge readout over the frozen random ReLU features, the ridge chosen on a validation set "
            f"from {RIDGE_GRID[0]:g} to {RIDGE_GRID[-1]:g}; LSH: bucket means")


@dataclass(frozen=True)
class SeparationDesign:
    """k; the errors ε swept (largest first); dense training samples (a quarter as many validate); seeds."""

    k: int
    epsilons: tuple
    dense_train: int
    seeds: int


DESIGNS = {  # profile -> k -> design; ε = 1/4 ... : bump spacings 4ε = 1, 1/2, 1/4, ...
    "quick": {1: SeparationDesign(1, (1 / 8, 1 / 16, 1 / 32), 1024, 3),
              2: SeparationDesign(2, (1 / 4, 1 / 8), 2048, 3)},
    "full": {1: SeparationDesign(1, (1 / 8, 1 / 16, 1 / 32, 1 / 64), 2048, 5),
             2: SeparationDesign(2, (1 / 4, 1 / 8, 1 / 16), 4096, 5)},
    "paper": {1: SeparationDesign(1, (1 / 8, 1 / 16, 1 / 32, 1 / 64), 2048, 10),
              2: SeparationDesign(2, (1 / 4, 1 / 8, 1 / 16), 4096, 8)},
}


def _scales(k: int) -> dict:
    paper = DESIGNS["paper"][k]
    out = {}
    for profile, designs in DESIGNS.items():
        design = designs[k]
        span = design.epsilons[0] / design.epsilons[-1]
        text = (f"k = {k}, ε = " + ", ".join(f"1/{round(1 / e)}" for e in design.epsilons)
                + f" (bumps x {span**k:g}), dense trained on {design.dense_train:,} samples, "
                f"{design.seeds} seeds")
        out[profile] = Scale(math.log(span) / math.log(paper.epsilons[0] / paper.epsilons[-1]),
                             f"{profile}: {text} (a theorem states no scale of its own: the paper profile is "
                             "the largest sweep that fits its time budget)", design, ("ridge",))
    return out


def _lattice(k: int, spacing: float) -> torch.Tensor:
    """The evaluation lattice of [-1, 1]^k, step spacing / LATTICE_PER_SPACING (it holds every apex)."""
    axis = torch.linspace(-1, 1, round(2 / spacing) * LATTICE_PER_SPACING + 1, dtype=torch.float64)
    return torch.cartesian_prod(*[axis] * k).reshape(-1, k)


class _FeatureModel:
    """A dense model given by its features: a ridge readout chosen on validation data; FLOPs (d + 1) x
    width."""

    def __init__(self, features, d: int, width: int):
        self.features, self.d, self.width = features, d, width

    def fit_validated(self, x, y, x_val, y_val):
        _, self.readout, _ = select_ridge(self.features(x), y, self.features(x_val), y_val, RIDGE_GRID)
        return self

    def predict(self, x):
        return self.features(x) @ self.readout

    def flops_per_input(self) -> int:
        return (self.d + 1) * self.width


def random_features(f: BumpFamily, k: int, width: int, seed: int):
    """The dense model of the theorem: ``width`` frozen random ReLU units."""
    return RandomFeaturesDense(k, width, seed=seed)


def bump_units(f: BumpFamily, k: int, width: int, seed: int):
    """Planted: units that are the bumps' own cones, the first ``width`` of them (all of them fit f
    exactly)."""
    cones = f.centres[:width]

    def features(x):
        return (f.radius - torch.cdist(x, cones)).relu()

    return _FeatureModel(features, k, width)


def oracle_unit(f: BumpFamily, k: int, width: int, seed: int):
    """Planted: ``width`` random ReLU units plus one whose output is the target itself."""
    base = RandomFeaturesDense(k, width, seed=seed)
    return _FeatureModel(lambda x: torch.cat([base.features(x), f(x).unsqueeze(1)], dim=1), k, width)


def _dense_needed(f, k, eps, data, start_step, seed, make_dense) -> tuple[int, int, int, bool]:
    """(FLOPs, width, grid step, capped) of the smallest width on the grid from ``start_step`` that reaches
    sup-error eps on the lattice."""
    x, y, x_val, y_val, lattice, y_lattice = data
    step = start_step
    while True:
        width = round(WIDTH_STEP**step)
        model = make_dense(f, k, width, replicate_seed(seed, step)).fit_validated(x, y, x_val, y_val)
        error = float((model.predict(lattice) - y_lattice).abs().max())
        if error <= eps or width >= DENSE_CAP:
            return model.flops_per_input(), width, step, error > eps
        step += 1


def _lsh_needed(f, k, eps, lattice, y_lattice, gen, seed) -> tuple[int, int, float, float]:
    """(FLOPs, D, width, uncovered share) of the fewest hashes D in {k, 2k, ..., C k} for which a width from
    eps down reaches sup-error eps on the lattice points whose bucket holds training samples (as in Theorem
    4.1's findings: the buckets a finite sample misses are slivers, mostly cut by the domain's edge)."""
    for c in range(1, C_HASHES + 1):
        for i in range(LSH_WIDTH_TRIES):
            w = eps * LSH_WIDTH_STEP**i
            model = LSHModel(k, "pstable", num_hashes=c * k, width=w, seed=replicate_seed(seed, c))
            h = model.hashes[0]  # samples: LSH_PER_BUCKET per bucket meeting the ball around [-1, 1]^k
            n = LSH_PER_BUCKET * buckets_meeting_ball(h.directions, h.offsets, w, radius=math.sqrt(k))
            x = uniform_cube(n, k, gen)
            model.fit(x, f(x))
            covered = torch.isin(h.bucket(lattice), model.table_ids[0])
            error = float((model.predict(lattice) - y_lattice)[covered].abs().max())
            if error <= eps:
                return model.flops_per_input(), c * k, w, 1 - float(covered.double().mean())
    raise RuntimeError(f"no LSH model with up to {C_HASHES * k} hashes reached sup-error {eps:g}: widen "
                       "the search")


def _separation_seed(seed: int, design: SeparationDesign, make_dense) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    k, step, rows = design.k, 0, []
    for eps in design.epsilons:
        f = BumpFamily(k, 4 * eps, seed=seed)
        lattice = _lattice(k, 4 * eps)
        y_lattice = f(lattice)
        x, x_val = uniform_cube(design.dense_train, k, gen), uniform_cube(design.dense_train // 4, k, gen)
        data = (x, f(x), x_val, f(x_val), lattice, y_lattice)
        dense_flops, width, step, capped = _dense_needed(f, k, eps, data, step, seed, make_dense)
        lsh_flops, hashes, lsh_width, uncovered = _lsh_needed(f, k, eps, lattice, y_lattice, gen, seed)
        rows.append(dict(eps=eps, bumps=f.num_bumps, dense_flops=dense_flops, dense_width=width,
                         capped=capped, lsh_flops=lsh_flops, lsh_hashes=hashes, lsh_width=lsh_width,
                         lsh_uncovered=uncovered))
    return rows


def _reading(seed: int, scale: Scale, make_dense) -> list[Reading]:
    design = scale.design
    k = design.k
    seeds = [replicate_seed(seed, r) for r in range(design.seeds)]
    runs = [_separation_seed(s, design, make_dense) for s in seeds]
    inverse = [1 / e for e in design.epsilons]
    exponents = {what: [slope(inverse, [row[key] for row in run]) for run in runs]
                 for what, key in (("dense", "dense_flops"), ("lsh", "lsh_flops"))}
    separation = tuple(slope(inverse, [row["dense_flops"] / row["lsh_flops"] for row in run]) for run in runs)
    rows = []
    for i, eps in enumerate(design.epsilons):
        column = [run[i] for run in runs]
        dense, lsh = (geometric_interval([row[q] for row in column]) for q in ("dense_flops", "lsh_flops"))
        rows.append([f"1/{round(1 / eps)}", str(column[0]["bumps"]), f"{dense[0]:.4g} [{dense[1]:.4g}, "
                     f"{dense[2]:.4g}]", f"{lsh[0]:.4g} [{lsh[1]:.4g}, {lsh[2]:.4g}]",
                     ", ".join(str(row["lsh_hashes"]) for row in column),
                     f"{max(row['lsh_uncovered'] for row in column):.2%}",
                     str(sum(row["capped"] for row in column))])
    xs = [inverse for _ in runs]
    figure = exponent_figure(
        f"Theorem 4.3, k = {k}: per-input FLOPs needed for sup-error ε on bump families (geometric mean over "
        f"{len(seeds)} seeds, 95% interval); the theorem's exponents overlaid (dense k = {k}, LSH 0)",
        "1 / ε", "FLOPs per input (multiply-adds)",
        [("dense (random ReLU features)", xs, [[row["dense_flops"] for row in run] for run in runs],
          float(k)),
         ("LSH (bucket means)", xs, [[row["lsh_flops"] for row in run] for run in runs], 0.0),
         ("dense / LSH", xs, [[row["dense_flops"] / row["lsh_flops"] for row in run] for run in runs],
          float(k))])
    details = dict(
        dense=make_dense.__name__, dense_exponent_per_seed=exponents["dense"],
        lsh_exponent_per_seed=exponents["lsh"], runs=runs, figure=figure,
        table={"title": f"k = {k}: FLOPs per input at sup-error ε (geometric mean [95% interval] over seeds)",
               "columns": ["ε", "bumps", "dense FLOPs", "LSH FLOPs", "LSH hashes D per seed",
                           "largest lattice share in empty LSH buckets",
                           f"seeds whose dense width reached the cap {DENSE_CAP}"], "rows": rows})
    component = Component(f"k={k}: separation exponent, log(dense / LSH FLOPs) on log(1/ε) (theorem: {k})",
                          separation, source_value=float(k))
    return [Reading(params=dict(k=k), components=[component], seeds=seeds,
                    test="per seed, least-squares slope of log(dense FLOPs / LSH FLOPs) on log(1/ε)",
                    training=TRAINING, details=details)]


def _register(k: int):
    @register_finding(
        name=f"theorem43_separation_k{k}", source=SOURCE, claim=CLAIM,
        reading=(f"k = {k}: the separation exponent, the slope of log(dense FLOPs / LSH FLOPs) needed for "
                 f"sup-error ε on log(1/ε), is at least the theorem's {k} (a lower bound on dense over an "
                 f"upper bound on LSH); reproduced when its interval lies above {k - 0.5:g}, an implied "
                 "dimension that rounds to k or more (module docstring)"),
        source_value={"separation exponent (dense Ω(ε^-k) over LSH O(log 1/ε))": float(k)},
        unit="exponent of 1/ε", scale_by_profile=_scales(k), decision=above(k - 0.5),
        controls={"holds": lambda: {"make_dense": bump_units}, "fails": lambda: {"make_dense": oracle_unit}},
    )
    def finding(seed: int, scale: Scale, training: str, make_dense=random_features):
        return _reading(seed, scale, make_dense)

    return finding


finding_separation_k1, finding_separation_k2 = (_register(k) for k in (1, 2))
