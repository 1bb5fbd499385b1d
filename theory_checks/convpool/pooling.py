"""Pooling facts (docs/THEORY.md §B): max pooling commutes with monotone activations, Jensen for average
pooling, and max pooling is sparse routing (its gradient goes exactly where ``maxpool_plan`` routes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sparse_bench.blocks import avgpool_plan, maxpool_plan, pool_from_plan
from theory_checks.framework import (ALPHA, binomial_test, by_profile, clopper_pearson, figure_spec,
                                     make_result, register_check, result_from_cells, series)

from .common import AREA, SOURCE, gamma

MONOTONE = {"relu": F.relu, "leaky_relu": lambda z: F.leaky_relu(z, 0.1), "hardtanh": F.hardtanh,
            "relu6": F.relu6}
# (kernel, stride, padding): disjoint windows, overlapping, padded
WINDOWS = [(2, 2, 0), (3, 3, 0), (3, 2, 1), (2, 1, 1)]


def plan_max_pool(z, kernel, stride=None, padding=0):
    """Max pooling through the library's RoutingPlan."""
    return pool_from_plan(z, maxpool_plan(z, kernel, stride, padding))


def plan_avg_pool(z, kernel, stride=None, padding=0):
    """Average pooling through the library's RoutingPlan."""
    return pool_from_plan(z, avgpool_plan(z, kernel, stride, padding))


@register_check(
    name="maxpool_commutes_with_monotone_activation", source=SOURCE, area=AREA,
    prediction="maxpool(g(z)) == g(maxpool(z)) exactly for non-decreasing g "
               "(relu, leaky_relu, hardtanh, relu6)",
    unit="mismatched outputs",
    controls={"average_in_place_of_max": lambda: {"pool": plan_avg_pool}},
)
def check_maxpool_commutes(seed: int, profile: str = "quick", pool=plan_max_pool):
    images = by_profile(profile, quick=64, full=2048)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(images, 3, 12, 12, generator=gen)
    mismatched, outputs, per_case = 0, 0, {}
    for g_name, g in MONOTONE.items():
        for kernel, stride, padding in WINDOWS:
            left, right = pool(g(z), kernel, stride, padding), g(pool(z, kernel, stride, padding))
            bad = int((left != right).sum())
            mismatched, outputs = mismatched + bad, outputs + left.numel()
            per_case[f"{g_name} k={kernel} s={stride} p={padding}"] = bad
    return make_result("maxpool_commutes_with_monotone_activation", passed=mismatched == 0, seed=seed,
                       profile=profile, n=outputs, test="bitwise equality on every output", predicted=0.0,
                       measured=mismatched,
                       margin="exact: a monotone g maps the selected element, fp rounding is monotone",
                       details={"mismatches_per_case": per_case,
                                "no_figure": "bitwise equality on every output (a count of mismatches, 0 or "
                                "the check fails); the count per activation and window is in the details"})


def _shifted_window_avg(z, kernel, stride=None, padding=0):
    """Planted defect: average pooling over windows shifted one column to the right (circularly)."""
    return plan_avg_pool(torch.roll(z, -1, dims=3), kernel, stride, padding)


@register_check(
    name="avgpool_jensen", source=SOURCE, area=AREA,
    prediction="avgpool(relu(z)) >= relu(avgpool(z)) on every window; strict iff the window has mixed signs, "
               "so for iid N(0,1) P(strict) = 1 - 2^(1-k^2)",
    unit="probability",
    controls={"shifted_window": lambda: {"pool": _shifted_window_avg},
              "max_in_place_of_avg": lambda: {"pool": plan_max_pool}},
)
def check_avgpool_jensen(seed: int, profile: str = "quick", pool=plan_avg_pool):
    images = by_profile(profile, quick=200, full=5000)
    gen = torch.Generator().manual_seed(seed)
    cells, violations = [], 0
    for k in (2, 3):
        z = torch.randn(images, 1, 6 * k, 6 * k, generator=gen, dtype=torch.float64)  # disjoint windows: iid
        left = pool(F.relu(z), k)  # the implementation under test
        right = F.relu(F.avg_pool2d(z, k))  # the same windows' mean, from torch (independent of the plan)
        tol = 2 * gamma(k * k, torch.float64) * F.avg_pool2d(z.abs(), k)  # rounding of the two averages
        violations += int((left < right - tol).sum())
        strict = int((left > right + tol).sum())
        windows = left.numel()
        predicted = 1 - 2.0 ** (1 - k * k)
        p = binomial_test(strict, windows, predicted)
        cells.append({"k": k, "predicted": predicted, "measured": strict / windows,
                      "ci": clopper_pearson(strict, windows), "p_value": p, "windows": windows})
    ks = [c["k"] for c in cells]
    return result_from_cells(
        "avgpool_jensen", cells, head=cells[0], passed=violations == 0, seed=seed, profile=profile,
        n=sum(c["windows"] for c in cells),
        test="no violation beyond rounding; exact binomial on strict fraction, Holm over k in {2,3}",
        margin=f"violations counted beyond 2*gamma_k2*avg|z|; CI level {1 - ALPHA}",
        details={"violations": violations, "figure": figure_spec(
            "Jensen for average pooling: share of windows where the inequality is strict",
            "window size k (k x k)", "P(avgpool(relu z) > relu(avgpool z))",
            series("measured (Clopper-Pearson, 1 - ALPHA)", ks, [c["measured"] for c in cells],
                   [c["ci"][0] for c in cells], [c["ci"][1] for c in cells]),
            series("1 - 2^(1 - k^2)", ks, [c["predicted"] for c in cells], style="predicted"))})


