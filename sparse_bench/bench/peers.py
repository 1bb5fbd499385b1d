"""The layers the ratio table times side by side, built on identical weights and checked to agree.

``build_case`` makes our MoELayer (Mixtral-style top-k router, SwiGLU ExpertBank, seeded), then on the same weights:
HF transformers' ``MixtralSparseMoeBlock`` (its eager per-expert loop with ``index_add_``), the GShard-style
one-hot einsum layer, our other dispatch strategies, and "prepacked": our layer on oneDNN-prepacked expert weights
(``ExpertBank.prepack``, opt-in; forward only, since autograd never uses the packs). Every peer's output is
compared with ours once, outside the timed region; a peer that disagrees raises rather than being timed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..experts import ExpertBank
from ..moe import MoELayer
from ..routing.plan import RoutingPlan
from ..routing.topk import TopKRouter
from .grid import MAX_DENSE_DISPATCH_ELEMENTS, GridPoint
from .gshard import GShardEinsumMoE

PEER_REL_TOL = 1e-4  # fp32: max |y_peer - y_ours| / max |y_ours|; differences come from summation order only
STRATEGY_PEERS = ("loop", "einsum", "sorted", "padded")
FORWARD_ONLY_PEERS = ("prepacked",)  # identical to our layer with autograd
ALL_PEERS = ("hf_mixtral", "gshard_einsum", *STRATEGY_PEERS, *FORWARD_ONLY_PEERS)


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
    block = MixtralSparseMoeBlock(config).to(bank.w_in.dtype)
    with torch.no_grad():
        block.gate.weight.copy_(router.weight)
        block.experts.gate_up_proj.copy_(bank.w_in.transpose(1, 2))  # (E, 2h, d), [gate; up]
        block.experts.down_proj.copy_(bank.w_out.transpose(1, 2))  # (E, d, h)
    return _Flat(block.eval())


def dense_dispatch_elements(point: GridPoint, plan: RoutingPlan) -> int:
    """T * E * C of a one-hot dispatch tensor at the realised capacity C = max expert load."""
    return point.num_tokens * point.num_experts * int(plan.expert_counts.max())


def build_case(
    point: GridPoint,
    seed: int = 0,
    dispatch: str = "auto",
    peers: tuple[str, ...] = ALL_PEERS,
    device: str | torch.device = "cpu",
) -> Case:
    """Seeded inputs, our layer and the requested peers on its weights, all verified against our output."""
    gen = torch.Generator().manual_seed(seed)
    E, d = point.num_experts, point.d_model
    router = TopKRouter(d, E, k=point.k, normalize=True, generator=gen)
    bank = ExpertBank(E, d, point.d_hidden, activation=point.activation, generator=gen)
    layer = MoELayer(router, bank, dispatch=dispatch).to(device).eval()
    x = torch.randn(point.num_tokens, d, generator=gen).to(device)
    upstream = torch.randn(point.num_tokens, d, generator=gen).to(device)
    with torch.no_grad():
        y, plan = layer(x, return_plan=True)
    case = Case(point, x, upstream, layer, plan)
    dense_too_big = dense_dispatch_elements(point, plan) > MAX_DENSE_DISPATCH_ELEMENTS
    for name in peers:
        if name in ("einsum", "gshard_einsum") and dense_too_big:
            case.skipped[name] = f"T*E*C = {dense_dispatch_elements(point, plan)} > {MAX_DENSE_DISPATCH_ELEMENTS}"
            continue
        try:
            case.modules[name] = _peer(name, layer)
        except ImportError as err:
            case.skipped[name] = f"not installed: {err.name}"
    with torch.no_grad():
        for name, module in case.modules.items():
            check_agrees(name, module(x), y)
    return case


def _peer(name: str, layer: MoELayer) -> nn.Module:
    if name == "hf_mixtral":
        return hf_mixtral_block(layer)
    if name == "gshard_einsum":
        return GShardEinsumMoE(layer.router.weight, layer.experts, layer.router.k, normalize=layer.router.normalize)
    if name in STRATEGY_PEERS:
        return MoELayer(layer.router, layer.experts, dispatch=name)
    if name == "prepacked":
        return MoELayer(layer.router, layer.experts.sharing_weights(prepack=True), dispatch=layer.dispatch_name)
    raise ValueError(f"unknown peer {name!r}; known: {', '.join(ALL_PEERS)}")


def check_agrees(name: str, y_peer: torch.Tensor, y_ours: torch.Tensor) -> None:
    """Raise AssertionError when a peer computes a different function (timing it would be meaningless)."""
    scale = float(y_ours.abs().max()) or 1.0
    err = float((y_peer - y_ours).abs().max()) / scale
    if not err < PEER_REL_TOL:
        raise AssertionError(f"peer {name} disagrees with our layer: relative error {err:.3g} >= {PEER_REL_TOL}")


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
