"""MoELayer = router + dispatcher + experts (+ an optional gated shared expert, as in Qwen2-MoE)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .dispatch import get_dispatcher
from .experts import ExpertBank
from .routing.base import Router
from .routing.plan import RoutingPlan
from .validation import check_finite, check_finite_image, check_float_tensor


class SharedExpert(nn.Module):
    """A dense FFN applied to every token, optionally scaled by ``sigmoid(x @ gate)``.

    expert: an ExpertBank with one expert; gate: (d_model,) weight of the sigmoid gate, or None for no gate.
    """

    def __init__(self, expert: ExpertBank, gate: torch.Tensor | None = None):
        super().__init__()
        if expert.num_experts != 1:
            raise ValueError(f"a shared expert is one expert, got a bank of {expert.num_experts}")
        if gate is not None:
            check_float_tensor(gate, 1, "(d_model,)", "gate")
            if gate.shape[0] != expert.d_model:
                raise ValueError(f"gate has {gate.shape[0]} entries but the shared expert's d_model is "
                                 f"{expert.d_model}")
        self.expert = expert
        self.gate = nn.Parameter(gate.detach().clone()) if gate is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, d_model). Returns (T, d_model)."""
        out = self.expert.expert_forward(0, x)
        if self.gate is None:
            return out
        return torch.sigmoid(x @ self.gate.to(x.dtype)).unsqueeze(1) * out


class MoELayer(nn.Module):
    """A mixture-of-experts FFN: ``y = sum_a weight[a] * expert[e_a](x[t_a])`` (+ shared expert).

    router: any sparse_bench router; experts: an ExpertBank; dispatch: a dispatcher object, any callable
    ``dispatch(x, plan, bank) -> y`` (``sparse_bench.dispatch.Strategy``, or
    ``sparse_bench.distributed.ExpertParallelDispatch``, whose bank holds only this rank's experts), or the
    name of one of ``sparse_bench.dispatch.DISPATCHERS`` ("loop", "einsum", "sorted", "padded", "grouped",
    "auto"). A dispatcher's ``check_layer(num_experts, bank)``, where it has one, says whether the bank suits
    the router's experts (else the bank must hold them all); its ``name`` becomes ``dispatch_name``.
    """

    def __init__(
        self,
        router: Router,
        experts: ExpertBank,
        dispatch: str | Callable = "sorted",
        shared_expert: SharedExpert | None = None,
    ):
        super().__init__()
        dispatcher = get_dispatcher(dispatch) if isinstance(dispatch, str) else dispatch
        if not callable(dispatcher):
            raise TypeError(f"dispatch must be a strategy name or a callable (x, plan, bank) -> y, got "
                            f"{type(dispatch).__name__}")
        check_layer = getattr(dispatcher, "check_layer", None)
        if check_layer is not None:
            check_layer(router.num_experts, experts)
        elif router.num_experts != experts.num_experts:
            raise ValueError(
                f"router has {router.num_experts} experts but the bank holds {experts.num_experts}"
            )
        d_router = getattr(router, "d_model", experts.d_model)
        if d_router != experts.d_model:
            raise ValueError(f"router expects d_model={d_router} but experts use {experts.d_model}")
        if shared_expert is not None:
            shared = shared_expert.expert
            if shared.d_model != experts.d_model:
                raise ValueError(f"the shared expert has d_model={shared.d_model} but the experts use "
                                 f"{experts.d_model}")
            if shared.w_in.dtype != experts.w_in.dtype:
                raise TypeError(f"the shared expert's weights are {shared.w_in.dtype} but the experts' are "
                                f"{experts.w_in.dtype}; cast one of them")
        self.router = router
        self.experts = experts
        self.dispatch_name = getattr(dispatcher, "name", type(dispatcher).__name__)
        self.dispatcher = dispatcher
        self.shared_expert = shared_expert

    @property
    def d_model(self) -> int:
        return self.experts.d_model

    def forward(
        self, x: torch.Tensor, token_ids: torch.Tensor | None = None, return_plan: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, RoutingPlan]:
        """x: (..., d_model) float; token_ids: (...) int64 for routers that hash token ids.

        Returns y with x's shape, or (y, plan) when ``return_plan`` (the plan is over the flattened tokens).
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (..., {self.d_model}), got {tuple(x.shape)}")
        tokens = x.reshape(-1, self.d_model)  # (T, d_model)
        if token_ids is not None and not isinstance(token_ids, torch.Tensor):
            raise TypeError(f"token_ids must be an int64 torch.Tensor, got {type(token_ids).__name__}")
        ids = token_ids.reshape(-1) if token_ids is not None else None
        if self.router.capabilities.needs_token_ids:  # such routers never read x's values, so never scan them
            check_finite(tokens, "x")
        plan = self.router(tokens, token_ids=ids)
        y = self.dispatcher(tokens, plan, self.experts)  # (T, d_model)
        if self.shared_expert is not None:
            y = y + self.shared_expert(tokens)
            check_finite_image(y, tokens, "x", "the layer's output")  # the sum may overflow, its terms not
        y = y.reshape(x.shape)
        return (y, plan) if return_plan else y
