"""A small experiment joining the two halves: a CNN whose penultimate dense layer is a top-K DSM.

The paper's CIFAR-10 setting scaled down to a CPU: synthetic 12 x 12 images of a Gaussian blob at a latent
position z in [-1, 1]^2 plus pixel noise; the target is the smooth function f(z) = sin(3 z_1) cos(3 z_2).
The CNN is a frozen random ConvPoolBlock (conv 3x3 -> ReLU -> 2x2 max pool, the library's block), centred and
flattened; its penultimate layer is either ``TopKDSM(d, total_units=t, active_units=K)`` or a dense random
ReLU layer of width K (``RandomFeaturesDense``), i.e. equal active units, each with a ridge readout
(sparse_bench.dsm). Following the formal model, hidden layers are frozen random; only the readout is fitted.
Prediction (docs/THEORY.md §A.11 in the CNN setting): the DSM's test MSE is below the dense layer's at equal
active units, and it falls as t grows (the full profile sweeps t).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from sparse_bench.blocks import ConvPoolBlock
from sparse_bench.dsm import RandomFeaturesDense, TopKDSM
from theory_checks.framework import (ALPHA, by_profile, figure_spec, holm, make_result, register_check,
                                     replicate_seed, series)

from .common import AREA

IMAGE = 12
NOISE = 0.1  # pixel noise sd
CHANNELS = 8  # conv channels: features d = 8 * 5 * 5 = 200
ACTIVE = 32  # K: active units of both models


def blob_images(gen, samples: int):
    """(samples, 1, 12, 12) float64 images and (samples,) targets f(z)."""
    z = torch.rand(samples, 2, generator=gen, dtype=torch.float64) * 2 - 1  # latent blob centre
    grid = torch.linspace(-1.2, 1.2, IMAGE, dtype=torch.float64)
    dy = grid.reshape(1, -1, 1) - z[:, 0].reshape(-1, 1, 1)
    dx = grid.reshape(1, 1, -1) - z[:, 1].reshape(-1, 1, 1)
    noise = torch.randn(samples, IMAGE, IMAGE, generator=gen, dtype=torch.float64)
    images = torch.exp(-(dy**2 + dx**2) / (2 * 0.25**2)) + NOISE * noise
    target = torch.sin(3 * z[:, 0]) * torch.cos(3 * z[:, 1])
    return images.unsqueeze(1), target


class BottomKDSM(TopKDSM):
    """Planted defect: the mask keeps the K *smallest* pre-activations (topk with the wrong direction)."""

    def _mask_from(self, pre):
        low = torch.topk(pre, self.active_units, dim=1, largest=False).indices
        return torch.zeros_like(pre, dtype=torch.bool).scatter_(1, low, True)


def squared_errors(seed: int, samples: tuple[int, int], widths: list[int], dsm_class=TopKDSM) -> dict:
    """Per-test-point squared errors of the dense-K model and of the DSM at each total width t.

    Returns {"dense": (n_test,), "dsm_t<t>": (n_test,) for t in widths}."""
    gen = torch.Generator().manual_seed(seed)
    n_train, n_test = samples
    images, target = blob_images(gen, n_train + n_test)
    cnn = ConvPoolBlock(1, CHANNELS, 3, pool="max", generator=gen, dtype=torch.float64)
    with torch.no_grad():
        feats = cnn(images).flatten(1)  # (n, d)
    feats = (feats - feats[:n_train].mean(0)) / feats[:n_train].std()  # centre per feature, one global scale
    train, test = (feats[:n_train], target[:n_train]), (feats[n_train:], target[n_train:])
    d = feats.shape[1]
    models = {"dense": RandomFeaturesDense(d, ACTIVE, seed=seed)}
    models.update({f"dsm_t{t}": dsm_class(d, t, ACTIVE, seed=seed) for t in widths})
    return {name: ((m.fit(*train).predict(test[0]) - test[1]) ** 2).numpy() for name, m in models.items()}


def _paired_greater(worse: np.ndarray, better: np.ndarray) -> float:
    """One-sided paired t-test over test points that ``better`` has the lower mean squared error."""
    return float(stats.ttest_1samp(worse - better, 0.0, alternative="greater").pvalue)


@register_check(
    name="cnn_topk_dsm_beats_dense", source="paper Table 1 / docs/THEORY.md §A.11, CNN setting", area=AREA,
    prediction="at equal active units K=32, a CNN whose penultimate layer is a top-K DSM (t=512 units) has "
               "lower test MSE than with a dense K-unit layer, on every seed",
    unit="MSE ratio",
    controls={"mask_keeps_bottom_k": lambda: {"dsm_class": BottomKDSM}},
)
def check_cnn_topk_dsm_beats_dense(seed: int, profile: str = "quick", dsm_class=TopKDSM):
    """Verdict: the DSM beats dense on every seed. The full profile also sweeps t (64..1024) and reports, without
    a verdict, how the DSM's MSE moves with total width (details: per-seed curves, MSE(t=1024)/MSE(t=64))."""
    seeds = by_profile(profile, quick=1, full=5)
    samples = by_profile(profile, quick=(2000, 1000), full=(3000, 4000))
    widths = by_profile(profile, quick=[512], full=[64, 128, 256, 512, 1024])
    runs, p_values = [], []
    for offset in range(seeds):
        errs = squared_errors(replicate_seed(seed, offset), samples, widths, dsm_class)
        p_dense = _paired_greater(errs["dense"], errs["dsm_t512"])
        p_values.append(p_dense)
        runs.append({"seed": replicate_seed(seed, offset), "p_dsm_beats_dense": p_dense,
                     "mse": {name: float(e.mean()) for name, e in errs.items()}})
    rejected = holm(p_values, ALPHA)
    ratios = np.array([r["mse"]["dsm_t512"] / r["mse"]["dense"] for r in runs])
    details = {"runs": runs, "figure": _mse_figure(runs, widths)}
    ci = None
    if seeds > 1:
        interval = stats.ttest_1samp(ratios, 1.0).confidence_interval(1 - ALPHA)
        ci = (float(interval.low), float(interval.high))
        width_ratio = np.array([r["mse"]["dsm_t1024"] / r["mse"]["dsm_t64"] for r in runs])
        trend = stats.ttest_1samp(width_ratio, 1.0).confidence_interval(1 - ALPHA)
        details["mse_t1024_over_t64"] = {"mean": float(width_ratio.mean()), "ci": [trend.low, trend.high]}
    return make_result("cnn_topk_dsm_beats_dense", passed=all(rejected), seed=seed, profile=profile,
                       n=samples[1] * seeds,
                       test="one-sided paired t over test points per seed, Holm over seeds; all must reject",
                       predicted=None, measured=float(ratios.mean()), ci=ci, p_value=max(p_values),
                       margin=f"family-wise alpha {ALPHA}; measured = MSE(DSM t=512) / MSE(dense K=32), "
                              f"t-interval over seeds at level {1 - ALPHA}",
                       params={"active_units": ACTIVE, "widths": widths, "seeds": seeds,
                               "train_test": samples},
                       details=details)


def _mse_figure(runs: list[dict], widths: list[int]) -> dict:
    """Test MSE of the dense K-unit layer and of the DSM at each total width t, one point per seed, the mean
    over seeds as bars."""
    models = ["dense"] + [f"dsm_t{t}" for t in widths]
    labels = [f"dense, {ACTIVE} units"] + [f"DSM t={t}, {ACTIVE} active" for t in widths]
    return figure_spec(f"CNN penultimate layer at equal active units K={ACTIVE}: test MSE "
                       "(prediction: DSM below dense)", "penultimate layer", "test MSE",
                       series("mean over seeds", labels, [float(np.mean([r["mse"][m] for r in runs]))
                                                          for m in models], style="bar"),
                       *(series(f"seed {r['seed']}", labels, [r["mse"][m] for m in models]) for r in runs))
