"""Speed targets of the parts other than the MoE layer, each a ratio of two timings taken side by side in one run.

- ``lsh_over_topk``: LSH router (SimHash, log2 E projections) / top-2 softmax router (E projections) at E=64,
  d=1024, T=4096; target <= 0.5.
- ``hash_d1024_over_d256``: hash router (token ids) at d=1024 / at d=256; its cost must not depend on d: target
  <= 1.3 (the tolerance of the DSM's "flat" claim, used for every "flat" claim here).
- ``lsh_predict_2e16_over_2e8``: ``LSHModel.predict`` (p-stable, 8 projections) with about 2^16 / 2^8 non-empty
  buckets, the table size set by the width alone (SimHash would need log2 B projections: more work by design);
  target <= 1.3 (slowest over fastest of about 2^8, 2^12, 2^16 is also recorded, with the realised counts).
- ``dense_width_slope``: log-log slope of ``RandomFeaturesDense.predict`` time on width over 1024 .. 16384;
  "linear in width" is read as a slope in [0.75, 1.25] (between square-root and power-1.5 growth).
- ``conv_im2col_over_native``: ``conv2d_im2col`` / ``F.conv2d`` (3x3, padding 1, (8, 64, 32, 32)); target <= 2.
- ``maxpool_plan_over_native`` / ``avgpool_plan_over_native``: plan-then-pool (plan built inside the clock) /
  native 2x2 pooling of (8, 64, 32, 32); target <= 3.

Each part is checked against its reference once, outside the clock. ``sparse-bench components`` (or
``python -m sparse_bench.bench.components``) prints the table and stores ``kind == "component_ratio"``
records as bench measurements in the results store.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..blocks import avgpool_plan, conv2d_im2col, maxpool_plan, pool_from_plan
from ..dsm import LSHModel, RandomFeaturesDense
from ..routing import HashRouter, LSHRouter, TopKRouter
from ..threads import pinned_threads
from .timing import Timing, holds, paired_ratio_interval, time_interleaved

SEED = 20221128
FLAT_MAX = 1.3
LINEAR_SLOPE = (0.75, 1.25)
DSM_D, DSM_TRAIN, DSM_QUERY = 8, 1 << 18, 4096  # the paper's input dimension
DSM_HASHES = 8
LSH_WIDTHS = {8: 12.0, 12: 5.2, 16: 2.2}  # log2 of the wanted buckets -> width giving about that many here
DENSE_WIDTHS = (1024, 4096, 16384)


def _tokens(n: int, d: int, seed: int = SEED) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _ratio(name: str, numerator: Timing, denominator: Timing, bound: float, **details) -> dict:
    """The record of a "numerator / denominator <= bound" target, both timed in one ``time_interleaved`` run:
    ratio of medians, its 95% interval from the per-round ratios, met or not, and whether the interval holds
    the bound (the verdict is then within noise)."""
    ratio = numerator.median / denominator.median
    interval = paired_ratio_interval(numerator, denominator)
    return {"kind": "component_ratio", "name": f"component/{name}", "ratio": ratio, "interval": interval,
            "numerator_s": numerator.median, "denominator_s": denominator.median, "target": f"<= {bound:g}",
            "target_ok": ratio <= bound, "within_noise": holds(interval, bound), **details}


def router_ratios(num_threads: int, min_run_time: float) -> list[dict]:
    """LSH over top-k at E=64, d=1024, T=4096; hash router at d=1024 over d=256."""
    T, E, d = 4096, 64, 1024
    x = _tokens(T, d)
    topk = TopKRouter(d, E, k=2, normalize=True, generator=torch.Generator().manual_seed(SEED))
    lsh = LSHRouter(d, E, family="simhash", seed=SEED)
    ids = torch.randint(32000, (T,), generator=torch.Generator().manual_seed(SEED))
    hashed = HashRouter(E, key="token_id", seed=SEED)
    x256 = _tokens(T, 256)
    with torch.no_grad():
        for router in (topk, lsh):
            router(x).validate()
        t = time_interleaved({"topk": lambda: topk(x), "lsh": lambda: lsh(x),
                              "hash 256": lambda: hashed(x256, token_ids=ids),
                              "hash 1024": lambda: hashed(x, token_ids=ids)}, num_threads, min_run_time)
    return [
        _ratio("lsh_over_topk", t["lsh"], t["topk"], 0.5, E=E, d_model=d, T=T),
        _ratio("hash_d1024_over_d256", t["hash 1024"], t["hash 256"], FLAT_MAX, E=E, T=T),
    ]


def dsm_target(x: torch.Tensor) -> torch.Tensor:
    """x: (n, d). A fixed smooth label, sin of a fixed projection (speed does not depend on it)."""
    return torch.sin(x @ torch.linspace(-1.0, 1.0, x.shape[1]))


def dsm_ratios(num_threads: int, min_run_time: float) -> list[dict]:
    """LSHModel.predict flat in buckets (2^8 .. 2^16); dense random-features predict linear in width."""
    x_train, query = _tokens(DSM_TRAIN, DSM_D), _tokens(DSM_QUERY, DSM_D, SEED + 1)
    y_train = dsm_target(x_train)
    models, buckets = {}, {}
    for bits, width in LSH_WIDTHS.items():
        models[f"lsh {bits}"] = LSHModel(DSM_D, num_hashes=DSM_HASHES, width=width, seed=SEED).fit(x_train, y_train)
        buckets[bits] = models[f"lsh {bits}"].num_nonempty_buckets
    for width in DENSE_WIDTHS:  # any readout: speed does not depend on it
        models[f"dense {width}"] = RandomFeaturesDense(DSM_D, width, seed=SEED).fit(x_train[:1024], y_train[:1024])
    t = time_interleaved({name: (lambda m=m: m.predict(query)) for name, m in models.items()}, num_threads,
                         min_run_time)
    t_lsh = {bits: t[f"lsh {bits}"].median for bits in LSH_WIDTHS}
    t_dense = {width: t[f"dense {width}"].median for width in DENSE_WIDTHS}
    spread = max(t_lsh.values()) / min(t_lsh.values())
    slope = float(np.polyfit(np.log(list(t_dense)), np.log(list(t_dense.values())), 1)[0])  # least squares
    low, high = LINEAR_SLOPE
    return [
        _ratio("lsh_predict_2e16_over_2e8", t["lsh 16"], t["lsh 8"], FLAT_MAX,
               slowest_over_fastest=spread, nonempty_buckets=list(buckets.values()), times_s=list(t_lsh.values())),
        {"kind": "component_ratio", "name": "component/dense_width_slope", "ratio": slope,
         "target": f"in [{low}, {high}]", "target_ok": low <= slope <= high,
         "times_s": {str(w): t for w, t in t_dense.items()}},
    ]


def conv_pool_ratios(num_threads: int, min_run_time: float) -> list[dict]:
    """im2col over native conv2d; pooling from a routing plan over native pooling."""
    x = _tokens(8 * 64 * 32 * 32, 1).view(8, 64, 32, 32)
    w = _tokens(64 * 64 * 9, 1, SEED + 1).view(64, 64, 3, 3) / 9
    if float((conv2d_im2col(x, w, padding=1) - F.conv2d(x, w, padding=1)).abs().max()) > 1e-3:
        raise AssertionError("conv2d_im2col disagrees with F.conv2d")
    pools = (("max", F.max_pool2d, maxpool_plan), ("avg", F.avg_pool2d, avgpool_plan))
    fns = {"conv native": lambda: F.conv2d(x, w, padding=1), "conv im2col": lambda: conv2d_im2col(x, w, padding=1)}
    for kind, native, make_plan in pools:
        if not torch.allclose(pool_from_plan(x, make_plan(x, 2)), native(x, 2), rtol=1e-6, atol=1e-6):
            raise AssertionError(f"{kind} pooling from a plan disagrees with native pooling")
        fns[f"{kind} native"] = lambda native=native: native(x, 2)
        fns[f"{kind} plan"] = lambda make_plan=make_plan: pool_from_plan(x, make_plan(x, 2))
    with torch.no_grad():
        t = time_interleaved(fns, num_threads, min_run_time)
    out = [_ratio("conv_im2col_over_native", t["conv im2col"], t["conv native"], 2.0, shape=[8, 64, 32, 32],
                  kernel=3)]
    for kind, _, _ in pools:
        out.append(_ratio(f"{kind}pool_plan_over_native", t[f"{kind} plan"], t[f"{kind} native"], 3.0,
                          shape=[8, 64, 32, 32], kernel=2))
    return out


def run_components(num_threads: int = 2, min_run_time: float = 0.3) -> list[dict]:
    """Every component ratio, measured with ``num_threads`` threads. Returns the records."""
    with pinned_threads(num_threads):
        records = (router_ratios(num_threads, min_run_time) + dsm_ratios(num_threads, min_run_time)
                   + conv_pool_ratios(num_threads, min_run_time))
    for record in records:
        record.update({"num_threads": num_threads, "timestamp": time.time()})
    return records


def format_components(records: list[dict]) -> str:
    """One line per ratio: measured, 95% interval where recorded, target, verdict (and "within noise")."""
    def line(r: dict) -> str:
        interval = r.get("interval")
        spread = f"[{interval['low']:.3f}, {interval['high']:.3f}]" if interval else ""
        noise = " (within noise)" if r.get("within_noise") else ""
        return (f"{r['name']:<42s} {r['ratio']:7.3f} {spread:<16s} target {r['target']:<14s} "
                f"{'met' if r['target_ok'] else 'NOT met'}{noise}")

    return "\n".join(line(r) for r in records)


def main(argv: list[str] | None = None) -> int:
    """``python -m sparse_bench.bench.components ARGS`` is ``sparse-bench components ARGS``."""
    from ..cli import main as cli_main

    return cli_main(["components", *(sys.argv[1:] if argv is None else argv)])


def area_ratios(area: str, num_threads: int = 2, min_run_time: float = 0.2) -> dict[str, float]:
    """Every ratio of one area ("routers", "dsm", "conv_pool") by short name, for asv's ``track_`` benchmarks."""
    measure = {"routers": router_ratios, "dsm": dsm_ratios, "conv_pool": conv_pool_ratios}[area]
    with pinned_threads(num_threads):
        records = measure(num_threads, min_run_time)
    return {r["name"].removeprefix("component/"): r["ratio"] for r in records}


if __name__ == "__main__":
    raise SystemExit(main())
