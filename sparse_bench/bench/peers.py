"""The layers the ratio table times side by side, built on identical weights and checked to agree.

``build_case`` makes our MoELayer (Mixtral-style top-k router, SwiGLU ExpertBank, seeded), then on the same
weights: HF transformers' ``MixtralSparseMoeBlock`` (its eager per-expert loop with ``index_add_``), the
GShard-style one-hot einsum layer, our other dispatch strategies, and "prepacked": our layer on
oneDNN-prepacked expert weights (``ExpertBank.prepack``, opt-in; forward only, since autograd never uses the
packs). Every peer's output is compared with ours once, outside the timed region; a peer that disagrees raises
rather than being timed, and one that cannot run here (a RuntimeError: a kernel missing for this device or
dtype) is skipped with the reason.

In a low-precision case (bf16, fp16) the experts, x and the upstream gradient are in that dtype and the router
stays float32 ("selective precision", ``LearnedRouter``); every peer routes in float32 too, so all compute the
same function and differ only by rounding (``peer_tolerance``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..experts import ExpertBank
from ..moe import MoELayer, SharedExpert
from ..routing import ExpertChoiceRouter, HashRouter, LSHRouter, Router, SinkhornRouter, TopKRouter
from ..routing.plan import RoutingPlan
from .grid import MAX_DENSE_DISPATCH_ELEMENTS, GridPoint
from .gshard import GShardEinsumMoE
from .revision import revision_layer
from .speed_targets import REVISION_PEER_PREFIX

PEER_REL_TOL = 1e-4  # fp32: max |y_peer - y_ours| / max |y_ours|; differences come from summation order only
# Low precision: a layer rounds each token's pre-activation, activation, expert output and weighted output to
# the dtype, then adds its k weighted outputs in the dtype: 4 + k roundings, each within half an ulp (eps / 2)
# of the value rounded. Two layers computing the same function thus differ by up to about 2 (4 + k) eps / 2
# relative to max |y| (to first order, values of y's magnitude): the tolerance, not a tuned number. Measured
# on CPU (2026-12-03, d=512, E 8-64, k 1-8): bf16 at most 1.8 eps, fp16 1.2 eps; the wrongly normalised
# negative control is off by > 0.2.
ROUNDINGS_PER_EXPERT_ROW = 4
STRATEGY_PEERS = ("loop", "einsum", "sorted", "padded", "grouped")
FORWARD_ONLY_PEERS = ("prepacked",)  # identical to our layer with autograd
TOPK_ONLY_PEERS = ("hf_mixtral", "gshard_einsum")  # route with a top-k softmax of their own, no shared expert
ALL_PEERS = (*TOPK_ONLY_PEERS, *STRATEGY_PEERS, *FORWARD_ONLY_PEERS)


@dataclass
class Case:
    """One grid point, ready to time. modules map a name to a module taking and returning (T, d_model)."""

    point: GridPoint
    x: torch.Tensor  # (T, d_model)
    upstream: torch.Tensor  # (T, d_model) gradient fed to backward
    layer: MoELayer
    plan: RoutingPlan
    modules: dict[str, nn.Module] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class _Flat(nn.Module):
    """Adapts a block that takes (batch, seq, d) to (T, d) -> (T, d)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x.unsqueeze(0)).squeeze(0)


def hf_mixtral_block(layer: MoELayer) -> nn.Module:
    """HF's MixtralSparseMoeBlock holding our layer's weights (eager experts). ImportError without transformers."""
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    bank, router = layer.experts, layer.router
    config = MixtralConfig(
        hidden_size=bank.d_model,
        intermediate_size=bank.d_hidden,
        num_local_experts=bank.num_experts,
        num_experts_per_tok=router.k,
    )
    config._experts_implementation = "eager"  # the per-expert loop; set explicitly so HF does not warn
    block = MixtralSparseMoeBlock(config).to(device=bank.w_in.device, dtype=bank.w_in.dtype)
    block.gate.to(router.weight.dtype).register_forward_pre_hook(_route_in_gate_dtype)  # float32, as ours
    with torch.no_grad():
        block.gate.weight.copy_(router.weight)
        block.experts.gate_up_proj.copy_(bank.w_in.transpose(1, 2))  # (E, 2h, d), [gate; up]
        block.experts.down_proj.copy_(bank.w_out.transpose(1, 2))  # (E, d, h)
    return _Flat(block.eval())


