"""The float64 per-token reference of an MoE layer's computation, and the magnitudes that bound its rounding.

Routing comes from the layer's own plan (the router's contract is check_router's): the reference computes
``y_t = sum over t's assignments of weight * expert(x_t)`` (+ the shared expert) one token at a time in
float64 with ``sparse_bench.reference``, so it shares no code with the dispatch strategies. The magnitudes run
the same computation vectorised on absolute values (see rounding.py) with each nonlinearity f replaced by a
majorant
m(P) >= |f(z)| for |z| <= P whose slope also bounds |f'| plus the change of f' under the rounding of z
(``slope + curvature * P``): autograd through the majorant then bounds every gradient's terms too.
"""

from __future__ import annotations

import torch

from .. import reference
from ..experts import ExpertBank
from .rounding import gamma

# max over z of |f'(z)| and |f''(z)|: gelu(z) = z Phi(z) peaks in slope at z = sqrt(2), in curvature at 0
# (2 phi(0)); SwiGLU's silu(z) = z sigmoid(z) at z = 2.3994 and 0. Rounded up in the last digit.
ACTIVATION_SLOPE = {"relu": 1.0, "gelu": 1.1290, "swiglu": 1.0999}
ACTIVATION_CURVATURE = {"relu": 0.0, "gelu": 0.7979, "swiglu": 0.5}
SIGMOID_SLOPE, SIGMOID_CURVATURE = 0.25, 0.0963  # the shared expert's gate: max |sigmoid'|, max |sigmoid''|

BANK_TENSORS = ("w_in", "w_out", "b_in", "b_out")


def layer_tensors(layer) -> dict[str, torch.Tensor]:
    """The layer's parameters that its expert computation reads, by name: ``experts.w_in`` ... and, with a
    shared expert, ``shared_expert.expert.w_in`` ... and ``shared_expert.gate`` (not the router's)."""
    names = ["experts." + name for name in BANK_TENSORS if getattr(layer.experts, name) is not None]
    shared = getattr(layer, "shared_expert", None)
    if shared is not None:
        names += ["shared_expert.expert." + name for name in BANK_TENSORS
                  if getattr(shared.expert, name) is not None]
        if shared.gate is not None:
            names.append("shared_expert.gate")
    params = dict(layer.named_parameters())
    return {name: params[name] for name in names}


def _bank(params: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor | None]:
    return {name: params.get(prefix + name) for name in BANK_TENSORS}


def _expert_slice(bank: dict[str, torch.Tensor | None], expert: int = 0) -> dict[str, torch.Tensor | None]:
    """One expert's slice of a bank's tensors (expert 0 by default: a shared expert is a bank of one)."""
    return {name: (value[expert] if value is not None else None) for name, value in bank.items()}


def reference_output(layer, x: torch.Tensor, token: list[int], expert: list[int], weight: torch.Tensor,
                     params: dict[str, torch.Tensor]) -> torch.Tensor:
    """y (T, d_model) float64, token by token: assignments (token[a], expert[a], weight[a]), shared expert.

    x: (T, d_model) float64; weight: (A,) float64; params: float64 tensors named as by ``layer_tensors``.
    """
    assignments = [(t, e, weight[a]) for a, (t, e) in enumerate(zip(token, expert))]
    y = reference.moe_output(x, assignments, _bank(params, "experts."), layer.experts.activation)
    shared = getattr(layer, "shared_expert", None)
    if shared is None:
        return y
    bank = _expert_slice(_bank(params, "shared_expert.expert."))
    gate = params.get("shared_expert.gate")
    rows = []
    for t in range(x.shape[0]):
        out = reference.expert_output(x[t], bank["w_in"], bank["w_out"], bank["b_in"], bank["b_out"],
                                      shared.expert.activation)
        rows.append(out if gate is None else torch.sigmoid(x[t] @ gate) * out)
    return y + torch.stack(rows) if rows else y


