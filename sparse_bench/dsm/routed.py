"""DSMs whose mask a router chooses: a top-1 MoE block, a hash layer, the LSH model (docs/THEORY.md §A, §3).

The paper's DSM is ``g(x) = A (mask(x) * phi(x))`` with phi a dense representation and mask(x) keeping s of
the t units. ``RoutedDSM`` computes exactly that, densely: every unit's phi, then the mask, then one readout
product, so it shares no dispatch code with the models it restates. The constructors build the DSM that a
routed model *is*:

- ``moe_as_dsm(layer)``: a top-1 ``MoELayer`` (a Switch router, a hash router, one LSH table). Units: the E
  experts' hidden units side by side (t = E h, plus one constant unit per expert with an output bias); phi:
  each expert's activations times the combine weight that expert would get (Switch: its router probability;
  hash and LSH routers: 1); mask: the block of the expert the router picks (s = h); A: the experts' output
  weights stacked.
- ``block_routed_dsm``: the same from stacked expert weights and a routing function, for models with their
  own layout (``SwitchRegressor``).
- ``lsh_as_dsm(model)``: an ``LSHModel``. Units: every fitted bucket of every table plus one "unseen bucket"
  unit per table; phi = 1 (indicator); mask: x's bucket in each table (s = number of tables); A: the bucket
  constants over the number of tables.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..validation import check_int_in_range, check_tokens

Routing = Callable[[torch.Tensor], tuple]  # x (n, d) -> (expert (n,) int64, gates (n, E) float)
PREDICT_CHUNK_ELEMENTS = 2**18  # predict forms (rows, t) features this many entries at once (2 MiB, float64)


class RoutedDSM:
    """g(x) = (mask(x) * phi(x)) @ readout over t units, s of them active per input.

    d: input dimension; features: x (n, d) -> (n, t) float64 phi(x); mask: x (n, d) -> (n, t) bool with
    exactly ``active_units`` True per row; readout: (t,) or (t, out) float64. ``predict`` returns (n,) or
    (n, out) float64, like the readout's trailing shape.
    """

    def __init__(self, d: int, features: Callable, mask: Callable, readout: torch.Tensor, active_units: int):
        self.d = check_int_in_range(d, "d", 1)
        if not isinstance(readout, torch.Tensor) or readout.dim() not in (1, 2) \
                or not readout.is_floating_point():
            raise ValueError(f"readout must be a floating (t,) or (t, out) tensor, got "
                             f"{getattr(readout, 'shape', type(readout).__name__)}")
        self.readout = readout.detach().to(torch.float64)
        self.total_units = self.readout.shape[0]
        self.active_units = check_int_in_range(active_units, "active_units", 1, self.total_units)
        self._features, self._mask = features, mask

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d). Returns phi(x), (n, t) float64, every unit (the mask not applied)."""
        check_tokens(x, self.d)
        return self._features(x).to(torch.float64)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d). Returns (n, t) bool; ValueError unless every row keeps exactly ``active_units``."""
        check_tokens(x, self.d)
        keep = self._mask(x)
        counts = keep.sum(dim=1)
        if keep.shape != (x.shape[0], self.total_units) or bool((counts != self.active_units).any()):
            raise ValueError(f"the mask must keep exactly {self.active_units} of {self.total_units} units "
                             f"per input, got shape {tuple(keep.shape)} with counts "
                             f"{counts.unique().tolist()}")
        return keep

    def masked_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d). Returns mask(x) * phi(x), (n, t) float64: zero outside the active units."""
        phi = self.features(x)
        return torch.where(self.mask(x), phi, torch.zeros_like(phi))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d). Returns A (mask(x) * phi(x)): (n,) or (n, out) float64, a few rows at a time."""
        check_tokens(x, self.d)
        rows = max(1, PREDICT_CHUNK_ELEMENTS // self.total_units)
        return torch.cat([self.masked_features(chunk) @ self.readout for chunk in x.split(rows)])

    forward = predict


def block_routed_dsm(w_in: torch.Tensor, b_in: torch.Tensor | None, w_out: torch.Tensor,
                     b_out: torch.Tensor | None, activate: Callable, route: Routing) -> RoutedDSM:
    """The DSM of a top-1 block-routed layer ``y = gate_e(x) (act(x w_in[e] + b_in[e]) w_out[e] + b_out[e])``.

    w_in: (E, d, in_width); b_in: (E, in_width) or None; w_out: (E, h, out); b_out: (E, out) or None;
    activate: (..., in_width) -> (..., h); route: x -> (expert (n,) int64, gates (n, E)), gates[i, e] being
    the combine weight expert e would get for input i. Units per expert: h, plus one constant unit with b_out.
    """
    if w_in.dim() != 3 or w_out.dim() != 3 or w_in.shape[0] != w_out.shape[0]:
        raise ValueError(f"w_in must be (E, d, in_width) and w_out (E, h, out) with the same E, got "
                         f"{tuple(w_in.shape)} and {tuple(w_out.shape)}")
    experts, d, _ = w_in.shape
    hidden, out = w_out.shape[1], w_out.shape[2]
    w_in, w_out = w_in.detach().to(torch.float64), w_out.detach().to(torch.float64)
    b_in = None if b_in is None else b_in.detach().to(torch.float64)
    block = hidden + (b_out is not None)  # units per expert
    readout = w_out if b_out is None else torch.cat([w_out, b_out.detach().to(torch.float64).unsqueeze(1)], 1)
    readout = readout.reshape(experts * block, out)  # (E * block, out), expert-major like the units

    def features(x: torch.Tensor) -> torch.Tensor:
        gates = route(x)[1].to(torch.float64).T.unsqueeze(2)  # (E, n, 1), routed on x as given
        pre = torch.einsum("nd,edw->enw", x.to(torch.float64), w_in)  # (E, n, in_width): every expert
        if b_in is not None:
            pre = pre + b_in.unsqueeze(1)
        act = activate(pre)  # (E, n, h)
        if b_out is not None:
            act = torch.cat([act, act.new_ones(experts, x.shape[0], 1)], dim=2)
        return (gates * act).permute(1, 0, 2).reshape(x.shape[0], experts * block)

    def mask(x: torch.Tensor) -> torch.Tensor:
        expert = route(x)[0]  # (n,), on x as given: a hash of x's bits depends on its dtype
        keep = torch.zeros(x.shape[0], experts, block, dtype=torch.bool)
        keep[torch.arange(x.shape[0]), expert] = True
        return keep.reshape(x.shape[0], experts * block)

    return RoutedDSM(d, features, mask, readout.squeeze(1) if out == 1 else readout, block)


def top1_routing(router) -> Routing:
    """route(x) of a top-1 dropless router: each input's expert and every expert's combine weight, (n,) int64
    and (n, E) float64. ValueError for a router that is not top-1 and dropless or does not read x."""
    from ..routing.base import expert_softmax
    from ..routing.hash_router import HashRouter
    from ..routing.lsh import LSHRouter
    from ..routing.topk import TopKRouter

    if isinstance(router, TopKRouter) and router.k == 1 and router.expert_capacity(1) is None:
        normalized = router.normalize  # k = 1 renormalised: weight 1
    elif isinstance(router, HashRouter) or (isinstance(router, LSHRouter) and router.num_tables == 1):
        normalized = True  # weight 1
    else:
        raise ValueError(f"a block-routed DSM needs a top-1 dropless router (TopKRouter k=1 without "
                         f"capacity, HashRouter, LSHRouter with one table), got {type(router).__name__}")
    if router.capabilities.needs_token_ids:
        raise ValueError("a block-routed DSM needs a router that reads x (HashRouter(key='input')): a DSM's "
                         "mask is a function of its input")

    def route(x: torch.Tensor) -> tuple:
        with torch.no_grad():
            plan = router(x)
            expert = torch.empty(x.shape[0], dtype=torch.int64)
            expert[plan.token_index] = plan.expert_index
            if normalized:
                gates = torch.ones(x.shape[0], router.num_experts, dtype=torch.float64)
            else:
                gates = expert_softmax(router.logits(x)).to(torch.float64)
        return expert, gates

    return route


def moe_as_dsm(layer) -> RoutedDSM:
    """The DSM that a top-1 ``MoELayer`` computes (see the module docstring). Raises ValueError for a layer
    with a shared expert, expert-parallel dispatch, or a router that is not top-1 and dropless."""
    from ..moe import MoELayer

    if not isinstance(layer, MoELayer):
        raise TypeError(f"layer must be a MoELayer, got {type(layer).__name__}")
    if layer.shared_expert is not None or layer.dispatch_name == "expert_parallel":
        raise ValueError("moe_as_dsm takes a layer without a shared expert, on one process")
    bank = layer.experts
    if layer.router.training and getattr(layer.router, "jitter", 0.0):
        raise ValueError("the router adds jitter in training mode: put the layer in eval mode first")
    return block_routed_dsm(bank.w_in, bank.b_in, bank.w_out, bank.b_out, bank.activate,
                            top1_routing(layer.router))


def lsh_units(model, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The units of a fitted ``LSHModel`` that x activates: table l's fitted buckets (sorted by id), then its
    unseen-bucket unit, tables one after another. x: (n, d). Returns ((n, num_tables) int64 unit of each input
    in each table, t the total number of units)."""
    from .lsh_model import LSHModel

    if not isinstance(model, LSHModel):
        raise TypeError(f"model must be an LSHModel, got {type(model).__name__}")
    if model.default is None:
        raise ValueError("fit the LSH model first: its fitted buckets are the units")
    check_tokens(x, model.d)
    columns, start = [], 0
    for h, ids in zip(model.hashes, model.table_ids):
        query = h.bucket(x)  # (n,)
        pos = torch.searchsorted(ids, query).clamp_max(ids.numel() - 1)
        columns.append(start + torch.where(ids[pos] == query, pos, torch.full_like(pos, ids.numel())))
        start += ids.numel() + 1
    return torch.stack(columns, dim=1), start


def lsh_as_dsm(model) -> RoutedDSM:
    """The DSM that a fitted ``LSHModel`` computes (see the module docstring)."""
    total = lsh_units(model, torch.zeros(0, model.d))[1]
    readout = torch.cat([torch.cat([means, means.new_tensor([model.default])])
                         for means in model.table_means]) / model.num_tables  # (t,)

    def mask(x: torch.Tensor) -> torch.Tensor:
        units = lsh_units(model, x)[0]  # (n, tables)
        return torch.zeros(x.shape[0], total, dtype=torch.bool).scatter_(1, units, True)

    def features(x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], total, dtype=torch.float64)

    return RoutedDSM(model.d, features, mask, readout, model.num_tables)
