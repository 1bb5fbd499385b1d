"""Theorem 4.1 of Baykal et al. (2022) as rates: five findings (../shared/THEORY.md §A, §D).

The theorem (§A): "For L-Lipschitz f on [-1,1]^d with inputs uniform on an unknown k-dimensional subspace, an
LSH model with bucket constants reaches sup-norm error ε with probability ≥ 0.8 using a table of
O((L√d/ε)^k) buckets". §D reads it as rates: "sup-error ∝ T^(−1/k), MSE ∝ T^(−2/k) in the number of non-empty
buckets; flat in d at fixed k; linear in L".

Setting (all five): inputs uniform on the unit ball of a random k-dimensional subspace Γ of R^d (inside
[-1, 1]^d for every d, so the same region serves every ambient dimension: on Γ ∩ [-1, 1]^d the region itself
grows with d, which is the √d the theorem's bucket count carries); one table of D = 3k p-stable hashes of
width w (``LSHModel``; C = 3, the paper leaving C a constant); bucket constants are the training means in each
bucket (the theorem's model, a closed form: no readout is trained). Training and test samples are each 16 per
bucket meeting the ball (counted exactly by ``sparse_bench.dsm.buckets``), so every width has the same samples
per bucket. Errors are read on the test points whose bucket holds a training sample (the theorem's sample
bound fills every bucket; the few a finite sample misses are slivers, and their test share is reported). T is
the number of non-empty buckets. The hash of a seed keeps its directions across widths and scales its offsets,
so the arrangements at two widths are scaled copies.

(a) ``theorem41_rate_k1`` / ``_k2`` / ``_k3``: the exponents of sup-error and of RMSE (= √MSE, so MSE's is
twice it) against T, fitted per seed over a width sweep, target linear: f(x) = <U u, x> (L = 1), the extremal
1-Lipschitz function (|∇f| = 1 everywhere), whose error in a cell is the cell's extent along u; every
1-Lipschitz target errs at most as much. Reading: the theorem is an upper bound, but for an oblivious
partition (the hash ignores f) whose cells have no preferred direction it is also the rate: cells of volume
V/T have extent about (V/T)^(1/k) along u, so the error cannot fall faster than T^(-1/k). A faster measured
rate would mean the partition adapts to f or T is miscounted, a slower one that the theorem's rate is not
reached: "reproduced" is the two-sided reading, the measured exponent equal to -1/k to the resolution that
tells k from its neighbours (``lsh_common.dimension_band``: -1/exponent within k +- 1/2). MSE's exponent is
read as RMSE's, so that both components have the theorem's -1/k.

(b) ``theorem41_flat_in_d``: at a fixed width (k = 2, L = 1, linear target), sup-error and RMSE do not depend
on d: exponents of d equal to 0 (Lemma 4.2: the cells on Γ have a d-free law; d enters the theorem only
through the region's diameter, held fixed here). Band: ``lsh_common.RESOLUTION_BANDS``.

(c) ``theorem41_linear_in_L``: at a fixed width (k = 2), errors on the triangle wave f_L(x) =
|(L <U u, x> + phi) mod 2 - 1| grow like L^1, the exponent of L in ε ∝ L √d T^(-1/k). The wave's gradient has
norm L everywhere but on its kinks (a sine's would vary with L, and its RMSE follow the mean squared
gradient, not L), and its amplitude stays 1, so an error that followed the amplitude would not follow L. The
buckets crossing a kink err less, which bends the measured exponents a few hundredths below 1 at these
widths. Band: ``lsh_common.WHOLE_POWER_BAND`` (the exponent rounds to the whole power 1).

Planted settings. (a) holds: a regular grid of m^k cubes on the cube [-1/2, 1/2]^k of Γ (m^k about the hash's
bucket count at each width), inputs on a lattice with the same symmetric points in every cube: every cube
errs exactly alike, so sup-error and RMSE are exactly proportional to the side 1/m = T^(-1/k); fails: a
locality-free partition (``dsm.random_hash.RandomBucketHash``: a bucket at random per input) with as many
buckets as the LSH, whose error stays that of predicting the mean. (b) holds: a hash drawn on Γ itself and
lifted to R^d (``lsh_common.lifted_pstable``), the same inputs and target on Γ for every d: identical errors;
fails: hash directions of unit length (``lsh_common.unit_hash``: cells on Γ grow like √d, exponent 1/2). (c)
holds: the amplitude scaled instead, L |(<U u, x> + phi) mod 2 - 1| (bucket means are linear in the labels:
errors exactly ∝ L); fails: N(0, 1) noise added to the test labels, far above every error, so the measured
errors stay flat in L.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sparse_bench.dsm import LSHModel
from sparse_bench.dsm.buckets import buckets_meeting_ball
from sparse_bench.dsm.random_hash import RandomBucketHash
from sparse_bench.hashing import universal_hash
from sparse_bench.targets import random_subspace
from theory_checks.framework import replicate_seed
from theory_checks.paper.geometry import unit_ball_points

from .decision import inside
from .lsh_common import (C_HASHES, RESOLUTION_BANDS, WHOLE_POWER_BAND, ball_inputs, dimension_band,
                         exponent_figure, geometric_interval, library_hash, lifted_pstable, slope, unit_hash)
from .registry import Component, Reading, Scale, register_finding

SOURCE = "Baykal et al. 2022, Theorem 4.1 (../shared/THEORY.md §A; the §D reading as rates)"
CLAIM = ("For L-Lipschitz f on [-1,1]^d with inputs uniform on an unknown k-dimensional subspace, an LSH "
         "model with bucket constants reaches sup-norm error ε with probability ≥ 0.8 using a table of "
         "O((L√d/ε)^k) buckets (Theorem 4.1); read as rates: sup-error ∝ T^(−1/k), MSE ∝ T^(−2/k) in the "
         "number of non-empty buckets, flat in d at fixed k, linear in L (§D)")
D_AMBIENT = 8  # the paper's experiments' input dimension
PER_BUCKET = 16  # training (and test) samples per bucket meeting the ball
LATTICE_PER_AXIS = 2  # (a) holds: lattice points per cube and axis
EVAL_NOISE_SD = 1.0  # (c) fails: test labels + N(0, 1); every error without it is below 0.1
TRAINING = ("bucket constants: the training mean of each bucket (the theorem's model, closed form; no "
            "readout is trained)")


@dataclass(frozen=True)
class RateDesign:
    """(a): intrinsic dimension k, the widths swept (largest first), seeds."""

    k: int
    widths: tuple
    seeds: int


@dataclass(frozen=True)
class SweepDesign:
    """(b), (c): one width, the values swept (ambient dimensions d, or Lipschitz constants L), seeds."""

    width: float
    values: tuple
    seeds: int


def _scale(profile: str, fraction: float, text: str, design) -> Scale:
    return Scale(fraction, f"{profile}: {text} (a theorem states no scale of its own: the paper profile is "
                           f"the largest sweep that fits its time budget)", design, ("bucket means",))


RATE_DESIGNS = {  # profile -> k -> design; widths of k = 3 stop where a fit holds ~16 x 12,000 samples
    "quick": {1: RateDesign(1, (0.2, 0.1, 0.05), 3), 2: RateDesign(2, (0.4, 0.283, 0.2), 3),
              3: RateDesign(3, (1.2, 0.9), 3)},
    "full": {1: RateDesign(1, (0.2, 0.141, 0.1, 0.0707, 0.05), 6),
             2: RateDesign(2, (0.4, 0.317, 0.252, 0.2, 0.159), 6),
             3: RateDesign(3, (0.8, 0.673, 0.566, 0.476), 6)},
    "paper": {1: RateDesign(1, (0.2, 0.141, 0.1, 0.0707, 0.05, 0.0354, 0.025), 20),
              2: RateDesign(2, (0.4, 0.317, 0.252, 0.2, 0.159, 0.126, 0.1), 20),
              3: RateDesign(3, (0.8, 0.673, 0.566, 0.476, 0.4), 20)},
}
D_DESIGNS = {"quick": SweepDesign(0.3, (4, 32, 256), 4), "full": SweepDesign(0.3, (4, 16, 64, 256), 10),
             "paper": SweepDesign(0.3, (4, 16, 64, 256), 100)}
L_DESIGNS = {"quick": SweepDesign(0.2, (0.5, 1.0, 2.0, 4.0), 4),
             "full": SweepDesign(0.2, (0.5, 1.0, 2.0, 4.0), 10),
             "paper": SweepDesign(0.2, (0.5, 1.0, 2.0, 4.0), 20)}


def _rate_scales(k: int) -> dict:
    paper_range = RATE_DESIGNS["paper"][k].widths[0] / RATE_DESIGNS["paper"][k].widths[-1]
    scales = {}
    for profile, designs in RATE_DESIGNS.items():
        design = designs[k]
        span = design.widths[0] / design.widths[-1]
        text = (f"k = {k} on a {k}-dimensional subspace of R^{D_AMBIENT}, {len(design.widths)} widths "
                f"{design.widths[0]:g} to {design.widths[-1]:g} (buckets x {span**k:.3g}), {design.seeds} "
                f"seeds, {PER_BUCKET} training and test samples per bucket")
        scales[profile] = _scale(profile, math.log(span) / math.log(paper_range), text, design)
    return scales


def _sweep_scales(designs: dict, what: str) -> dict:
    out = {}
    for profile, design in designs.items():
        text = (f"k = 2, width {design.width:g}, {what} {', '.join(f'{v:g}' for v in design.values)}, "
                f"{design.seeds} seeds, {PER_BUCKET} training and test samples per bucket")
        out[profile] = _scale(profile, design.seeds / designs["paper"].seeds, text, design)
    return out


# planted partitions of (a) -----------------------------------------------------------------------------
class GridHash:
    """Planted: cubes of side 1/m on the cube [-1/2, 1/2]^k of the subspace (coordinates z = U^T x): m^k
    buckets, every one the same shape."""

    def __init__(self, basis: torch.Tensor, cells_per_axis: int, seed: int):
        self.basis, self.m, self.seed = basis, cells_per_axis, seed

    def bucket(self, x: torch.Tensor) -> torch.Tensor:
        codes = torch.floor((x @ self.basis + 0.5) * self.m).clamp(0, self.m - 1).to(torch.int64)
        return universal_hash(codes, self.seed)


def lattice_inputs(basis: torch.Tensor, cells_per_axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Planted: LATTICE_PER_AXIS^k points per cube of ``GridHash`` at the same places in every cube,
    symmetric about its centre (so a bucket's mean is its centre's value for a linear target): (z, x)."""
    k, m, q = basis.shape[1], cells_per_axis, LATTICE_PER_AXIS
    axis = (torch.arange(m * q, dtype=torch.float64) + 0.5) / (m * q) - 0.5  # q per cell, centred in it
    z = torch.cartesian_prod(*[axis] * k).reshape(-1, k)
    return z, z @ basis.T


