"""docs/THEORY.md §A, §D (the paper's §3): a Switch top-1 MoE block, a hash layer, the LSH model are DSMs.

Each check builds a routed model, restates it as a DSM with ``sparse_bench.dsm.routed`` (every unit's phi
computed densely, the mask taken from the model's routing, one readout product: no dispatch code shared with
the model) and compares the two on random inputs in float64:

- ``paper_switch_is_dsm``: ``MoELayer`` with a Switch router (``TopKRouter`` k = 1, the raw probability as
  the combine weight, dropless) and ReLU experts with biases; DSM: t = E (h + 1) units, the routed expert's
  block of h + 1 active (h hidden units and a constant unit for its output bias), phi = gate * activation.
- ``paper_hash_layer_is_dsm``: the same layer with ``HashRouter(key="input")`` (combine weight 1).
- ``paper_lsh_model_is_dsm``: a fitted ``LSHModel`` (p-stable and SimHash tables); DSM: each table's fitted
  buckets plus an unseen-bucket unit, indicator phi, one active unit per table, readout = constants / tables.

Pass: every row's mask has the stated structure (one whole block; one unit per table) and every output agrees
within a float64 rounding bound (u = 2^-53, gamma_n = n u / (1 - n u)):

- MoE: each side evaluates p (sum_j W_ji relu(sum_k x_k w_kj + b_j) + c_i) for the routed expert in its own
  summation order; relu is exact and 1-Lipschitz, so each lies within gamma_(d+h+3) p (sum_j |W_ji|
  (sum_k |x_k w_kj| + |b_j|) + |c_i|) of the exact value (d + 1 terms inside, h + 1 outside, one product by
  p); the two differ by at most twice that. Units outside the mask add exact zeros.
- LSH: the model sums its L constants then divides by L, the DSM divides each then sums: each within
  gamma_(L+1) sum_l |c_l| / L of the exact mean, so they differ by at most twice that.

Controls (each must fail): the mask of the wrong expert (the routed block's neighbour), a perturbed mask (the
routed block's first unit swapped for the next block's first unit), the neighbouring bucket in one table, and
the constants summed over tables instead of averaged.
"""

from __future__ import annotations

import numpy as np
import torch

from sparse_bench.dsm import LSHModel
from sparse_bench.dsm.routed import RoutedDSM, lsh_as_dsm, lsh_units, moe_as_dsm
from sparse_bench.experts import ExpertBank
from sparse_bench.moe import MoELayer
from sparse_bench.routing.hash_router import HashRouter
from sparse_bench.routing.topk import TopKRouter
from theory_checks.framework import by_profile, make_result, register_check

from .common import AREA

SOURCE = "paper §3 (docs/THEORY.md §A: special cases of the DSM)"
MOE_CASES = ((8, 4, 16), (16, 8, 32), (32, 16, 8))  # (d, experts, hidden units per expert)
MOE_TOKENS = (512, 4_096)  # (quick, full) inputs per case
LSH_CASES = (("pstable", 1, 3), ("pstable", 6, 4), ("simhash", 5, 6))  # (family, tables, hashes per table)
LSH_D = 5
LSH_POINTS = (2_000, 8_000)  # (quick, full) training points (and as many queries) per case
QUERY_CHUNK = 500  # queries whose (chunk, t) mask is formed at once
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2


def gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of n floating-point operations in sequence."""
    return n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)


# planted defects --------------------------------------------------------------------------------------------
def wrong_expert_dsm(layer) -> RoutedDSM:
    """Defect: the mask of the expert after the routed one (mod E)."""
    dsm = moe_as_dsm(layer)
    return RoutedDSM(dsm.d, dsm.features, lambda x: dsm.mask(x).roll(dsm.active_units, dims=1), dsm.readout,
                     dsm.active_units)


def swapped_unit_dsm(layer) -> RoutedDSM:
    """Defect: the routed block's first unit dropped and the next block's first unit kept instead."""
    dsm = moe_as_dsm(layer)

    def mask(x):
        keep = dsm.mask(x)
        first = keep.float().argmax(dim=1)  # (n,) first unit of the routed block
        rows = torch.arange(x.shape[0])
        keep[rows, first] = False
        keep[rows, (first + dsm.active_units) % dsm.total_units] = True
        return keep

    return RoutedDSM(dsm.d, dsm.features, mask, dsm.readout, dsm.active_units)


def neighbour_bucket_dsm(model) -> RoutedDSM:
    """Defect: in the first table, the unit after x's (the next fitted bucket, cyclically)."""
    dsm = lsh_as_dsm(model)
    size = model.table_ids[0].numel() + 1

    def mask(x):
        keep = dsm.mask(x)
        keep[:, :size] = keep[:, :size].roll(1, dims=1)
        return keep

    return RoutedDSM(dsm.d, dsm.features, mask, dsm.readout, dsm.active_units)