def _expert_majorant(rows_abs: torch.Tensor, rows: torch.Tensor, bank_abs: dict, bank: dict, activation: str,
                     dtype: torch.dtype, tolerance_gamma: float) -> torch.Tensor:
    """(R, d_model) majorant of one expert's output on R rows; rows_abs: |x| rows (from the leaf), rows: x."""
    pre_abs = rows_abs @ bank_abs["w_in"]
    if bank_abs["b_in"] is not None:
        pre_abs = pre_abs + bank_abs["b_in"]
    slope, curvature = ACTIVATION_SLOPE[activation], ACTIVATION_CURVATURE[activation]
    if activation == "swiglu":
        d_hidden = bank_abs["w_out"].shape[0]
        gate, up = pre_abs[:, :d_hidden], pre_abs[:, d_hidden:]
        hidden = (slope * gate + curvature * gate.square() / 2) * up
    elif activation == "gelu":
        hidden = slope * pre_abs + curvature * pre_abs.square() / 2
    else:
        # relu' jumps at 0: where the float pre-activation may have the other sign than the exact one (|pre|
        # within its rounding bound gamma_{d+1} P), the float derivative may be wrong by a whole term. Those
        # units get slope 1 / tolerance_gamma: the tolerance, tolerance_gamma times the magnitude, covers it.
        pre = rows @ bank["w_in"] + (bank["b_in"] if bank["b_in"] is not None else 0.0)
        ambiguous = pre.abs() <= gamma(rows.shape[1] + 1, dtype) * pre_abs.detach()
        hidden = pre_abs + ambiguous * (pre_abs - pre_abs.detach()) / tolerance_gamma
    out = hidden @ bank_abs["w_out"]
    return out + bank_abs["b_out"] if bank_abs["b_out"] is not None else out


def magnitudes(layer, x_abs: torch.Tensor, x: torch.Tensor, token: torch.Tensor, expert: torch.Tensor,
               weight_abs: torch.Tensor, params_abs: dict[str, torch.Tensor], params: dict[str, torch.Tensor],
               dtype: torch.dtype, tolerance_gamma: float) -> torch.Tensor:
    """(T, d_model) float64: the layer's computation on absolute values with majorant nonlinearities.

    x_abs, weight_abs, params_abs: |x|, |weights|, |parameters| (leaves, so autograd of
    ``(M * |upstream|).sum()`` gives each gradient's magnitude); x, params: the float64 values (for relu's
    sign test); token, expert: (A,) int64 CPU; dtype: the layer's float dtype; tolerance_gamma: the gamma the
    tolerances multiply M by.
    """
    total = x_abs.new_zeros(x_abs.shape)
    bank_abs, bank = _bank(params_abs, "experts."), _bank(params, "experts.")
    activation = layer.experts.activation
    for e in range(layer.experts.num_experts):
        chosen = (expert == e).nonzero().flatten()
        if not chosen.numel():
            continue
        rows = token[chosen]
        one_abs, one = _expert_slice(bank_abs, e), _expert_slice(bank, e)
        out = _expert_majorant(x_abs[rows], x[rows], one_abs, one, activation, dtype, tolerance_gamma)
        total = total.index_add(0, rows, weight_abs[chosen].unsqueeze(1) * out)
    shared = getattr(layer, "shared_expert", None)
    if shared is None:
        return total
    shared_abs = _expert_slice(_bank(params_abs, "shared_expert.expert."))
    shared_values = _expert_slice(_bank(params, "shared_expert.expert."))
    out = _expert_majorant(x_abs, x, shared_abs, shared_values, shared.expert.activation, dtype,
                           tolerance_gamma)
    gate_abs = params_abs.get("shared_expert.gate")
    if gate_abs is None:
        return total + out
    z = x_abs @ gate_abs  # (T,) bounds |x . gate|; sigmoid <= 1 <= the majorant's value at 0
    scale = 1.0 + SIGMOID_SLOPE * z + SIGMOID_CURVATURE * z.square() / 2
    return total + scale.unsqueeze(1) * out


def bank_of(layer) -> ExpertBank:
    """The layer's routed experts (an ExpertBank), with a clear error for layers the reference cannot read."""
    bank = getattr(layer, "experts", None)
    if not isinstance(bank, ExpertBank):
        raise TypeError(f"check_moe_layer needs layer.experts to be an ExpertBank, got {type(bank).__name__}")
    return bank