def _errors(model, x, y, xt, yt) -> dict:
    """Fit bucket means on (x, y); sup-error and RMSE on the test points whose bucket holds a sample."""
    model.fit(x, y)
    covered = torch.isin(model.hashes[0].bucket(xt), model.table_ids[0])
    err = (model.predict(xt) - yt)[covered].abs()
    return dict(buckets=model.num_nonempty_buckets, sup=float(err.max()),
                rmse=float(err.pow(2).mean().sqrt()), uncovered=1 - float(covered.double().mean()))


def _unit_vector(k: int, gen: torch.Generator) -> torch.Tensor:
    u = torch.randn(k, generator=gen, dtype=torch.float64)
    return u / u.norm()


def _rate_seed(seed: int, design: RateDesign, partition: str) -> list[dict]:
    """One replicate of (a): per width, T, sup-error, RMSE, uncovered share and the exact bucket count."""
    gen = torch.Generator().manual_seed(seed)
    k = design.k
    basis = random_subspace(D_AMBIENT, k, gen)
    u = _unit_vector(k, gen)
    hash_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    rows = []
    for w in design.widths:
        lsh = LSHModel(D_AMBIENT, "pstable", num_hashes=C_HASHES * k, width=w, seed=hash_seed)
        h = lsh.hashes[0]
        exact = buckets_meeting_ball(basis.T @ h.directions, h.offsets, w)
        if partition == "grid":  # as many cubes as the hash has buckets
            m = max(1, round(exact ** (1 / k)))
            model = LSHModel.from_hashes(D_AMBIENT, [GridHash(basis, m, hash_seed)], k)
            (z, x) = (zt, xt) = lattice_inputs(basis, m)
        else:
            if partition == "random":
                model = LSHModel.from_hashes(D_AMBIENT, [RandomBucketHash(exact, hash_seed)], C_HASHES * k)
            else:
                model = lsh
            (z, x), (zt, xt) = ball_inputs(PER_BUCKET * exact, basis, gen), ball_inputs(PER_BUCKET * exact,
                                                                                          basis, gen)
        rows.append({**_errors(model, x, z @ u, xt, zt @ u), "width": w, "exact_buckets": exact})
    return rows


