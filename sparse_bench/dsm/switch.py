"""A Switch-style top-1 MoE regressor trained end to end (router, experts, readout), to set beside DSMs.

``y(x) = gate_e(x) * relu(x W_in[e] + b_in[e]) W_out[e]`` with e = route(x): E experts of h hidden units and
``outputs`` outputs each, no output bias. Routers (from ``sparse_bench.routing``): "learned" (``TopKRouter``,
k = 1, the raw probability as the gate: Switch), "hash" (``HashRouter`` on x's bits: a fixed random hash
layer), "lsh" (``LSHRouter``, one SimHash table: a fixed locality-sensitive router). The first layer starts
as ``TopKDSM(d, E * h, h, seed)``'s frozen units (rows N(0, I_d / d), offsets U[-1, 1]), expert e holding
units e h .. (e + 1) h - 1; the readout starts at zero, like a trained DSM readout.

FLOPs per input follow the DSM convention (one multiply-add = one FLOP, routing not counted): (d + outputs) h,
so with one output a model of h hidden units per expert costs what a DSM with h active units costs.
``routing_flops_per_input`` states the router's own cost. ``as_dsm`` restates the model as the DSM it is
(``routed.block_routed_dsm``); ``refit_readout`` re-solves its readout in closed form over those units.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..routing.hash_router import HashRouter
from ..routing.lsh import LSHRouter
from ..routing.topk import TopKRouter
from ..validation import (check_finite, check_generator, check_int_in_range, check_real, check_seed,
                          check_tokens)
from .masked import RIDGE_GRID, random_relu_layer
from .readout import select_ridge
from .routed import RoutedDSM, block_routed_dsm, top1_routing
from .training import ReadoutTraining

ROUTERS = ("learned", "hash", "lsh")


class SwitchRegressor(nn.Module):
    """Top-1 MoE with ``num_experts`` ReLU experts of ``hidden`` units and ``outputs`` outputs (see module).

    d: input dimension; router: one of ROUTERS; seed: draws the first layer and the router; dtype: of the
    parameters (float32 trains twice as fast as float64 here).
    """

    def __init__(self, d: int, num_experts: int, hidden: int, outputs: int = 1, router: str = "learned",
                 seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.d = check_int_in_range(d, "d", 1)
        self.num_experts = check_int_in_range(num_experts, "num_experts", 1)
        self.hidden = check_int_in_range(hidden, "hidden", 1)
        self.outputs = check_int_in_range(outputs, "outputs", 1)
        if router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {router!r}")
        self.router_kind, self.seed = router, check_seed(seed)
        if router == "learned":
            self.router = TopKRouter(d, num_experts, k=1, generator=torch.Generator().manual_seed(seed))
        elif router == "hash":
            self.router = HashRouter(num_experts, key="input", seed=seed)
        else:
            self.router = LSHRouter(d, num_experts, family="simhash", seed=seed)
        self.router.to(dtype)
        weight, bias = random_relu_layer(d, num_experts * hidden, seed)  # (E h, d), (E h,)
        w_in = weight.reshape(num_experts, hidden, d).transpose(1, 2)  # (E, d, h)
        self.w_in = nn.Parameter(w_in.to(dtype).contiguous())
        self.b_in = nn.Parameter(bias.reshape(num_experts, hidden).to(dtype))
        self.w_out = nn.Parameter(torch.zeros(num_experts, hidden, outputs, dtype=dtype))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (n, d). Returns (predictions (n, outputs), the router's load-balancing loss (0 if none))."""
        check_tokens(x, self.d)
        x = x.to(self.w_in.dtype)
        plan = self.router(x)
        rows = x[plan.token_index]  # (n, d), grouped by expert
        parts, start = [], 0
        for e, count in enumerate(plan.expert_counts.tolist()):
            if count:
                seg = rows[start:start + count]
                parts.append(torch.relu(seg @ self.w_in[e] + self.b_in[e]) @ self.w_out[e])
                start += count
        out = torch.cat(parts) * plan.weight.unsqueeze(1)  # (n, outputs), gate times expert output
        pred = out.new_zeros(x.shape[0], self.outputs).index_copy(0, plan.token_index, out)
        balance = plan.aux.get("load_balancing_loss", x.new_zeros(()))
        return pred, balance

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d). Returns (n,) for one output, else (n, outputs), without a graph."""
        with torch.no_grad():
            pred = self(x)[0]
        return pred.squeeze(1) if self.outputs == 1 else pred

    def expert_of(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d). Returns the (n,) int64 expert each input is routed to."""
        check_tokens(x, self.d)
        return top1_routing(self.router)(x.to(self.w_in.dtype))[0]

    def as_dsm(self) -> RoutedDSM:
        """The DSM this model computes: E * hidden units, the routed expert's block active, gates in phi."""
        return block_routed_dsm(self.w_in, self.b_in, self.w_out, None, torch.relu, top1_routing(self.router))

    def refit_readout(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                      ridges: tuple = RIDGE_GRID) -> list[float]:
        """Re-solve W_out by ridge least squares over the model's masked units (router and first layer kept),
        the ridge chosen per output on (x_val, y_val) from ``ridges``. y, y_val: (n,) or (n, outputs).
        Returns the chosen ridge per output."""
        dsm = self.as_dsm()
        train, val = dsm.masked_features(x), dsm.masked_features(x_val)  # (n, E h), (m, E h)
        y, y_val = _columns(y, x.shape[0], self.outputs, "y"), _columns(y_val, x_val.shape[0], self.outputs,
                                                                        "y_val")
        fits = [select_ridge(train, y[:, j], val, y_val[:, j], ridges) for j in range(self.outputs)]
        weights = torch.stack([fit[1] for fit in fits], dim=1)  # (E h, outputs)
        with torch.no_grad():
            self.w_out.copy_(weights.reshape(self.w_out.shape))
        return [fit[0] for fit in fits]

    def flops_per_input(self) -> int:
        """Multiply-adds per input of the routed expert (DSM convention): (d + outputs) * hidden."""
        return (self.d + self.outputs) * self.hidden

    def routing_flops_per_input(self) -> int:
        """Multiply-adds of the router: d * E logits (learned), d * bits projections (lsh), 0 (hash)."""
        if self.router_kind == "learned":
            return self.d * self.num_experts
        return self.d * self.router.num_hashes if self.router_kind == "lsh" else 0