def _corner_plan(x, kernel, stride=None, padding=0):
    """Planted defect: a max-pool plan that routes every window to its top-left position."""
    plan = maxpool_plan(x, kernel, stride, padding)
    avg = avgpool_plan(x, kernel, stride, padding)
    first = avg.slot_in_expert == 0
    plan.token_index = avg.token_index[first]
    return plan


def _avg_plan_wrong_weight(x, kernel, stride=None, padding=0):
    """Planted defect: average-pool weights 1/k instead of 1/k^2."""
    plan = avgpool_plan(x, kernel, stride, padding)
    plan.weight = plan.weight * kernel
    return plan


@register_check(
    name="pooling_gradient_routing", source=SOURCE, area=AREA,
    prediction="k x k stride-k max pool: gradient on exactly one input per window (fraction 1/k^2), "
               "exactly at "
               "maxpool_plan's token; average pool: grad/k^2 on every input, as avgpool_plan's weights say",
    unit="fraction of inputs",
    controls={"max_routes_to_corner": lambda: {"max_plan": _corner_plan},
              "avg_weight_one_over_k": lambda: {"avg_plan": _avg_plan_wrong_weight}},
)
def check_pooling_gradient_routing(seed: int, profile: str = "quick", max_plan=maxpool_plan,
                                   avg_plan=avgpool_plan):
    images = by_profile(profile, quick=32, full=1024)
    gen = torch.Generator().manual_seed(seed)
    errors, fractions = {}, {}
    for k in (2, 3, 4):
        x = torch.randn(images, 2, 4 * k, 4 * k, generator=gen, dtype=torch.float64, requires_grad=True)
        up = torch.randn(images, 2, 4, 4, generator=gen, dtype=torch.float64)
        (g_max,) = torch.autograd.grad(F.max_pool2d(x, k), x, up)
        (g_avg,) = torch.autograd.grad(F.avg_pool2d(x, k), x, up)
        routed = torch.zeros(x.numel(), dtype=x.dtype)  # where the plan says each window's gradient goes
        plan = max_plan(x.detach(), k)
        routed.index_add_(0, plan.token_index, up.reshape(-1)[plan.expert_index] * plan.weight)
        # counted on the plan's routing (PyTorch's own gradient must then equal it: max_grad_off_plan)
        per_window = F.avg_pool2d((routed.reshape(x.shape) != 0).double(), k) * k * k  # nonzero per window
        fractions[k] = float((routed != 0).double().mean())
        spread = torch.zeros(x.numel(), dtype=x.dtype)
        aplan = avg_plan(x.detach(), k)
        spread.index_add_(0, aplan.token_index, up.reshape(-1)[aplan.expert_index] * aplan.weight)
        errors[k] = {
            "windows_without_exactly_one": int((per_window != 1).sum()),
            "max_grad_off_plan": int((g_max.reshape(-1) != routed).sum()),
            "fraction_minus_1_over_k2": abs(fractions[k] - 1 / k**2),
            "avg_grad_relative_error": float(((g_avg.reshape(-1) - spread).abs() / spread.abs()).max()),
        }
    avg_tol = 2 * torch.finfo(torch.float64).eps  # up/k^2 versus up*(1/k^2): one rounding each side
    bad = {k: e for k, e in errors.items() if e["windows_without_exactly_one"] or e["max_grad_off_plan"]
           or e["fraction_minus_1_over_k2"] > 0 or e["avg_grad_relative_error"] > avg_tol}
    return make_result("pooling_gradient_routing", passed=not bad, seed=seed, profile=profile,
                       n=images * 2 * 16 * len(errors),
                       test="exact counts; avg gradient within 2 ulp (relative)", predicted=0.25,
                       measured=fractions[2], margin="exact for continuous inputs (no ties a.s.)",
                       details={"per_k": errors, "fraction_nonzero": fractions,
                                "no_figure": "exact counts: the share of inputs with a gradient equals 1/k^2 "
                                "and every gradient sits where the plan routes, or the check fails"})