def _rate_reading(seed: int, scale: Scale, partition: str) -> list[Reading]:
    design = scale.design
    k = design.k
    seeds = [replicate_seed(seed, r) for r in range(design.seeds)]
    runs = [_rate_seed(s, design, partition) for s in seeds]
    per_seed = {key: [[row[key] for row in run] for run in runs] for key in ("buckets", "sup", "rmse")}
    exponents = {q: [slope(t, e) for t, e in zip(per_seed["buckets"], per_seed[q])] for q in ("sup", "rmse")}
    components = [Component(f"k={k}: sup-error exponent in T (theorem: {-1 / k:.4g})",
                            tuple(exponents["sup"]), source_value=-1 / k),
                  Component(f"k={k}: RMSE exponent in T, half MSE's (theorem: {-1 / k:.4g}, MSE "
                            f"{-2 / k:.4g})", tuple(exponents["rmse"]), source_value=-1 / k)]
    mse = [2 * e for e in exponents["rmse"]]
    rows = []
    for i, w in enumerate(design.widths):
        column = [run[i] for run in runs]
        sup, rmse = (geometric_interval([row[q] for row in column]) for q in ("sup", "rmse"))
        rows.append([f"{w:g}", f"{np.mean([row['buckets'] for row in column]):.0f}",
                     f"{np.mean([row['exact_buckets'] for row in column]):.0f}",
                     f"{sup[0]:.4g} [{sup[1]:.4g}, {sup[2]:.4g}]",
                     f"{rmse[0]:.4g} [{rmse[1]:.4g}, {rmse[2]:.4g}]",
                     f"{max(row['uncovered'] for row in column):.2%}"])
    figure = exponent_figure(
        f"Theorem 4.1, k = {k}: sup-error and RMSE against non-empty buckets T (geometric mean over "
        f"{len(seeds)} seeds, 95% interval), the theorem's exponent {-1 / k:.3g} overlaid",
        "non-empty buckets T", "error (linear target, L = 1)",
        [("sup-error", per_seed["buckets"], per_seed["sup"], -1 / k),
         ("RMSE", per_seed["buckets"], per_seed["rmse"], -1 / k)])
    details = dict(
        partition=partition, band=list(dimension_band(k)), mse_exponent_per_seed=mse,
        table={"title": f"k = {k}: errors per width (geometric mean [95% interval] over seeds)",
               "columns": ["width", "non-empty buckets T", "buckets meeting the ball (exact)", "sup-error",
                           "RMSE", "largest test share in empty buckets"], "rows": rows},
        figure=figure)
    test = "per seed, least-squares slope of log error on log T over the widths (np.polyfit)"
    return [Reading(params=dict(k=k), components=components, seeds=seeds, test=test, training=TRAINING,
                    details=details)]


