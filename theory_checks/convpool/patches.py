"""Each convolution kernel is a linear classifier on patches (docs/THEORY.md §B).

1. A scikit-learn logistic regression trained on labelled patches, loaded into a one-channel convolution,
   gives its decision function at every location (exact; float64 rounding bound).
2. One kernel + global max pooling trained on image labels only (which image holds a planted pattern, never
   where) learns the pattern: the cosine between kernel and pattern is far above the null spread of a random
   direction in R^D, D = k^2, for which cos^2 ~ Beta(1/2, (D-1)/2) exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from sparse_bench.blocks import (conv2d_im2col, from_linear_classifier, image_patches, maxpool_plan,
                                  pool_from_plan)
from theory_checks.framework import ALPHA, by_profile, figure_spec, make_result, register_check, series

from .common import AREA, SOURCE, gamma

KERNEL = 5  # pattern and kernel size; D = 25
IMAGE = 20  # image side: a 4 x 4 grid of 5 x 5 tiles
AMPLITUDE = 5.0  # planted pattern strength (noise sd 1)


def planted_pattern() -> torch.Tensor:
    """A fixed unit-norm, zero-mean 5x5 pattern of +-1 entries with small autocorrelation at every nonzero
    shift (so shifted copies of it are poor local optima), float64."""
    # found by a seeded search over 20,000 random sign patterns: off-peak |autocorrelation| <= 0.13
    signs = torch.tensor([[-1, 1, 1, -1, 1], [1, 1, -1, 1, -1], [-1, -1, -1, 1, -1], [1, 1, -1, -1, -1],
                          [1, 1, -1, -1, -1]], dtype=torch.float64)
    pattern = signs - signs.mean()
    return pattern / pattern.norm()


def planted_images(gen, images: int, amplitude: float):
    """(images, 1, IMAGE, IMAGE) N(0,1) noise; the second half hold amplitude * pattern in a uniform tile of
    the 5 x 5 grid (the detector's conv has stride 5, so a patch holds the whole pattern or none of it)."""
    x = torch.randn(images, 1, IMAGE, IMAGE, generator=gen, dtype=torch.float64)
    labels = torch.arange(images) >= images // 2
    spots = torch.randint(0, IMAGE // KERNEL, (images, 2), generator=gen) * KERNEL  # a tile of the grid
    pattern = planted_pattern()
    for i in torch.nonzero(labels).reshape(-1).tolist():
        r, c = spots[i].tolist()
        x[i, 0, r : r + KERNEL, c : c + KERNEL] += amplitude * pattern
    return x, labels


def _column_major_loader(coef, intercept, kernel_size, channels):
    """Planted defect: coefficients read into the kernel in column-major order (a transposed kernel)."""
    k = kernel_size
    coef = np.asarray(coef).reshape(-1, k, k).transpose(0, 2, 1).reshape(len(np.atleast_2d(coef)), -1)
    return from_linear_classifier(coef, intercept, k, channels)


@register_check(
    name="logreg_patch_classifier_is_conv", source=SOURCE, area=AREA,
    prediction="a LogisticRegression fitted on patches, loaded into a one-channel conv, gives "
               "decision_function "
               "at every location (|diff| within float64 rounding)",
    unit="× rounding bound",
    controls={"coef_loaded_column_major": lambda: {"loader": _column_major_loader}},
)
def check_logreg_patch_classifier_is_conv(seed: int, profile: str = "quick", loader=from_linear_classifier):
    from sklearn.linear_model import LogisticRegression

    images = by_profile(profile, quick=40, full=400)
    gen = torch.Generator().manual_seed(seed)
    x, image_labels = planted_images(gen, images, amplitude=3.0)
    patches = image_patches(x, KERNEL).numpy()  # (images * 100, 25), rows ordered (n, i, j)
    scores = patches @ planted_pattern().reshape(-1).numpy()
    patch_labels = (scores > 1.5).astype(int)  # patch holds (most of) the pattern
    model = LogisticRegression(C=1.0, max_iter=1000).fit(patches, patch_labels)
    conv = loader(model.coef_, model.intercept_, KERNEL, 1)
    with torch.no_grad():
        out = conv(x).permute(0, 2, 3, 1).reshape(-1).numpy()  # (n, i, j) order, like the patches
    reference = model.decision_function(patches)
    magnitude = np.abs(patches) @ np.abs(model.coef_.ravel()) + abs(float(model.intercept_[0]))
    bound = 2 * gamma(KERNEL * KERNEL + 1, torch.float64) * magnitude
    ratio = float((np.abs(out - reference) / bound).max())
    return make_result("logreg_patch_classifier_is_conv", passed=ratio <= 1.0, seed=seed, profile=profile,
                       n=len(reference), test="max |conv - decision_function| / rounding bound <= 1",
                       predicted=0.0,
                       measured=ratio, margin="bound: 2*gamma_26*(|coef||patch| + |intercept|)",
                       params={"images": images, "positive_patches": int(patch_labels.sum())},
                       details={"train_accuracy": float(model.score(patches, patch_labels)),
                                "no_figure": "an identity exact in real arithmetic: the one number is the "
                                "worst difference over its float64 rounding bound (<= 1 passes)"})


def plan_global_max(scores: torch.Tensor) -> torch.Tensor:
    """Global max pooling through maxpool_plan (differentiable in scores). scores: (N, 1, H, W) -> (N,)."""
    plan = maxpool_plan(scores, (scores.shape[2], scores.shape[3]))
    return pool_from_plan(scores, plan).reshape(-1)


def detached_global_max(scores: torch.Tensor) -> torch.Tensor:
    """Planted defect: the plan's gather done outside autograd, so no gradient reaches the kernel. The kernels
    stay at their random start, so the chosen one (best loss of R) passes with probability <= R * ALPHA."""
    return plan_global_max(scores.detach())


def null_cosine_p_value(cosine: float, dim: int) -> float:
    """P(cos >= c) for a uniformly random direction in R^dim against a fixed unit vector (one-sided)."""
    if cosine <= 0:
        return 1.0 - 0.5 * float(stats.beta.sf(cosine**2, 0.5, (dim - 1) / 2))
    return 0.5 * float(stats.beta.sf(cosine**2, 0.5, (dim - 1) / 2))


def train_max_pool_detector(x, labels, gen, pool, steps: int, restarts: int) -> tuple[torch.Tensor, list]:
    """Fit ``restarts`` independent (kernel, bias) pairs of logit = pool(conv(x, kernel, stride=5)) + bias by
    full-batch Adam on the logistic loss, from small random kernels, all at once. x: (N, 1, H, W);
    labels: (N,) bool. Returns the (25,) kernel with the lowest final training loss (chosen from the labels
    alone, never from the pattern) and every restart's final loss."""
    start = 0.1 * torch.randn(restarts, 1, KERNEL, KERNEL, generator=gen, dtype=x.dtype)
    kernel = start.requires_grad_(True)
    bias = torch.zeros(restarts, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.Adam([kernel, bias], lr=0.05)
    targets = labels.to(x.dtype).reshape(-1, 1).expand(-1, restarts)  # (N, R)

    def losses() -> torch.Tensor:
        scores = conv2d_im2col(x, kernel, stride=KERNEL)  # (N, R, 4, 4): one score per tile and restart
        logits = pool(scores.reshape(-1, 1, *scores.shape[2:])).reshape(-1, restarts) + bias  # (N, R)
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=0)  # (R,)

    for _ in range(steps):
        optimizer.zero_grad()
        losses().sum().backward()  # restarts share no parameter: the sum trains each independently
        optimizer.step()
    with torch.no_grad():
        final = losses()
    return kernel.detach()[int(final.argmin())].reshape(-1), final.tolist()


@register_check(
    name="global_maxpool_learns_planted_pattern", source=SOURCE, area=AREA,
    prediction="one 5x5 kernel + global max pooling, trained (logistic loss) on image labels only, has "
               "cosine with "
               "the planted pattern far above a random direction's (one-sided null p < alpha)",
    unit="cosine",
    controls={"pooled_values_detached": lambda: {"pool": detached_global_max}},
)
def check_global_maxpool_learns_planted_pattern(seed: int, profile: str = "quick", pool=plan_global_max):
    images, steps = by_profile(profile, quick=(200, 200), full=(1000, 300))
    restarts = 3  # a restart lands in a local optimum (loss ~0.55) about 2% of the time
    gen = torch.Generator().manual_seed(seed)
    x, labels = planted_images(gen, images, amplitude=AMPLITUDE)
    w, losses = train_max_pool_detector(x, labels, gen, pool, steps, restarts)
    cosine = float(w @ planted_pattern().reshape(-1) / w.norm())
    dim = KERNEL * KERNEL
    p = null_cosine_p_value(cosine, dim)
    threshold = math.sqrt(stats.beta.isf(2 * ALPHA, 0.5, (dim - 1) / 2))
    return make_result("global_maxpool_learns_planted_pattern", passed=p < ALPHA, seed=seed, profile=profile,
                       n=images,
                       test="one-sided p of the cosine under the exact null cos^2 ~ Beta(1/2, (D-1)/2)",
                       predicted=1.0, measured=cosine, p_value=p,
                       margin=f"pass iff null p < {ALPHA} (cosine > {threshold:.3f}); "
                              f"null sd = {1 / math.sqrt(dim):.3f}",
                       params={"images": images, "steps": steps, "restarts": restarts,
                               "amplitude": AMPLITUDE},
                       details={"final_training_losses": losses,
                                "figure": _null_cosine_figure(cosine, threshold, dim)})


def _null_cosine_figure(cosine: float, threshold: float, dim: int) -> dict:
    """The null density (1 - c^2)^((dim - 3) / 2) / B(1/2, (dim - 1) / 2) of the cosine of a random direction
    in R^dim, the pass threshold and the learnt kernel's cosine."""
    grid = np.linspace(-1.0, 1.0, 201)
    log_beta = math.lgamma(0.5) + math.lgamma((dim - 1) / 2) - math.lgamma(dim / 2)  # log B(1/2, (dim-1)/2)
    density = (1 - grid**2) ** ((dim - 3) / 2) / math.exp(log_beta)
    top = float(density.max())
    return figure_spec(f"learnt kernel vs planted pattern: cosine against a random direction in R^{dim}",
                       "cosine with the planted pattern", "null density",
                       series("null: random direction", grid.tolist(), density.tolist(), style="predicted"),
                       series(f"pass threshold (null p = {ALPHA})", [threshold, threshold], [0.0, top],
                              style="predicted"),
                       series("learnt kernel", [cosine], [0.0]))
