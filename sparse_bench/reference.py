"""The slow path: float64, one token at a time, plain Python control flow.

Nothing here shares code with the vectorised routers and dispatchers, so the tests that compare the two compare
independent implementations. Weights stay torch float64 scalars so autograd gives reference gradients.
An assignment is a tuple ``(token, expert, weight)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _softmax_row(row: torch.Tensor) -> torch.Tensor:
    shifted = row - row.max()
    e = shifted.exp()
    return e / e.sum()


def _ranked(values: list[float]) -> list[int]:
    """Indices sorted by decreasing value, lower index first on ties."""
    return sorted(range(len(values)), key=lambda i: (-values[i], i))


def topk_assignments(
    logits: torch.Tensor, k: int, normalize: bool, capacity: int | None, policy: str = "position"
):
    """Token-choice top-k with the capacity rule of docs/DESIGN.md §4. logits: (T, E) float64.
    Returns assignments, dropped."""
    T = logits.shape[0]
    choices = []  # per token: list of (expert, weight) in rank order
    for t in range(T):
        probs = _softmax_row(logits[t])
        top = _ranked(probs.tolist())[:k]
        weights = [probs[e] for e in top]
        if normalize:
            total = sum(weights)
            weights = [w / total for w in weights]
        choices.append(list(zip(top, weights)))
    if capacity is None:
        return [(t, e, w) for t in range(T) for e, w in choices[t]], 0
    used: dict[int, int] = {}
    kept, dropped = [], 0
    for r in range(k):
        tokens = list(range(T))
        if policy == "probability":
            tokens.sort(key=lambda t: (-float(choices[t][r][1].detach()), t))
        for t in tokens:
            e, w = choices[t][r]
            if used.get(e, 0) < capacity:
                used[e] = used.get(e, 0) + 1
                kept.append((t, e, w))
            else:
                dropped += 1
    return kept, dropped


def expert_choice_assignments(logits: torch.Tensor, capacity: int):
    """Each expert takes its ``capacity`` highest-probability tokens. logits: (T, E) float64."""
    T, E = logits.shape
    probs = [_softmax_row(logits[t]) for t in range(T)]
    out = []
    for e in range(E):
        column = [float(probs[t][e].detach()) for t in range(T)]
        for t in _ranked(column)[:capacity]:
            out.append((t, e, probs[t][e]))
    return out


def sinkhorn_matrix(logits: np.ndarray, temperature: float, iterations: int, tol: float) -> np.ndarray:
    """Plain alternating row/column scaling of exp(logits / temperature) in float64 (no log domain)."""
    T, E = logits.shape
    p = np.exp((logits - logits.max()) / temperature)
    for _ in range(iterations):
        p = p / p.sum(axis=1, keepdims=True) / T
        p = p / p.sum(axis=0, keepdims=True) / E
        if np.abs(p.sum(axis=1) * T - 1).max() < tol:
            break
    return p


def sinkhorn_assignments(logits: torch.Tensor, k: int, temperature: float, iterations: int, tol: float):
    """Top-k of each row of the Sinkhorn matrix (ties: higher softmax first), weighted by the plain softmax."""
    balanced = sinkhorn_matrix(logits.detach().numpy(), temperature, iterations, tol)
    out = []
    for t in range(logits.shape[0]):
        probs = _softmax_row(logits[t])
        prob_list = probs.detach().tolist()
        ranked = sorted(range(len(prob_list)), key=lambda e: (-balanced[t][e], -prob_list[e], e))
        for e in ranked[:k]:
            out.append((t, e, probs[e]))
    return out


def simhash_bucket(row: np.ndarray, directions: np.ndarray) -> int:
    """Bucket of one row: bit j set when row . directions[:, j] >= 0."""
    return sum(1 << j for j in range(directions.shape[1]) if float(row @ directions[:, j]) >= 0)


def expert_output(x: torch.Tensor, w_in, w_out, b_in, b_out, activation: str) -> torch.Tensor:
    """One expert on one token, spelled out. x: (d,) float64; w_in: (d, h or 2h); w_out: (h, d)."""
    pre = x @ w_in + (b_in if b_in is not None else 0.0)
    if activation == "relu":
        hidden = pre.clamp(min=0.0)
    elif activation == "gelu":
        hidden = 0.5 * pre * (1.0 + torch.erf(pre / math.sqrt(2.0)))
    elif activation == "swiglu":
        h = w_out.shape[0]
        gate, up = pre[:h], pre[h:]
        hidden = gate / (1.0 + torch.exp(-gate)) * up
    else:
        raise ValueError(f"unknown activation {activation!r}")
    return hidden @ w_out + (b_out if b_out is not None else 0.0)


def moe_output(x: torch.Tensor, assignments, params: dict, activation: str) -> torch.Tensor:
    """y[t] = sum over t's assignments of weight * expert(x[t]); x: (T, d) float64.

    params: float64 tensors ``w_in`` (E, d, ·), ``w_out`` (E, h, d) and optional ``b_in``, ``b_out``.
    """
    rows = [x.new_zeros(x.shape[1]) for _ in range(x.shape[0])]
    for t, e, w in assignments:
        b_in = params["b_in"][e] if params.get("b_in") is not None else None
        b_out = params["b_out"][e] if params.get("b_out") is not None else None
        rows[t] = rows[t] + w * expert_output(
            x[t], params["w_in"][e], params["w_out"][e], b_in, b_out, activation
        )
    return torch.stack(rows) if rows else x.new_zeros(0, x.shape[1])
