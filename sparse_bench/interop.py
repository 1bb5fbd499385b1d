"""Build MoELayers equivalent to Hugging Face transformers' MoE blocks (weights copied into our layout).

Supported: ``MixtralSparseMoeBlock`` (top-k, renormalised, SwiGLU), ``Qwen2MoeSparseMoeBlock`` (top-k,
renormalised when ``norm_topk_prob``, SwiGLU, sigmoid-gated shared expert) and ``SwitchTransformersSparseMLP``
(top-1, raw probability, absolute expert capacity, ReLU or GELU). Anything else gets a clear error.
transformers is imported only by the caller; this module inspects the block's attributes.
"""

from __future__ import annotations

import torch
from torch import nn

from .experts import ExpertBank
from .moe import MoELayer, SharedExpert
from .routing.topk import TopKRouter

HF_ACTIVATIONS = {"silu": "swiglu", "relu": "relu", "gelu": "gelu"}


def _activation(block_name: str, act_name: str, gated: bool) -> str:
    ours = HF_ACTIVATIONS.get(act_name)
    if ours is None or (ours == "swiglu") != gated:
        raise ValueError(
            f"{block_name}: activation {act_name!r} is not supported (silu-gated, relu, gelu are)"
        )
    return ours


def _router_from_gate(
    weight: torch.Tensor, k: int, normalize: bool, capacity: int | None = None
) -> TopKRouter:
    num_experts, d_model = weight.shape
    router = TopKRouter(d_model, num_experts, k=k, normalize=normalize, capacity=capacity)
    with torch.no_grad():
        router.weight.copy_(weight.detach())
    return router.to(weight.dtype)


def _gated_bank(gate_up: torch.Tensor, down: torch.Tensor) -> ExpertBank:
    """gate_up: (E, 2h, d) in [gate; up] order; down: (E, d, h) (HF's out-by-in layout)."""
    num_experts, two_h, d_model = gate_up.shape
    bank = ExpertBank(num_experts, d_model, two_h // 2, activation="swiglu")
    with torch.no_grad():
        bank.w_in.copy_(gate_up.detach().transpose(1, 2))
        bank.w_out.copy_(down.detach().transpose(1, 2))
    return bank.to(gate_up.dtype)


def _from_mixtral(block: nn.Module) -> MoELayer:
    act = getattr(block.experts.act_fn, "__class__").__name__.lower()
    if "silu" not in act:
        raise ValueError(f"MixtralSparseMoeBlock: activation {act!r} is not supported (silu-gated only)")
    router = _router_from_gate(block.gate.weight, block.gate.top_k, normalize=True)
    return MoELayer(router, _gated_bank(block.experts.gate_up_proj, block.experts.down_proj))


def _from_qwen2_moe(block: nn.Module) -> MoELayer:
    act = block.experts.act_fn.__class__.__name__.lower()
    if "silu" not in act:
        raise ValueError(f"Qwen2MoeSparseMoeBlock: activation {act!r} is not supported (silu-gated only)")
    router = _router_from_gate(block.gate.weight, block.gate.top_k, normalize=bool(block.gate.norm_topk_prob))
    mlp = block.shared_expert
    gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0).unsqueeze(0)  # (1, 2h_s, d)
    shared_bank = _gated_bank(gate_up, mlp.down_proj.weight.unsqueeze(0))
    if getattr(block.shared_expert_gate, "bias", None) is not None:
        raise ValueError("Qwen2MoeSparseMoeBlock: a biased shared_expert_gate is not supported")
    shared = SharedExpert(shared_bank, gate=block.shared_expert_gate.weight[0])
    return MoELayer(
        router, _gated_bank(block.experts.gate_up_proj, block.experts.down_proj), shared_expert=shared
    )


def _from_switch(block: nn.Module) -> MoELayer:
    hf_router = block.router
    if hf_router.classifier.bias is not None:
        raise ValueError(
            "SwitchTransformersSparseMLP: a router with bias (router_bias=True) is not supported"
        )
    experts = [block.experts[f"expert_{i}"] for i in range(hf_router.num_experts)]
    act_name = type(experts[0].act).__name__
    act = {"ReLU": "relu", "GELUActivation": "gelu"}.get(act_name)
    if act is None:
        raise ValueError(
            f"SwitchTransformersSparseMLP: activation {act_name} is not supported (ReLU, exact GELU)"
        )
    router = _router_from_gate(
        hf_router.classifier.weight, 1, normalize=False, capacity=int(hf_router.expert_capacity)
    )
    d_hidden, d_model = experts[0].wi.weight.shape
    bank = ExpertBank(len(experts), d_model, d_hidden, activation=act)
    with torch.no_grad():
        bank.w_in.copy_(torch.stack([e.wi.weight.detach().t() for e in experts]))
        bank.w_out.copy_(torch.stack([e.wo.weight.detach().t() for e in experts]))
    return MoELayer(router, bank.to(experts[0].wi.weight.dtype))


CONVERTERS = {
    "MixtralSparseMoeBlock": _from_mixtral,
    "Qwen2MoeSparseMoeBlock": _from_qwen2_moe,
    "SwitchTransformersSparseMLP": _from_switch,
}


def from_hf(block: nn.Module) -> MoELayer:
    """An MoELayer computing the same function as the HF block (weights copied; dispatch "sorted").

    Switch: HF applies ``expert_capacity`` per sequence (per row of a (batch, seq, d) input); our layer applies
    it over all tokens it is given, so outputs agree for one sequence at a time, or whenever no expert overflows.
    HF's load-balancing loss (``load_balancing_loss_func``) equals top_k times our ``load_balancing_loss``.
    """
    name = type(block).__name__
    if name not in CONVERTERS:
        raise TypeError(f"from_hf supports {sorted(CONVERTERS)}, got {name}")
    return CONVERTERS[name](block)
