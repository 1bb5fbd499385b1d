"""Routing checks of docs/THEORY.md §C for balancing routers: Sinkhorn, random and balanced hash, LSH."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from sparse_bench.routing import HashRouter, LSHRouter, SinkhornRouter, TopKRouter
from theory_checks.framework import (ALPHA, binomial_test, by_profile, chisquare_gof, clopper_pearson,
                                     figure_spec, holm, holm_adjusted, make_result, register_check,
                                     result_from_cells, series, sign_test_less)
from theory_checks.paper.common import pair_at_angle  # one definition of 'a random pair at angle theta'

from . import cases
from . import controls as broken
from .common import AREA, F64_EPS, GATE_DIM, SOURCE, generator
from .predictions import max_load_goodness_of_fit, simhash_bucket_collision


def _sinkhorn(num_experts, temperature, iterations=cases.SINKHORN_ITERATIONS):
    tol = cases.SINKHORN_TOL
    return SinkhornRouter(GATE_DIM, num_experts, iterations=iterations, tol=tol, temperature=temperature)


def _rows_only_sinkhorn(num_experts, temperature):
    iterations, tol = cases.SINKHORN_ITERATIONS, cases.SINKHORN_TOL
    return broken.RowsOnlySinkhorn(
        GATE_DIM, num_experts, iterations=iterations, tol=tol, temperature=temperature
    )


# --------------------------------------------------------------------------------------------------------
@register_check(
    name="sinkhorn_marginals", source=SOURCE, area=AREA,
    prediction="the scaled matrix P = diag(u) exp(X / temperature) diag(v) has row sums 1/T (to the router's "
    "tol) and column sums 1/E (to float64 rounding)",
    unit="× row tolerance",
    controls={
        "one_iteration": lambda: {"make_router": lambda E, tau: _sinkhorn(E, tau, iterations=1)},
        "rows_only": lambda: {"make_router": _rows_only_sinkhorn},
    },
)
def check_sinkhorn_marginals(seed: int, profile: str = "quick", make_router=_sinkhorn):
    """Measured here in float64 from the returned matrix, not from the router's own error figure.
    Bounds: rows |T rowsum - 1| <= tol (the stopping rule, reached within the iteration budget); columns
    |E colsum - 1| <= 4 T eps (summing T positive terms after the last column step); scaling structure:
    log P - X / tau must be a_t + b_e, so its double-centred residual <= 4 (iterations + 1) eps max|log P|
    (each log-domain update adds at most eps |log P| of rounding)."""
    gen = generator(seed)
    draws = by_profile(profile, quick=cases.SINKHORN_DRAWS[0], full=cases.SINKHORN_DRAWS[1])
    rows, ok, worst = [], True, 0.0
    for T, E in cases.SINKHORN_CASES:
        for tau in cases.SINKHORN_MARGINAL_TEMPERATURES:
            router = make_router(E, tau)
            row_err = col_err = structure = 0.0
            for _ in range(draws):
                logits = torch.randn(T, E, generator=gen, dtype=torch.float64)
                P, used, _ = router.transport(logits)
                P = P.to(torch.float64)
                row_err = max(row_err, float((P.sum(1) * T - 1).abs().max()))
                col_err = max(col_err, float((P.sum(0) * E - 1).abs().max()))
                log_p = P.log()
                resid = log_p - logits / tau
                resid = resid - resid.mean(1, keepdim=True) - resid.mean(0, keepdim=True) + resid.mean()
                s_tol = 4 * (used + 1) * F64_EPS * float(log_p.abs().max())
                structure = max(structure, float(resid.abs().max()) / s_tol)
            c_tol = 4 * T * F64_EPS
            cell_ok = row_err <= cases.SINKHORN_TOL and col_err <= c_tol and structure <= 1.0
            ok &= cell_ok
            worst = max(worst, row_err / cases.SINKHORN_TOL)
            rows.append({"T": T, "E": E, "temperature": tau, "row_error": row_err,
                         "row_tol": cases.SINKHORN_TOL, "column_error": col_err, "column_tol": c_tol,
                         "structure_residual_over_bound": structure, "ok": cell_ok})
    return make_result(
        "sinkhorn_marginals", passed=ok, seed=seed, profile=profile,
        n=draws * len(rows), test="marginal errors and scaling structure within stated bounds",
        predicted=0.0, measured=worst, ci=(0.0, 1.0),
        margin="row error / tol (<= 1 passes); column error <= 4 T eps; structure residual within its bound",
        params={"cases": cases.SINKHORN_CASES, "temperatures": cases.SINKHORN_MARGINAL_TEMPERATURES,
                "tol": cases.SINKHORN_TOL, "iterations": cases.SINKHORN_ITERATIONS, "draws": draws},
        details={"cells": rows, "figure": _marginals_figure(rows)},
    )


def _marginals_figure(rows: list[dict]) -> dict:
    """Each cell's row and column marginal errors over their bounds (1 = the bound), log scale."""
    cells = [f"T={r['T']} E={r['E']} τ={r['temperature']}" for r in rows]
    return figure_spec(
        "Sinkhorn marginal errors over their bounds, per (T, E, temperature)", "cell",
        "max error / bound (log scale)",
        series("rows: |T rowsum - 1| / tol", cells, [r["row_error"] / r["row_tol"] for r in rows]),
        series("columns: |E colsum - 1| / 4 T eps", cells,
               [r["column_error"] / r["column_tol"] for r in rows]),
        series("bound (pass iff every point is below)", cells, [1.0] * len(rows), style="predicted"),
        log_y=True)