def _register_rate(k: int):
    low, high = dimension_band(k)

    @register_finding(
        name=f"theorem41_rate_k{k}", source=SOURCE, claim=CLAIM,
        reading=(f"k = {k}: the exponents of sup-error and of RMSE (half MSE's) against T equal the "
                 f"theorem's {-1 / k:.4g}; reproduced when both intervals lie inside "
                 f"[{low:.4g}, {high:.4g}], the exponents whose implied dimension -1/exponent is {k} +- 1/2 "
                 f"(the resolution that tells k from k - 1 and k + 1). Two-sided because for an oblivious "
                 f"partition the upper bound is also the rate (module docstring)"),
        source_value={"sup-error exponent": -1 / k, "MSE exponent": -2 / k, "RMSE exponent": -1 / k},
        unit="exponent of T", scale_by_profile=_rate_scales(k), decision=inside(low, high),
        controls={"holds": lambda: {"partition": "grid"}, "fails": lambda: {"partition": "random"}},
    )
    def finding(seed: int, scale: Scale, training: str, partition: str = "lsh"):
        return _rate_reading(seed, scale, partition)

    return finding


finding_rate_k1, finding_rate_k2, finding_rate_k3 = (_register_rate(k) for k in (1, 2, 3))


# (b) flat in d ----------------------------------------------------------------------------------------------
def _d_seed(seed: int, design: SweepDesign, make_hash) -> list[dict]:
    """One replicate of (b): the same inputs and linear target on Γ (k = 2), one subspace and hash per d."""
    gen = torch.Generator().manual_seed(seed)
    k, w = 2, design.width
    u = _unit_vector(k, gen)
    hash_seed = int(torch.randint(0, 2**40, (1,), generator=gen))  # room for replicate_seed(hash_seed, d)
    # one sample size for every d: the bucket count of a hash drawn on Γ, whose cells have every d's law
    probe = lifted_pstable(torch.eye(k, dtype=torch.float64), C_HASHES * k, w, hash_seed)
    n = PER_BUCKET * buckets_meeting_ball(probe.directions, probe.offsets, w)
    z, zt = unit_ball_points(n, k, gen), unit_ball_points(n, k, gen)
    rows = []
    for d in design.values:
        basis = random_subspace(d, k, gen)
        h = make_hash(basis, C_HASHES * k, w, hash_seed)
        model = LSHModel.from_hashes(d, [h], C_HASHES * k)
        rows.append({**_errors(model, z @ basis.T, z @ u, zt @ basis.T, zt @ u), "d": d})
    return rows


