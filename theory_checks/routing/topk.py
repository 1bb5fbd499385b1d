"""Routing checks of docs/THEORY.md §C for token-choice top-k and expert-choice routers.

"Uniformly random routing" here always means: iid continuous logits fed to ``plan_from_logits``. For iid
continuous logits the top-k set of each token is a uniformly random k-subset of the experts, independently
across tokens (exchangeability; ties have probability 0), so one expert's load is Binomial(T, k/E).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sparse_bench.routing import ExpertChoiceRouter, TopKRouter
from theory_checks.framework import (ALPHA, by_profile, figure_spec, make_result, one_sample_t,
                                     register_check, result_from_cells, series)

from . import cases
from . import controls as broken
from .common import AREA, F64_EPS, GATE_DIM, SOURCE, generator
from .predictions import (
    capacity_for,
    expected_dropped,
    expert_drop_pmf,
    iid_sum_p_value,
    max_load_goodness_of_fit,
)

def _topk(num_experts, k, capacity_factor=None):
    return TopKRouter(GATE_DIM, num_experts, k=k, capacity_factor=capacity_factor)


# --------------------------------------------------------------------------------------------------------
def _balanced_logits(gen, T, E, k):
    """(T, E) float64 logits whose top-k sets are {(t*k + j) mod E}: every expert gets exactly T*k/E."""
    logits = torch.rand(T, E, generator=gen, dtype=torch.float64)  # in [0, 1)
    chosen = (torch.arange(T).unsqueeze(1) * k + torch.arange(k)) % E  # (T, k) distinct experts per token
    logits.scatter_add_(1, chosen, torch.full((T, k), 2.0, dtype=torch.float64))  # chosen in [2, 3)
    return logits[:, torch.randperm(E, generator=gen)]  # relabel experts


def _collapsed_logits(gen, T, E, k, margin):
    """(T, E) float64 logits: the same k experts win every token by at least ``margin - 1``."""
    logits = torch.rand(T, E, generator=gen, dtype=torch.float64)
    logits[:, torch.randperm(E, generator=gen)[:k]] += margin
    return logits


@register_check(
    name="switch_loss_balanced_and_collapsed", source=SOURCE, area=AREA,
    prediction="Switch loss E*sum_i f_i P_i = 1 for balanced top-k plans, and E/k when every token picks the "
    "same k experts (E for top-1 collapse)", unit="relative error",
    controls={"loss_missing_factor_E": lambda: {
        "make_router": lambda E, k: broken.MissingFactorLossTopK(GATE_DIM, E, k=k)}},
)
def check_switch_loss_balanced_and_collapsed(seed: int, profile: str = "quick", make_router=_topk):
    """Exact identities. Balanced: f_i = 1/E for all i, so E*sum f_i P_i = sum P_i = 1 whatever P is.
    Collapse onto a set S of k experts: f_i = 1/k on S, so the loss is (E/k) * P(S) with
    1 - P(S) <= (E - k) e^{-(margin - 1)}. Tolerance: that bound plus float64 rounding of the T-term mean
    and E-term sum, 4 (T + E) eps relative (factor 4: slack for the softmax's own rounding)."""
    gen = generator(seed)
    quick, full = cases.SWITCH_LOSS_RANDOM_DRAWS
    draws = by_profile(profile, quick=quick, full=full)
    margin = cases.SWITCH_LOSS_COLLAPSE_MARGIN
    rows = []
    for T, E, k in cases.SWITCH_LOSS_CASES:
        router = make_router(E, k)
        tol_round = 4 * (T + E) * F64_EPS
        for kind, predicted, tol in (
            ("balanced", 1.0, tol_round),
            ("collapsed", E / k, tol_round + (E - k) * math.exp(-(margin - 1.0))),
        ):
            worst = 0.0
            for _ in range(draws):
                if kind == "balanced":
                    logits = _balanced_logits(gen, T, E, k)
                else:
                    logits = _collapsed_logits(gen, T, E, k, margin)
                loss = float(router.plan_from_logits(logits).aux["load_balancing_loss"])
                worst = max(worst, abs(loss - predicted) / predicted)
            rows.append({"T": T, "E": E, "k": k, "plan": kind, "predicted": predicted, "max_rel_dev": worst,
                         "tol": tol, "ratio": worst / tol})
    head = max(rows, key=lambda r: r["ratio"])
    return make_result(
        "switch_loss_balanced_and_collapsed", passed=all(r["ratio"] <= 1.0 for r in rows), seed=seed,
        profile=profile, n=draws * len(rows), test="exact identity within a float64 rounding bound",
        predicted=0.0, measured=head["max_rel_dev"], ci=(0.0, head["tol"]),
        margin="|loss - prediction| / prediction <= 4 (T + E) eps (+ (E - k) e^-(margin-1) for collapse)",
        params={"cases": cases.SWITCH_LOSS_CASES, "draws": draws, "collapse_margin": margin},
        details={"cells": rows, "no_figure": "exact identities: every cell's relative deviation lies within "
                 "its float64 rounding bound or the check fails (cells in the details)"},
    )


# --------------------------------------------------------------------------------------------------------
@register_check(
    name="switch_loss_random_expectation", source=SOURCE, area=AREA,
    prediction="for iid logits, E[Switch loss] = 1 + (E m_k / k - 1) / T, with m_k = E[top-k softmax mass of "
    "one token]", unit="loss",
    controls={"loss_squared_fractions": lambda: {
        "make_router": lambda E, k: broken.SquaredFractionLossTopK(GATE_DIM, E, k=k)}},
)
def check_switch_loss_random_expectation(seed: int, profile: str = "quick", make_router=_topk):
    """Derivation: by exchangeability E[f_i P_i] is the same for all i, so E[loss] = E^2 E[f_1 P_1] with
    f_1 = (1/Tk) sum_t 1[1 in top_k(t)], P_1 = (1/T) sum_s p_s1. Pairs t != s are independent and give
    (k/E)(1/E); t = s gives m_k / E. Hence E[loss] = (T-1)/T + E m_k / (T k). With m̂_b the batch's mean
    top-k mass, D_b = loss_b - 1 - (E m̂_b / k - 1) / T has expectation exactly 0: one-sample t test on D
    per k, Holm over the k values. Logits iid Uniform[0, SPAN)."""
    gen = generator(seed)
    T, E = cases.SWITCH_LOSS_EXPECTATION_TOKENS, cases.ROUTING_EXPERTS
    batches = by_profile(profile, quick=cases.SWITCH_LOSS_EXPECTATION_BATCHES[0],
                         full=cases.SWITCH_LOSS_EXPECTATION_BATCHES[1])
    rows = []
    for k in cases.SWITCH_LOSS_EXPECTATION_KS:
        router = make_router(E, k)
        logits = torch.rand(batches, T, E, generator=gen, dtype=torch.float64) * cases.SWITCH_LOSS_LOGIT_SPAN
        mass = torch.softmax(logits, -1).topk(k, dim=-1).values.sum(-1).mean(-1).numpy()  # (batches,) m̂_b
        loss = np.array([float(router.plan_from_logits(b).aux["load_balancing_loss"]) for b in logits])
        mean_d, lo, hi, p = one_sample_t(loss - 1.0 - (E * mass / k - 1.0) / T, 0.0)
        predicted = 1.0 + (E * mass.mean() / k - 1.0) / T
        rows.append({"k": k, "predicted": predicted, "measured": loss.mean(), "m_k": mass.mean(),
                     "mean_diff": mean_d, "ci": [predicted + lo, predicted + hi], "p_value": p})
    return result_from_cells(
        "switch_loss_random_expectation", rows, seed=seed, profile=profile, n=batches * len(rows),
        test=f"one-sample t on paired differences, Holm over {len(rows)} values of k",
        params={"T": T, "E": E, "batches": batches,
                "logits": f"iid Uniform[0, {cases.SWITCH_LOSS_LOGIT_SPAN})"},
        details={"figure": figure_spec(
            f"Switch loss of iid logits against its expectation (T={T}, E={E}, {batches} batches)",
            "k (experts per token)", "mean Switch loss",
            series("measured mean (t interval, 1 - ALPHA)", [r["k"] for r in rows],
                   [r["measured"] for r in rows], [r["ci"][0] for r in rows], [r["ci"][1] for r in rows]),
            series("1 + (E m_k / k - 1) / T", [r["k"] for r in rows], [r["predicted"] for r in rows],
                   style="predicted"))},
    )


# --------------------------------------------------------------------------------------------------------
@register_check(
    name="capacity_drops_uniform_random", source=SOURCE, area=AREA,
    prediction="dropped fraction = E * E[(Binomial(T, k/E) - C)_+] / (T k) with C = ceil(cf T k / E), for "
    "top-1 and top-2 over a grid of capacity factors; no expert keeps more than C",
    unit="fraction dropped",
    controls={
        "ignores_capacity": lambda: {"make_router": lambda E, k, cf: broken.CapacityIgnoringTopK(
            GATE_DIM, E, k=k, capacity_factor=cf)},
        "capacity_plus_one": lambda: {"make_router": lambda E, k, cf: broken.CapacityPlusOneTopK(
            GATE_DIM, E, k=k, capacity_factor=cf)},
        "capacity_minus_one": lambda: {"make_router": lambda E, k, cf: broken.CapacityMinusOneTopK(
            GATE_DIM, E, k=k, capacity_factor=cf)},
    },
)
def check_capacity_drops_uniform_random(seed: int, profile: str = "quick", make_router=_topk):
    """iid N(0,1) logits -> each expert's pre-drop load L is exactly Binomial(T, k/E) (the k=1 case is
    docs/THEORY.md's formula) and it drops (L - C)_+, so E[dropped] is exact by linearity
    (``expected_dropped``).
    Per cell, batch b contributes the drops of expert b mod E (pre-drop load from the logits' own top-k, minus
    what the plan keeps): iid draws of (Binomial(T, k/E) - C)_+, whose sum gets an exact test against its
    B-fold convolution (``iid_sum_p_value``; a t test on all experts' drops, which are heavily skewed where
    drops are rare, rejected a correct router ~5x more often than its level); Holm over the cells. The
    capacity contract (every expert_count <= C) is checked exactly on every batch."""
    gen = generator(seed)
    T, E = cases.ROUTING_TOKENS, cases.ROUTING_EXPERTS
    batches = by_profile(profile, quick=cases.DROP_BATCHES[0], full=cases.DROP_BATCHES[1])
    rows, within_capacity = [], True
    for k in cases.DROP_KS:
        for cf in cases.DROP_CAPACITY_FACTORS:
            router = make_router(E, k, cf)
            capacity = capacity_for(cf, T, E, k)
            predicted = expected_dropped(T, E, k, capacity)
            dropped, expert_drops = np.empty(batches), np.empty(batches, dtype=np.int64)
            for b in range(batches):
                logits = torch.randn(T, E, generator=gen, dtype=torch.float64)
                plan = router.plan_from_logits(logits)
                dropped[b] = plan.dropped
                within_capacity &= int(plan.expert_counts.max()) <= capacity
                expert = b % E
                load = int((logits.topk(k, dim=1).indices == expert).sum())  # before any drop
                expert_drops[b] = load - int(plan.expert_counts[expert])
            p = iid_sum_p_value(expert_drop_pmf(T, E, k, capacity), batches, int(expert_drops.sum()))
            lo, hi = one_sample_t(dropped, predicted)[1:3] if np.ptp(dropped) else (dropped[0], dropped[0])
            assignments = T * k
            # predicted, measured and ci: fractions of the T k assignments
            rows.append({"k": k, "capacity_factor": cf, "capacity": capacity,
                         "predicted": predicted / assignments, "measured": dropped.mean() / assignments,
                         "ci": [lo / assignments, hi / assignments],
                         "tested_expert_drops": int(expert_drops.sum()),
                         "predicted_expert_drops": batches * predicted / E, "p_value": p})
    return result_from_cells(
        "capacity_drops_uniform_random", rows, passed=within_capacity, seed=seed, profile=profile,
        n=batches * len(rows),
        test=f"exact test per cell of one expert's drops per batch summed over batches (iid "
             f"(Binomial(T, k/E) - C)_+), Holm over {len(rows)} cells; capacity checked exactly; interval: t on "
             f"all drops (shown only)",
        margin=None if within_capacity else "an expert kept more than C",
        params={"T": T, "E": E, "batches_per_cell": batches, "logits": "iid N(0,1)"},
        details={"within_capacity": within_capacity, "figure": _drops_figure(rows)},
    )


def _drops_figure(rows: list[dict]) -> dict:
    """Dropped fraction vs capacity factor: measured (CI) against the exact binomial expectation, per k."""
    curves = []
    for k in sorted({r["k"] for r in rows}):
        cells = [r for r in rows if r["k"] == k]
        x = [r["capacity_factor"] for r in cells]
        curves.append(series(f"top-{k} measured", x, [r["measured"] for r in cells],
                             [r["ci"][0] for r in cells], [r["ci"][1] for r in cells], group=f"k{k}"))
        curves.append(series(f"top-{k} E[(Binomial - C)+] formula", x, [r["predicted"] for r in cells],
                             style="predicted", group=f"k{k}"))
    return figure_spec("token drops under capacity, uniformly random routing", "capacity factor",
                       "dropped fraction of assignments", *curves)


# --------------------------------------------------------------------------------------------------------
@register_check(
    name="max_load_uniform_random", source=SOURCE, area=AREA,
    prediction="the max expert load of uniformly random top-1 routing follows the exact distribution of the "
    "maximum of a Multinomial(T; 1/E, ..., 1/E) (computed by Poisson conditioning, not simulated)",
    unit="tokens",
    controls={"quantized_ties_to_first": lambda: {
        "make_router": lambda E: broken.QuantizedTieToFirstTopK(GATE_DIM, E, k=1)}},
)
def check_max_load_uniform_random(seed: int, profile: str = "quick", make_router=lambda E: _topk(E, 1)):
    """Chi-square goodness of fit of the per-batch maximum loads (dropless top-1, iid N(0,1) logits) to
    ``multinomial_max_pmf`` (tail cells pooled to expected >= 5)."""
    gen = generator(seed)
    T, E = cases.ROUTING_TOKENS, cases.ROUTING_EXPERTS
    batches = by_profile(profile, quick=cases.MAX_LOAD_BATCHES[0], full=cases.MAX_LOAD_BATCHES[1])
    router = make_router(E)
    maxima = np.empty(batches, dtype=np.int64)
    for b in range(batches):
        plan = router.plan_from_logits(torch.randn(T, E, generator=gen, dtype=torch.float64))
        maxima[b] = int(plan.expert_counts.max())
    fit = max_load_goodness_of_fit(maxima, T, E)
    half = 3.29 * maxima.std(ddof=1) / math.sqrt(batches)  # normal 1 - ALPHA interval of the mean
    return make_result(
        "max_load_uniform_random", passed=fit["p_value"] > ALPHA, seed=seed, profile=profile, n=batches,
        test=f"chi-square goodness of fit, {fit['cells']} pooled cells", predicted=fit["exact_mean"],
        measured=maxima.mean(), ci=(maxima.mean() - half, maxima.mean() + half), p_value=fit["p_value"],
        params={"T": T, "E": E, "batches": batches, "logits": "iid N(0,1)"},
        details={"figure": figure_spec(
                     f"max expert load, uniformly random top-1 (T={T}, E={E}, {batches} batches)",
                     "max load (tokens)", "batches",
                     series("observed", fit["values"], fit["observed"], style="bar"),
                     series("exact multinomial max x batches", fit["values"], [batches * p for p in fit["pmf"]],
                            style="predicted")),
                 "values": fit["values"], "exact_pmf": fit["pmf"], "observed": fit["observed"],
                 "chi2": fit["chi2"], "concentration_point": T / E + math.sqrt(2 * T / E * math.log(E))},
    )


# --------------------------------------------------------------------------------------------------------
def _expert_choice(num_experts, capacity_factor):
    return ExpertChoiceRouter(GATE_DIM, num_experts, capacity_factor=capacity_factor)


def _expert_choice_violations(plan, logits: torch.Tensor, capacity: int) -> list[str]:
    """Contract violations of one expert-choice plan, judged against a float64 numpy softmax."""
    T, E = logits.shape
    if not bool((plan.expert_counts == capacity).all()):
        return [f"T={T} E={E}: counts {plan.expert_counts.tolist()} != C={capacity}"]
    x = logits.numpy()
    probs = np.exp(x - x.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    offsets = plan.expert_offsets.tolist()
    problems = []
    for e in range(E):
        tokens = plan.token_index[offsets[e]:offsets[e + 1]].numpy()
        kept = np.zeros(T, dtype=bool)
        kept[tokens] = True
        if kept.sum() != capacity:
            problems.append(f"T={T} E={E}: expert {e} repeats a token")
        elif (~kept).any() and probs[kept, e].min() < probs[~kept, e].max():
            problems.append(f"T={T} E={E}: expert {e} kept a token below an unkept one")
    return problems


@register_check(
    name="expert_choice_exact_capacity", source=SOURCE, area=AREA,
    prediction="expert choice gives every expert exactly C = min(ceil(cf T / E), T) distinct tokens, its C "
    "highest-probability ones; experts per token has mean c = C E / T", unit="experts per token",
    controls={
        "capacity_plus_one": lambda: {"make_router": lambda E, cf: broken.CapacityPlusOneExpertChoice(
            GATE_DIM, E, capacity_factor=cf)},
        "ranks_by_raw_logits": lambda: {"make_router": lambda E, cf: broken.RawLogitExpertChoice(
            GATE_DIM, E, capacity_factor=cf)},
    },
)
def check_expert_choice_exact_capacity(seed: int, profile: str = "quick", make_router=_expert_choice):
    """Exact identities on random N(0, 4) logit matrices: counts == C; an expert's tokens are distinct; each
    expert's smallest kept probability >= its largest unkept one; total assignments == E C (so the mean
    number of experts per token is C E / T exactly). The histogram of experts per token goes to details."""
    gen = generator(seed)
    draws = by_profile(profile, quick=cases.EXPERT_CHOICE_DRAWS[0], full=cases.EXPERT_CHOICE_DRAWS[1])
    failures, rows = [], []
    for T, E, cf in cases.EXPERT_CHOICE_CASES:
        router = make_router(E, cf)
        capacity = min(math.ceil(cf * T / E), T)
        histogram = np.zeros(E + 1)
        for _ in range(draws):
            logits = 2.0 * torch.randn(T, E, generator=gen, dtype=torch.float64)
            plan = router.plan_from_logits(logits)
            failures += _expert_choice_violations(plan, logits, capacity)
            histogram += np.bincount(plan.token_counts().numpy(), minlength=E + 1)[: E + 1]
        measured = float((np.arange(E + 1) * histogram).sum() / histogram.sum())
        if measured != capacity * E / T:
            failures.append(f"T={T} E={E}: mean experts per token {measured} != C E / T = {capacity * E / T}")
        rows.append({"T": T, "E": E, "capacity_factor": cf, "C": capacity, "predicted_mean": capacity * E / T,
                     "measured_mean": measured, "experts_per_token_histogram": histogram / histogram.sum()})
    return make_result(
        "expert_choice_exact_capacity", passed=not failures, seed=seed, profile=profile,
        n=draws * len(cases.EXPERT_CHOICE_CASES), test="exact identities on random logit matrices",
        predicted=rows[0]["predicted_mean"], measured=rows[0]["measured_mean"],
        margin="exact (integer counts)",
        params={"cases": cases.EXPERT_CHOICE_CASES, "draws": draws, "logits": "iid N(0, 4)"},
        details={"cells": rows, "failures": failures[:20],
                 "no_figure": "exact identities on integer counts: every expert holds exactly C tokens and "
                 "the mean experts per token is C E / T, or the check fails"},
    )