# --------------------------------------------------------------------------------------------------------
@register_check(
    name="sinkhorn_max_load", source=SOURCE, area=AREA,
    prediction="on the same skewed logits, Sinkhorn top-1's max load is below greedy top-1's, and falls "
    "toward T k / E as the temperature falls (1 -> 0.3 -> 0.1)",
    unit="tokens",
    controls={
        "rows_only": lambda: {"make_router": _rows_only_sinkhorn},
        "one_iteration": lambda: {"make_router": lambda E, tau: _sinkhorn(E, tau, iterations=1)},
    },
)
def check_sinkhorn_max_load(seed: int, profile: str = "quick", make_router=_sinkhorn):
    """Two one-sided exact sign tests on paired batches (ties dropped), both required, Holm over the two:
    (a) Sinkhorn(temperature 1) max load < greedy top-1 max load; (b) Sinkhorn at the lowest temperature <
    Sinkhorn at temperature 1. Logits N(0, 1) plus a per-batch expert bias N(0, 0.5^2)."""
    gen = generator(seed)
    T, E, k = cases.ROUTING_TOKENS, cases.ROUTING_EXPERTS, 1
    batches = by_profile(profile, quick=cases.SINKHORN_LOAD_BATCHES[0], full=cases.SINKHORN_LOAD_BATCHES[1])
    temps = cases.SINKHORN_LOAD_TEMPERATURES
    greedy = TopKRouter(GATE_DIM, E, k=1)
    routers = [make_router(E, tau) for tau in temps]
    loads = np.zeros((len(temps) + 1, batches))  # row 0: greedy
    for b in range(batches):
        bias = cases.SINKHORN_EXPERT_BIAS_SD * torch.randn(1, E, generator=gen, dtype=torch.float64)
        logits = torch.randn(T, E, generator=gen, dtype=torch.float64) + bias
        loads[0, b] = int(greedy.plan_from_logits(logits).expert_counts.max())
        for i, router in enumerate(routers):
            loads[i + 1, b] = int(router.plan_from_logits(logits).expert_counts.max())
    p_greedy, w1, n1 = sign_test_less(loads[1], loads[0])
    p_trend, w2, n2 = sign_test_less(loads[-1], loads[1])
    accepted = holm([p_greedy, p_trend], ALPHA)  # here a rejection is the predicted outcome
    balanced = T * k / E
    return make_result(
        "sinkhorn_max_load", passed=all(accepted), seed=seed, profile=profile, n=batches,
        test="two one-sided exact sign tests on paired batches, Holm over 2 (both must reject)",
        predicted=balanced, measured=float(loads[-1].mean()), p_value=max(holm_adjusted([p_greedy, p_trend])),
        margin="prediction is a direction (lower), not a value; T k / E is the limit",
        params={"T": T, "E": E, "k": k, "batches": batches, "temperatures": temps, "tol": cases.SINKHORN_TOL},
        details={"figure": figure_spec(
                     f"max expert load on skewed logits (T={T}, E={E}, top-{k}, {batches} batches)",
                     "router", "mean max load (tokens)",
                     series("measured mean", ["greedy"] + [f"sinkhorn τ={t}" for t in temps],
                            [float(row.mean()) for row in loads], style="bar"),
                     series("balanced limit T k / E", ["greedy"] + [f"sinkhorn τ={t}" for t in temps],
                            [balanced] * (1 + len(temps)), style="predicted")),
                 "mean_max_load": {"greedy": loads[0].mean(),
                                   **{f"sinkhorn_{t}": loads[i + 1].mean() for i, t in enumerate(temps)}},
                 "sign_test_vs_greedy": {"wins": w1, "pairs": n1, "p": p_greedy},
                 "sign_test_trend": {"wins": w2, "pairs": n2, "p": p_trend}},
    )


# --------------------------------------------------------------------------------------------------------
def _hash_router(num_experts, seed):
    return HashRouter(num_experts, seed=seed)