def _sweep_components(label: str, values: tuple, runs: list, predicted: float) -> list[Component]:
    return [Component(f"{q} exponent of {label} (theorem: {predicted:g})",
                      tuple(slope(values, [row[q] for row in run]) for run in runs), source_value=predicted)
            for q in ("sup", "rmse")]


def _sweep_details(title: str, label: str, values: tuple, runs: list, predicted: float, band: float) -> dict:
    xs = [list(values) for _ in runs]
    rows = []
    for i, v in enumerate(values):
        column = [run[i] for run in runs]
        sup, rmse = (geometric_interval([row[q] for row in column]) for q in ("sup", "rmse"))
        rows.append([f"{v:g}", f"{sup[0]:.4g} [{sup[1]:.4g}, {sup[2]:.4g}]",
                     f"{rmse[0]:.4g} [{rmse[1]:.4g}, {rmse[2]:.4g}]",
                     f"{np.mean([row['buckets'] for row in column]):.0f}"])
    figure = exponent_figure(
        f"{title} (geometric mean over {len(runs)} seeds, 95% interval), the theorem's exponent "
        f"{predicted:g} overlaid", label, "error",
        [("sup-error", xs, [[row["sup"] for row in run] for run in runs], predicted),
         ("RMSE", xs, [[row["rmse"] for row in run] for run in runs], predicted)])
    return dict(band=[predicted - band, predicted + band],
                table={"title": f"{title}: errors (geometric mean [95% interval] over seeds)",
                       "columns": [label, "sup-error", "RMSE", "non-empty buckets T"], "rows": rows},
                figure=figure)


D_BAND = RESOLUTION_BANDS["theorem41_flat_in_d"]


@register_finding(
    name="theorem41_flat_in_d", source=SOURCE, claim=CLAIM,
    reading=("flat in d: at a fixed width (k = 2, L = 1, the same region of Γ), the exponents of d in "
             f"sup-error and RMSE are 0; reproduced when both intervals lie inside +-{D_BAND:g}, twice the "
             "half-width the paper profile resolves (lsh_common.RESOLUTION_BANDS). The width, not T, is "
             "held: the theorem's d enters through the domain's diameter (its √d), and on a fixed region T "
             "is d-free too"),
    source_value={"exponent of d (sup-error, RMSE)": 0.0}, unit="exponent of d",
    scale_by_profile=_sweep_scales(D_DESIGNS, "d ="), decision=inside(-D_BAND, D_BAND),
    controls={"holds": lambda: {"make_hash": lifted_pstable}, "fails": lambda: {"make_hash": unit_hash}},
)
def finding_flat_in_d(seed: int, scale: Scale, training: str, make_hash=library_hash):
    design = scale.design
    seeds = [replicate_seed(seed, r) for r in range(design.seeds)]
    runs = [_d_seed(s, design, make_hash) for s in seeds]
    details = _sweep_details(f"Theorem 4.1, k = 2, width {design.width:g}: errors against the ambient "
                             "dimension d", "ambient dimension d", design.values, runs, 0.0, D_BAND)
    details["hash"] = make_hash.__name__
    return [Reading(params=dict(k=2, width=design.width),
                    components=_sweep_components("d", design.values, runs, 0.0), seeds=seeds,
                    test="per seed, least-squares slope of log error on log d", training=TRAINING,
                    details=details)]


