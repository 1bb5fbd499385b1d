"""Where a layer's CPU overhead (t_layer / t_grouped-floor, forward) goes, at one or more grid points.

For each point E,k,T,h (d_model 512, SwiGLU, top-k router, dispatch "auto", fp32): the layer, the grouped
floor (``bench.floor.grouped_floor_fn``: the expert GEMMs alone at the realised counts), the router alone, a
minimal top-k router (``F.linear``, ``topk``, softmax over the k logits, one stable ``argsort``), the three
memory passes any layer makes that does not fuse them into its GEMMs (``index_select`` of the A routed
rows, ``silu(gate) * up`` on (A, 2h), a weighted ``index_add_`` of A rows into y), and the ATen op count times
the cost of one trivial op. Medians of ``torch.utils.benchmark`` at the given thread count, with the allocator
setting ``sparse-bench bench`` uses by default ("retain": freed blocks stay in the heap).

    .venv/bin/python scripts/overhead_decomposition.py 8,1,512,256 8,2,4096,256 64,2,512,256 8,2,4096,1024
"""

from __future__ import annotations

import click
import torch
import torch.nn.functional as F
from torch.utils import benchmark

from sparse_bench import ExpertBank, MoELayer
from sparse_bench.bench.allocator import use_allocator
from sparse_bench.bench.floor import grouped_floor_fn
from sparse_bench.bench.op_count import count_ops
from sparse_bench.routing import TopKRouter

D_MODEL = 512


def median_us(fn, threads: int, min_run_time: float) -> float:
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e6


def minimal_router(x: torch.Tensor, weight: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The least a top-k softmax router does: (T, k) combine weights and the (T * k,) expert-sorted order."""
    top, experts = F.linear(x, weight).topk(k, dim=1)
    return top.softmax(dim=1), experts.view(-1).argsort(stable=True)


def decompose(E: int, k: int, T: int, h: int, threads: int, min_run_time: float, seed: int) -> dict:
    """Medians in µs of the layer, its grouped floor, its router, a minimal router and the three memory passes;
    its op count and the cost of one trivial op."""
    gen = torch.Generator().manual_seed(seed)
    router = TopKRouter(D_MODEL, E, k=k, generator=gen)
    layer = MoELayer(router, ExpertBank(E, D_MODEL, h, activation="swiglu", generator=gen), "auto")
    x = torch.randn(T, D_MODEL, generator=gen)

    def time(fn):
        return median_us(fn, threads, min_run_time)

    with torch.no_grad():
        plan = router(x)
        counts = plan.expert_counts.tolist()
        rows = sum(counts)
        tokens, weight = plan.token_index, plan.weight.unsqueeze(1)
        pre, out, y = torch.randn(rows, 2 * h, generator=gen), torch.randn(rows, D_MODEL, generator=gen), x.clone()
        tiny = torch.zeros(1)
        return dict(
            layer=time(lambda: layer(x)),
            floor=time(grouped_floor_fn(layer.experts.w_in, layer.experts.w_out, counts, backward=False)),
            router=time(lambda: router(x)),
            minimal_router=time(lambda: minimal_router(x, router.weight, k)),
            gather=time(lambda: x.index_select(0, tokens)),
            swiglu=time(lambda: F.silu(pre[:, :h]) * pre[:, h:]),
            combine=time(lambda: y.index_add_(0, tokens, out * weight)),
            ops=count_ops(lambda: layer(x)).total,
            per_op=time(lambda: tiny.add_(1)),
        )


@click.command()
@click.argument("points", nargs=-1, required=True, metavar="E,k,T,h...")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--min-run-time", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="seconds of timed calls per median")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--allocator", default="retain", show_default=True, type=click.Choice(["retain", "system"]))
def main(points: tuple[str, ...], threads: int, min_run_time: float, seed: int, allocator: str) -> None:
    use_allocator(allocator)
    torch.set_num_threads(threads)
    print("| E, k, T, h | layer | grouped floor | overhead | router (minimal) | gather + SwiGLU + combine "
          "| floor + router + passes | floor + minimal router + passes | ops x per-op |")
    print("|---|---|---|---|---|---|---|---|---|")
    for point in points:
        try:
            E, k, T, h = (int(v) for v in point.split(","))
        except ValueError:
            raise click.BadParameter(f"{point!r} is not E,k,T,h (four integers)", param_hint="POINTS") from None
        r = decompose(E, k, T, h, threads, min_run_time, seed)
        passes = r["gather"] + r["swiglu"] + r["combine"]
        print(f"| {E}, {k}, {T}, {h} | {r['layer']:,.0f} us | {r['floor']:,.0f} us | {r['layer'] / r['floor']:.2f} "
              f"| {r['router']:,.0f} ({r['minimal_router']:,.0f}) us "
              f"| {r['gather']:,.0f} + {r['swiglu']:,.0f} + {r['combine']:,.0f} us "
              f"| {(r['floor'] + r['router'] + passes) / r['floor']:.3f} x "
              f"| {(r['floor'] + r['minimal_router'] + passes) / r['floor']:.3f} x "
              f"| {r['ops']} x {r['per_op']:.1f} us |", flush=True)


if __name__ == "__main__":
    main()