@register_check(
    name="hash_loads_multinomial", source=SOURCE, area=AREA,
    prediction="with a random hash table, T distinct random token ids give Multinomial(T; 1/E) expert loads: "
    "one expert's load ~ Binomial(T, 1/E) and the max load follows the exact multinomial maximum",
    unit="tokens",
    controls={
        "modulo_biased_table": lambda: {"make_router": lambda E, s: broken.ModuloBiasedHashRouter(E, seed=s)},
        "skips_last_expert": lambda: {
            "make_router": lambda E, s: broken.SkipsLastExpertHashRouter(E, seed=s)},
    },
)
def check_hash_loads_multinomial(seed: int, profile: str = "quick", make_router=_hash_router):
    """Each trial draws a fresh table (hash seed) and T distinct ids uniformly from a vocabulary. Chi-square
    goodness of fit of expert 0's load to Binomial(T, 1/E) and of the max load to the exact pmf
    (``multinomial_max_pmf``); Holm over the two. Ids are random, not contiguous: a 2-universal hash is not a
    fully random table on arithmetic progressions of keys (contiguous ids come out more balanced than
    multinomial), so the claim is about random keys."""
    gen = generator(seed)
    T, E = cases.ROUTING_TOKENS, cases.ROUTING_EXPERTS
    tables = by_profile(profile, quick=cases.HASH_TABLES[0], full=cases.HASH_TABLES[1])
    x = torch.zeros(T, 1)
    first, maxima = np.empty(tables, dtype=int), np.empty(tables, dtype=int)
    for i in range(tables):
        ids = torch.randperm(cases.HASH_VOCAB, generator=gen)[:T]
        router = make_router(E, int(torch.randint(0, 2**62, (1,), generator=gen)))
        counts = router(x, token_ids=ids).expert_counts
        first[i], maxima[i] = int(counts[0]), int(counts.max())
    binomial = stats.binom.pmf(np.arange(T + 1), T, 1.0 / E)
    _, p_first, cells_first = chisquare_gof(np.bincount(first, minlength=T + 1), binomial)
    fit = max_load_goodness_of_fit(maxima, T, E)
    p_max = fit["p_value"]
    reject = holm([p_first, p_max], ALPHA)
    return make_result(
        "hash_loads_multinomial", passed=not any(reject), seed=seed, profile=profile, n=tables,
        test=f"chi-square goodness of fit ({cells_first} and {fit['cells']} pooled cells), Holm over 2",
        predicted=fit["exact_mean"], measured=float(maxima.mean()),
        p_value=min(holm_adjusted([p_first, p_max])),
        params={"T": T, "E": E, "tables": tables, "vocab": cases.HASH_VOCAB},
        details={"p_expert0_binomial": p_first, "p_max_load": p_max, "mean_expert0_load": first.mean(),
                 "figure": figure_spec(
                     f"max expert load of random hash tables (T={T} random ids, E={E}, {tables} tables)",
                     "max load (tokens)", "tables",
                     series("observed", fit["values"], fit["observed"], style="bar"),
                     series("exact multinomial max x tables", fit["values"], [tables * p for p in fit["pmf"]],
                            style="predicted"))},
    )


# --------------------------------------------------------------------------------------------------------
def zipf_frequencies(vocab: int, exponent: float) -> torch.Tensor:
    """(vocab,) float64 Zipf probabilities, id r has mass proportional to (r + 1)^-exponent."""
    mass = torch.arange(1, vocab + 1, dtype=torch.float64) ** -exponent
    return mass / mass.sum()


def _balanced_router(num_experts, seed, token_frequencies):
    return HashRouter(num_experts, balanced=True, seed=seed, token_frequencies=token_frequencies)