# (c) linear in L --------------------------------------------------------------------------------------------
def triangle_wave(s: torch.Tensor) -> torch.Tensor:
    """|s mod 2 - 1|: values in [0, 1], slope +-1 everywhere but at its kinks (one per unit of s)."""
    return (torch.remainder(s, 2.0) - 1).abs()


def _l_seed(seed: int, design: SweepDesign, target: str, eval_noise: float) -> list[dict]:
    """One replicate of (c): one subspace, hash and sample; the target's Lipschitz constant swept."""
    gen = torch.Generator().manual_seed(seed)
    k, w = 2, design.width
    basis = random_subspace(D_AMBIENT, k, gen)
    u, phase = _unit_vector(k, gen), float(torch.rand(1, generator=gen, dtype=torch.float64)) * 2
    model = LSHModel(D_AMBIENT, "pstable", num_hashes=C_HASHES * k, width=w,
                     seed=int(torch.randint(0, 2**62, (1,), generator=gen)))
    h = model.hashes[0]
    n = PER_BUCKET * buckets_meeting_ball(basis.T @ h.directions, h.offsets, w)
    (z, x), (zt, xt) = ball_inputs(n, basis, gen), ball_inputs(n, basis, gen)
    noise = eval_noise * torch.randn(n, generator=gen, dtype=torch.float64)
    rows = []
    for lip in design.values:
        if target == "amplitude":
            f = lambda v, lip=lip: lip * triangle_wave(v @ u + phase)  # noqa: E731
        else:
            f = lambda v, lip=lip: triangle_wave(lip * (v @ u) + phase)  # noqa: E731
        rows.append({**_errors(model, x, f(z), xt, f(zt) + noise), "L": lip})
    return rows


L_BAND = WHOLE_POWER_BAND


@register_finding(
    name="theorem41_linear_in_L", source=SOURCE, claim=CLAIM,
    reading=("linear in L: at a fixed width (k = 2), the exponents of L in sup-error and RMSE on the "
             "triangle wave |(L <U u, x> + phi) mod 2 - 1| are 1; reproduced when both intervals lie inside "
             f"1 +- {L_BAND:g}, the "
             "exponent rounding to the whole power 1 (lsh_common.WHOLE_POWER_BAND; the folds' finite-size "
             "bias, a few hundredths, is reported in the table, not tolerated by a band of the resolution's "
             "size). The frequency, not the "
             "amplitude, carries L, so the exponent is not 1 by the linearity of bucket means alone"),
    source_value={"exponent of L (sup-error, RMSE)": 1.0}, unit="exponent of L",
    scale_by_profile=_sweep_scales(L_DESIGNS, "L ="), decision=inside(1 - L_BAND, 1 + L_BAND),
    controls={"holds": lambda: {"target": "amplitude"}, "fails": lambda: {"eval_noise": EVAL_NOISE_SD}},
)
def finding_linear_in_l(seed: int, scale: Scale, training: str, target: str = "frequency",
                        eval_noise: float = 0.0):
    design = scale.design
    seeds = [replicate_seed(seed, r) for r in range(design.seeds)]
    runs = [_l_seed(s, design, target, eval_noise) for s in seeds]
    details = _sweep_details(f"Theorem 4.1, k = 2, width {design.width:g}: errors against the Lipschitz "
                             "constant L", "Lipschitz constant L", design.values, runs, 1.0, L_BAND)
    details.update(target=target, eval_noise=eval_noise)
    return [Reading(params=dict(k=2, width=design.width),
                    components=_sweep_components("L", design.values, runs, 1.0), seeds=seeds,
                    test="per seed, least-squares slope of log error on log L", training=TRAINING,
                    details=details)]