def summed_tables_dsm(model) -> RoutedDSM:
    """Defect: the readout holds the constants themselves, so the DSM sums the tables instead of averaging."""
    dsm = lsh_as_dsm(model)
    return RoutedDSM(dsm.d, dsm.features, dsm.mask, dsm.readout * model.num_tables, dsm.active_units)


# MoE block and hash layer --------------------------------------------------------------------------------
def _moe_bound(layer: MoELayer, x: torch.Tensor, expert: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """(n, d) float64 bound on |MoE(x) - DSM(x)| (see the module docstring)."""
    bank = layer.experts
    d, h = bank.d_model, bank.d_hidden
    w_in, b_in = bank.w_in.detach()[expert].abs(), bank.b_in.detach()[expert].abs()  # (n, d, h), (n, h)
    w_out, b_out = bank.w_out.detach()[expert].abs(), bank.b_out.detach()[expert].abs()  # (n, h, d), (n, d)
    inner = torch.einsum("nk,nkj->nj", x.abs(), w_in) + b_in  # (n, h)
    outer = torch.einsum("nj,nji->ni", inner, w_out) + b_out  # (n, d)
    return 2 * gamma(d + h + 3) * gate.unsqueeze(1) * outer


def _compare_moe(name: str, make_router, build, seed: int, profile: str):
    gen = torch.Generator().manual_seed(seed)
    tokens = by_profile(profile, quick=MOE_TOKENS[0], full=MOE_TOKENS[1])
    rows, bad_values, bad_masks, worst = [], 0, 0, 0.0
    for d, experts, hidden in MOE_CASES:
        bank = ExpertBank(experts, d, hidden, "relu", bias=True, generator=gen).double()
        layer = MoELayer(make_router(d, experts, gen).double(), bank)
        x = torch.randn(tokens, d, generator=gen, dtype=torch.float64)
        y, plan = layer(x, return_plan=True)
        expert = torch.empty(tokens, dtype=torch.int64)
        expert[plan.token_index] = plan.expert_index
        gate = torch.empty(tokens, dtype=torch.float64)
        gate[plan.token_index] = plan.weight.detach().to(torch.float64)
        dsm = build(layer)
        keep = dsm.mask(x).reshape(tokens, experts, hidden + 1)
        block_rows = keep.all(dim=2).sum(dim=1).eq(1) & keep.any(dim=2).sum(dim=1).eq(1)  # one whole block
        diff = (dsm.predict(x) - y.detach()).abs()
        ratio = diff / _moe_bound(layer, x, expert, gate)
        over = int((ratio > 1).any(dim=1).sum())
        bad_values += over
        bad_masks += int((~block_rows).sum())
        worst = max(worst, float(ratio.max()))
        rows.append(dict(d=d, experts=experts, hidden=hidden, tokens=tokens, rows_over_bound=over,
                         rows_not_one_block=int((~block_rows).sum()), max_abs_diff=float(diff.max()),
                         max_diff_over_bound=float(ratio.max()),
                         expert_load=torch.bincount(expert, minlength=experts).tolist()))
    return make_result(
        name, passed=bad_values == 0 and bad_masks == 0, seed=seed, profile=profile,
        n=tokens * len(MOE_CASES), test="exact comparison in float64 within a rounding bound, every output",
        predicted=1.0, measured=worst,
        margin="|MoE - DSM| <= 2 gamma_(d+h+3) p (sum_j |W_ji| (sum_k |x_k w_kj| + |b_j|) + |c_i|) per "
               "output; the mask one whole expert block per input",
        params={"cases": [list(c) for c in MOE_CASES], "tokens_per_case": tokens},
        details={"cases": rows, "rows_over_bound": bad_values, "rows_not_one_block": bad_masks,
                 "no_figure": "an identity: the count of outputs outside the rounding bound (0 or the check "
                              "fails) and of rows whose mask is not one block; per case in the details"})


def _switch_router(d: int, experts: int, gen: torch.Generator) -> TopKRouter:
    return TopKRouter(d, experts, k=1, generator=gen)


def _hash_router(d: int, experts: int, gen: torch.Generator) -> HashRouter:
    return HashRouter(experts, key="input", seed=int(torch.randint(0, 2**31, (1,), generator=gen)))


MOE_CONTROLS = {"wrong_expert": lambda: {"build": wrong_expert_dsm},
                "swapped_unit": lambda: {"build": swapped_unit_dsm}}


@register_check(
    name="paper_switch_is_dsm", source=SOURCE, area=AREA,
    prediction="a Switch top-1 MoE block equals the DSM whose mask is the block of units of its routed "
               "expert (phi = router probability * expert activation, A = the experts' output weights)",
    unit="max |MoE - DSM| / rounding bound", controls=MOE_CONTROLS,
)
def check_switch_is_dsm(seed: int, profile: str = "quick", build=moe_as_dsm):
    return _compare_moe("paper_switch_is_dsm", _switch_router, build, seed, profile)


@register_check(
    name="paper_hash_layer_is_dsm", source=SOURCE, area=AREA,
    prediction="a hash layer (experts chosen by a fixed hash of the input) equals the DSM whose mask is the "
               "block of units of the hashed expert",
    unit="max |MoE - DSM| / rounding bound", controls=MOE_CONTROLS,
)
def check_hash_layer_is_dsm(seed: int, profile: str = "quick", build=moe_as_dsm):
    return _compare_moe("paper_hash_layer_is_dsm", _hash_router, build, seed, profile)


# LSH model -------------------------------------------------------------------------------------------------
def _one_unit_per_table(keep: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """keep: (n, t) bool; starts: (tables + 1,) first unit of each table, then t. Returns (n,) bool."""
    per_table = [keep[:, int(a):int(b)].sum(dim=1) for a, b in zip(starts[:-1], starts[1:])]
    return torch.stack(per_table, dim=1).eq(1).all(dim=1)


@register_check(
    name="paper_lsh_model_is_dsm", source=SOURCE, area=AREA,
    prediction="the LSH model equals the DSM with one indicator unit per bucket (and per table for unseen "
               "buckets), one active unit per table, readout = bucket constants / tables",
    unit="max |LSH - DSM| / rounding bound",
    controls={"neighbour_bucket": lambda: {"build": neighbour_bucket_dsm},
              "summed_tables": lambda: {"build": summed_tables_dsm}},
)
def check_lsh_model_is_dsm(seed: int, profile: str = "quick", build=lsh_as_dsm):
    gen = torch.Generator().manual_seed(seed)
    points = by_profile(profile, quick=LSH_POINTS[0], full=LSH_POINTS[1])
    rows, bad_values, bad_masks, worst = [], 0, 0, 0.0
    for family, tables, hashes in LSH_CASES:
        width = 0.5 if family == "pstable" else None
        model = LSHModel(LSH_D, family, num_tables=tables, num_hashes=hashes, width=width,
                         seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
        x = torch.rand(points, LSH_D, generator=gen, dtype=torch.float64) * 2 - 1
        model.fit(x, torch.randn(points, generator=gen, dtype=torch.float64))
        queries = torch.rand(points, LSH_D, generator=gen, dtype=torch.float64) * 3 - 1.5  # some unseen
        units = lsh_units(model, queries)[0]  # (n, tables)
        constants = model.table_predictions(queries)  # (tables, n)
        dsm = build(model)
        starts = torch.tensor([0] + [ids.numel() + 1 for ids in model.table_ids]).cumsum(0)
        one_per_table = torch.cat([_one_unit_per_table(dsm.mask(chunk), starts)
                                   for chunk in queries.split(QUERY_CHUNK)])
        diff = (dsm.predict(queries) - model.predict(queries)).abs()
        ratio = diff / (2 * gamma(tables + 1) * constants.abs().sum(dim=0) / tables)
        over = int((ratio > 1).sum())
        bad_values += over
        bad_masks += int((~one_per_table).sum())
        worst = max(worst, float(ratio.max()))
        unseen = int((units == starts[1:] - 1).any(dim=1).sum())
        rows.append(dict(family=family, tables=tables, hashes=hashes, queries=points, buckets=dsm.total_units,
                         queries_meeting_an_unseen_bucket=unseen, rows_over_bound=over,
                         rows_not_one_unit_per_table=int((~one_per_table).sum()),
                         max_abs_diff=float(diff.max()), max_diff_over_bound=float(ratio.max())))
    return make_result(
        "paper_lsh_model_is_dsm", passed=bad_values == 0 and bad_masks == 0, seed=seed, profile=profile,
        n=points * len(LSH_CASES), test="exact comparison in float64 within a rounding bound, every query",
        predicted=1.0, measured=worst,
        margin="|LSH - DSM| <= 2 gamma_(L+1) sum_l |c_l| / L per query; the mask one unit per table",
        params={"cases": [list(c) for c in LSH_CASES], "d": LSH_D, "points_per_case": points},
        details={"cases": rows, "rows_over_bound": bad_values, "rows_not_one_unit_per_table": bad_masks,
                 "no_figure": "an identity: the count of queries outside the rounding bound (0 or the check "
                              "fails) and of masks without one unit per table; per case in the details"})