@register_check(
    name="hash_balanced_table_zipf", source=SOURCE, area=AREA,
    prediction="on Zipf-distributed tokens, a balanced hash table (built from the token frequencies) gives a "
    "lower max expert load than a random table with the same seed",
    unit="probability",
    controls={"misaligned_frequencies": lambda: {"make_balanced": broken.misaligned_balanced_router}},
)
def check_hash_balanced_table_zipf(seed: int, profile: str = "quick", make_balanced=_balanced_router):
    """Paired batches: each draws T tokens from Zipf(vocab, exponent) and a table seed; one-sided exact sign
    test (ties dropped) that the balanced max load is lower. The frequencies given to the table are the true
    Zipf probabilities (a large training corpus)."""
    gen = generator(seed)
    T, E = cases.ROUTING_TOKENS, cases.ROUTING_EXPERTS
    batches = by_profile(profile, quick=cases.ZIPF_BATCHES[0], full=cases.ZIPF_BATCHES[1])
    freq = zipf_frequencies(cases.ZIPF_VOCAB, cases.ZIPF_EXPONENT)
    x = torch.zeros(T, 1)
    random_max, balanced_max = np.empty(batches), np.empty(batches)
    for b in range(batches):
        ids = torch.multinomial(freq, T, replacement=True, generator=gen)
        table_seed = int(torch.randint(0, 2**31, (1,), generator=gen))
        random_max[b] = int(HashRouter(E, seed=table_seed)(x, token_ids=ids).expert_counts.max())
        balanced_max[b] = int(make_balanced(E, table_seed, freq)(x, token_ids=ids).expert_counts.max())
    p, wins, pairs = sign_test_less(balanced_max, random_max)
    lo, hi = clopper_pearson(wins, pairs) if pairs else (0.0, 1.0)
    return make_result(
        "hash_balanced_table_zipf", passed=p <= ALPHA, seed=seed, profile=profile, n=batches,
        test="one-sided exact sign test on paired batches (ties dropped)", predicted=0.5,
        measured=wins / pairs if pairs else 0.0, ci=(lo, hi), p_value=p,
        margin="prediction: P(balanced max < random max) > 1/2 among non-tied pairs",
        params={"T": T, "E": E, "batches": batches, "vocab": cases.ZIPF_VOCAB,
                "exponent": cases.ZIPF_EXPONENT},
        details={"figure": figure_spec(
                     f"hash routing on Zipf token ids (T={T}, E={E}, {batches} batches)", "hash table",
                     "mean max load (tokens)",
                     series("measured mean", ["random table", "balanced table"],
                            [float(random_max.mean()), float(balanced_max.mean())], style="bar"),
                     series("perfect balance T / E", ["random table", "balanced table"], [T / E, T / E],
                            style="predicted")),
                 "mean_max_random": random_max.mean(), "mean_max_balanced": balanced_max.mean(),
                 "balanced_limit": T / E},
    )


# --------------------------------------------------------------------------------------------------------
def _simhash_router(d_model, num_experts, seed):
    return LSHRouter(d_model, num_experts, family="simhash", seed=seed)


@register_check(
    name="lsh_routing_angle_collision", source=SOURCE, area=AREA,
    prediction="two tokens at angle theta share an expert of a SimHash LSHRouter (E = 2^m experts, m bits) "
    "with probability (1 - theta/pi)^m: close tokens share more than far ones",
    unit="probability",
    controls={
        "repeated_hyperplane": lambda: {"make_router": broken.repeated_hyperplane_lsh},
        "locality_free_input_hash": lambda: {"make_router": broken.input_hash_lsh},
    },
)
def check_lsh_routing_angle_collision(seed: int, profile: str = "quick", make_router=_simhash_router):
    """Each pair gets a freshly drawn router (new seed), so the m hyperplanes are iid Gaussian for that pair
    and the law is exact. Exact binomial test per angle, Holm over the angles. (The hash-level SimHash laws of
    sparse_bench.hashing belong to the paper checks; this one goes through LSHRouter and its RoutingPlan.)"""
    gen = generator(seed)
    d, E = cases.LSH_D_MODEL, cases.ROUTING_EXPERTS
    bits = int(math.log2(E))
    pairs = by_profile(profile, quick=cases.LSH_PAIRS[0], full=cases.LSH_PAIRS[1])
    rows = []
    for theta in cases.LSH_ANGLES:
        same = 0
        for _ in range(pairs):
            router = make_router(d, E, int(torch.randint(0, 2**31, (1,), generator=gen)))
            plan = router(pair_at_angle(d, theta, gen))
            expert_of_token = plan.expert_index[torch.argsort(plan.token_index)]
            same += int(expert_of_token[0] == expert_of_token[1])
        predicted = simhash_bucket_collision(theta, bits)
        rows.append({"theta": theta, "predicted": predicted, "measured": same / pairs,
                     "ci": clopper_pearson(same, pairs), "p_value": binomial_test(same, pairs, predicted)})
    return result_from_cells(
        "lsh_routing_angle_collision", rows, seed=seed, profile=profile, n=pairs * len(rows),
        test=f"exact binomial per angle, Holm over {len(rows)} angles",
        params={"d_model": d, "E": E, "bits": bits, "pairs_per_angle": pairs, "angles": cases.LSH_ANGLES},
        details={"figure": figure_spec(
            f"LSH routing: P[two tokens share an expert] vs angle (E={E}, {bits} SimHash bits)",
            "angle between the tokens (radians)", "P[same expert]",
            series("measured", [r["theta"] for r in rows], [r["measured"] for r in rows],
                   [r["ci"][0] for r in rows], [r["ci"][1] for r in rows]),
            series("(1 - θ/π)^m", [r["theta"] for r in rows], [r["predicted"] for r in rows],
                   style="predicted"))},
    )
