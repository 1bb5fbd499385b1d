"""A one-hot einsum MoE layer in the style of GShard (Lepikhin et al., 2020) and fairscale's ``MOELayer``.

The peer the ratio table compares against when fairscale is not installed. Like GShard's top-2 gating it builds
dense one-hot ``dispatch`` and ``combine`` tensors of shape (T, E, C) from a cumulative sum over the choice masks
(first choices fill an expert before any second choice), then moves tokens with ``einsum("tec,td->ecd")`` and
back with ``einsum("tec,ecd->td")``. Generalised to top-k; the capacity C is the largest realised expert load, so
no token is dropped and the layer computes exactly the function of an ``MoELayer`` with the same weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..experts import ExpertBank


class GShardEinsumMoE(nn.Module):
    """Top-k softmax gate + one-hot (T, E, C) einsum dispatch over an ExpertBank.

    gate_weight: (E, d_model) router weight (logits = x @ gate_weight.T); experts: the ExpertBank; k: choices
    per token; normalize: renormalise the k kept probabilities (Mixtral) or keep them raw (Switch).
    """

    def __init__(self, gate_weight: torch.Tensor, experts: ExpertBank, k: int, normalize: bool = True):
        super().__init__()
        if gate_weight.shape != (experts.num_experts, experts.d_model):
            expected = (experts.num_experts, experts.d_model)
            raise ValueError(f"gate_weight must have shape {expected}, got {tuple(gate_weight.shape)}")
        if not 1 <= k <= experts.num_experts:
            raise ValueError(f"k must be in [1, {experts.num_experts}], got {k}")
        self.gate_weight = nn.Parameter(gate_weight.detach().clone())
        self.experts = experts
        self.k = k
        self.normalize = normalize

    def gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (T, d). Returns combine (T, E, C) float and dispatch (T, E, C) 0/1 float tensors."""
        T, E = x.shape[0], self.experts.num_experts  # tokens, experts
        gate_dtype = torch.promote_types(x.dtype, self.gate_weight.dtype)  # float32 gate: bf16 routed in fp32
        probs = torch.softmax(x.to(gate_dtype) @ self.gate_weight.to(gate_dtype).t(), dim=-1)  # (T, E)
        top_prob, top_expert = torch.topk(probs, self.k, dim=-1)  # (T, k)
        if self.normalize:
            top_prob = top_prob / top_prob.sum(dim=-1, keepdim=True)
        top_prob = top_prob.to(x.dtype)  # the combine weights, in the experts' dtype
        masks = F.one_hot(top_expert, E).transpose(0, 1)  # (k, T, E) int64, choice rank major
        locations = torch.cumsum(masks.reshape(self.k * T, E), dim=0).reshape(self.k, T, E) - 1  # slot in expert
        capacity = int(masks.sum(dim=(0, 1)).max())  # dropless: the largest realised load
        combine = x.new_zeros(T, E, capacity)
        for rank in range(self.k):  # one (T, E, C) term per choice rank, as in GShard's top-2 gating
            slot = (locations[rank] * masks[rank]).sum(dim=-1)  # (T,)
            slot_hot = F.one_hot(slot, capacity).to(x.dtype)  # (T, C)
            expert_hot = masks[rank].to(x.dtype) * top_prob[:, rank : rank + 1]  # (T, E)
            combine = combine + expert_hot.unsqueeze(2) * slot_hot.unsqueeze(1)  # (T, E, C)
        dispatch = (combine != 0).to(x.dtype)  # a kept probability is > 0 (softmax), so nonzero = routed
        return combine, dispatch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, d_model). Returns (T, d_model)."""
        combine, dispatch = self.gate(x)
        expert_in = torch.einsum("tec,td->ecd", dispatch, x)  # (E, C, d)
        expert_out = self.experts.forward_batched(expert_in)  # (E, C, d)
        return torch.einsum("tec,ecd->td", combine, expert_out)