def _route_in_gate_dtype(gate: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of HF's gate: its input in the gate's dtype (float32 logits, as our router computes
    them for low-precision inputs; HF's own bf16 gate rounds the logits first and routes near-ties
    differently)."""
    return (args[0].to(gate.weight.dtype), *args[1:])


def dense_dispatch_elements(point: GridPoint, plan: RoutingPlan) -> int:
    """T * E * C of a one-hot dispatch tensor at the realised capacity C = max expert load."""
    return point.num_tokens * point.num_experts * int(plan.expert_counts.max())


def make_router(point: GridPoint, gen: torch.Generator, seed: int) -> Router:
    """The router ``point.router`` names, over E experts with about k assignments per token: Mixtral's top-k
    (renormalised), expert choice with capacity factor k (each expert picks ceil(k T / E) tokens), the hash
    router on each token's values (k = 1; the benchmark has no token ids), SimHash LSH with k tables (one
    assignment per table), or Sinkhorn-balanced top-k. Learned routers draw their gate from ``gen``."""
    E, d, k = point.num_experts, point.d_model, point.k
    if point.router == "topk":
        return TopKRouter(d, E, k=k, normalize=True, generator=gen)
    if point.router == "expert_choice":
        return ExpertChoiceRouter(d, E, capacity_factor=float(k), generator=gen)
    if point.router == "hash":
        return HashRouter(E, key="input", seed=seed)
    if point.router == "lsh":
        return LSHRouter(d, E, family="simhash", num_tables=k, seed=seed)
    return SinkhornRouter(d, E, k=k, generator=gen)


def build_case(
    point: GridPoint,
    seed: int = 0,
    dispatch: str = "auto",
    peers: tuple[str, ...] = ALL_PEERS,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Case:
    """Seeded inputs, our layer and the requested peers on its weights, all verified against our output.

    dtype: of the experts, x and the upstream gradient (the same seeded values, rounded); the router stays
    float32. The draws do not depend on device or dtype. The router is ``make_router``'s; shared experts
    (``point.shared_experts``, ungated, as DeepSeek's) are one SwiGLU expert of width shared_experts * h.
    HF's block and the GShard layer route top-k without a shared expert: other layers skip them."""
    gen = torch.Generator().manual_seed(seed)
    E, d = point.num_experts, point.d_model
    router = make_router(point, gen, seed)
    bank = ExpertBank(E, d, point.d_hidden, activation=point.activation, generator=gen).to(dtype)
    shared = None
    if point.shared_experts:
        width = point.shared_experts * point.d_hidden
        shared = SharedExpert(ExpertBank(1, d, width, activation=point.activation, generator=gen).to(dtype))
    layer = MoELayer(router, bank, dispatch=dispatch, shared_expert=shared).to(device).eval()
    x = torch.randn(point.num_tokens, d, generator=gen).to(device=device, dtype=dtype)
    upstream = torch.randn(point.num_tokens, d, generator=gen).to(device=device, dtype=dtype)
    with torch.no_grad():
        y, plan = layer(x, return_plan=True)
    case = Case(point, x, upstream, layer, plan)
    dense_too_big = dense_dispatch_elements(point, plan) > MAX_DENSE_DISPATCH_ELEMENTS
    another_layer = point.router != "topk" or point.shared_experts > 0  # than the top-k-only peers compute
    for name in peers:
        if name.startswith(REVISION_PEER_PREFIX):  # our layer at another revision (revision.py)
            case.modules[name] = revision_layer(name[len(REVISION_PEER_PREFIX):], layer, point, seed, dispatch,
                                                device, dtype)
            continue
        if name in TOPK_ONLY_PEERS and another_layer:
            case.skipped[name] = "routes top-k without a shared expert: computes another layer"
            continue
        if name in ("einsum", "gshard_einsum") and dense_too_big:
            case.skipped[name] = f"T*E*C = {dense_dispatch_elements(point, plan)} > {MAX_DENSE_DISPATCH_ELEMENTS}"
            continue
        if name == "prepacked" and not layer.experts.sharing_weights(prepack=True).prepack_applies():
            case.skipped[name] = "prepacking applies to bias-free SwiGLU experts, CPU float32 weights only"
            continue
        try:
            case.modules[name] = _peer(name, layer)
        except ImportError as err:
            case.skipped[name] = f"not installed: {err.name}"
    with torch.no_grad():
        for name, module in list(case.modules.items()):
            try:
                y_peer = module(x)
            except RuntimeError as error:  # a kernel this device or dtype lacks: recorded, the rest timed
                del case.modules[name]
                case.skipped[name] = f"failed here: {str(error).splitlines()[0][:160]}"
                continue
            check_agrees(name, y_peer, y, point.k)
    return case


def _peer(name: str, layer: MoELayer) -> nn.Module:
    if name == "hf_mixtral":
        return hf_mixtral_block(layer)
    if name == "gshard_einsum":
        return GShardEinsumMoE(layer.router.weight, layer.experts, layer.router.k, normalize=layer.router.normalize)
    if name in STRATEGY_PEERS:
        return MoELayer(layer.router, layer.experts, dispatch=name, shared_expert=layer.shared_expert)
    if name == "prepacked":
        return MoELayer(layer.router, layer.experts.sharing_weights(prepack=True),
                        dispatch=layer.dispatch_name, shared_expert=layer.shared_expert)
    raise ValueError(f"unknown peer {name!r}; known: {', '.join(ALL_PEERS)}")


def peer_tolerance(dtype: torch.dtype, k: int = 1) -> float:
    """Largest max |y_peer - y_ours| / max |y_ours| of two top-k layers computing one function in dtype."""
    if dtype in (torch.float32, torch.float64):
        return PEER_REL_TOL
    return (ROUNDINGS_PER_EXPERT_ROW + k) * torch.finfo(dtype).eps


def check_agrees(name: str, y_peer: torch.Tensor, y_ours: torch.Tensor, k: int = 1) -> None:
    """Raise AssertionError when a peer computes a different function (timing it would be meaningless).
    k: experts per token (low precision: each adds a rounding, ``peer_tolerance``)."""
    if y_peer.dtype != y_ours.dtype or y_peer.shape != y_ours.shape:
        raise AssertionError(f"peer {name} returns {y_peer.dtype} {tuple(y_peer.shape)}, our layer "
                             f"{y_ours.dtype} {tuple(y_ours.shape)}")
    tol = peer_tolerance(y_ours.dtype, k)
    y_peer, y_ours = y_peer.double(), y_ours.double()  # the difference itself not rounded to a low precision
    scale = float(y_ours.abs().max()) or 1.0
    err = float((y_peer - y_ours).abs().max()) / scale
    if not err < tol:
        raise AssertionError(f"peer {name} disagrees with our layer: relative error {err:.3g} >= {tol:.3g}")


def forward_fn(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """Inference forward (no autograd graph)."""

    def run() -> None:
        with torch.no_grad():
            module(x)

    return run


def forward_backward_fn(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> Callable[[], None]:
    """Forward with a graph, then backward of ``upstream`` into x and every parameter. The gradients are dropped
    at the end of each call, so every call starts with none live: a peak-memory reading counts the new
    gradients in full (dropped at the start, the previous call's gradients were freed inside the measurement
    and offset it: E64 k1 T4096 h256 read 0.40x the budget instead of 1.02x)."""
    x = x.detach().clone().requires_grad_()
    params = [p for p in module.parameters() if p.requires_grad]

    def run() -> None:
        module(x).backward(upstream)
        x.grad = None
        for p in params:
            p.grad = None

    return run