def _columns(y: torch.Tensor, n: int, outputs: int, name: str) -> torch.Tensor:
    """y: (n,) for one output or (n, outputs), floating and finite; returned as (n, outputs)."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.shape not in ((n, outputs),) + (
            ((n,),) if outputs == 1 else ()):
        either = f" or ({n},)" if outputs == 1 else ""
        raise ValueError(f"{name} must be a floating ({n}, {outputs}){either} tensor, "
                         f"got {getattr(y, 'shape', type(y).__name__)}")
    check_finite(y, name)
    return y.reshape(n, outputs)


@dataclass(frozen=True)
class SwitchRun:
    """What ``train_switch`` returns: the chosen learning rate and epoch (1-based), the validation MSE of
    every learning rate after every epoch, the training MSE of the kept weights, and the share of training
    inputs each expert receives under them."""

    lr: float
    epoch: int
    val_mse: list
    train_mse: float
    expert_share: list


def train_switch(model: SwitchRegressor, x: torch.Tensor, y: torch.Tensor, training: ReadoutTraining,
                 generator: torch.Generator, x_val: torch.Tensor, y_val: torch.Tensor,
                 balance: float = 0.01) -> SwitchRun:
    """Train every parameter of ``model`` (router, experts, readout) by ``training``'s optimizer on the mean
    squared error plus ``balance`` times the Switch load-balancing loss, from the model's current weights.

    x: (n, d); y: (n,) or (n, outputs); x_val, y_val: the validation set that chooses the learning rate and
    the epoch (early stopping). generator: draws the minibatch orders. Each learning rate trains its own copy
    of the starting weights; the model is left holding the best (rate, epoch)'s weights. ValueError if every
    rate diverges (non-finite validation error throughout).
    """
    if not isinstance(model, SwitchRegressor):
        raise TypeError(f"model must be a SwitchRegressor, got {type(model).__name__}")
    if not isinstance(training, ReadoutTraining):
        raise TypeError(f"training must be a ReadoutTraining, got {type(training).__name__}")
    check_generator(generator)
    balance = check_real(balance, "balance")
    if balance < 0:
        raise ValueError(f"balance must be >= 0, got {balance}")
    check_tokens(x, model.d)
    check_tokens(x_val, model.d, "x_val")
    dtype = model.w_in.dtype
    y = _columns(y, x.shape[0], model.outputs, "y").to(dtype)
    y_val = _columns(y_val, x_val.shape[0], model.outputs, "y_val").to(dtype)
    x, x_val = x.to(dtype), x_val.to(dtype)
    start = copy.deepcopy(model.state_dict())
    best_err, best_state, chosen = math.inf, None, (training.lrs[0], 0)
    curves = []
    n = x.shape[0]
    batch = n if training.batch_size is None else min(training.batch_size, n)
    for lr in training.lrs:
        model.load_state_dict(start)
        params = list(model.parameters())
        if training.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=lr)
        else:
            opt = torch.optim.SGD(params, lr=lr, momentum=training.momentum)
        curve = []
        for epoch in range(1, training.epochs + 1):
            order = torch.arange(n) if batch == n else torch.randperm(n, generator=generator)
            for first in range(0, n, batch):
                index = order[first:first + batch]
                pred, aux = model(x[index])
                loss = ((pred - y[index]) ** 2).mean() + balance * aux
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            err = float(((model.predict(x_val).reshape(y_val.shape) - y_val) ** 2).mean())
            curve.append(err)
            if math.isfinite(err) and err < best_err:
                best_err, chosen = err, (lr, epoch)
                best_state = copy.deepcopy(model.state_dict())
        curves.append(curve)
    if best_state is None:
        raise ValueError(f"training diverged (non-finite validation error) at every learning rate of "
                         f"{training.lrs}")
    model.load_state_dict(best_state)
    train_mse = float(((model.predict(x).reshape(y.shape) - y) ** 2).mean())
    share = torch.bincount(model.expert_of(x), minlength=model.num_experts).double() / n
    return SwitchRun(chosen[0], chosen[1], curves, train_mse, share.tolist())
