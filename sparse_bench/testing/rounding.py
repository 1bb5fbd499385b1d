"""Rounding-error bounds behind the suite's tolerances (Higham, Accuracy and Stability of Numerical
Algorithms, 2nd ed., ch. 3). No tolerance in the suite is tuned: each is gamma_n of the dtype for a stated n.

A computation built of sums and products rounds each operation with a relative error below the unit roundoff
u, so its result is the exact sum over all product terms, each multiplied by at most n factors (1 + delta_i):
``|computed - exact| <= gamma_n * (the same computation on absolute values)``, n being the most roundings
along one chain from inputs to the result, ``gamma_n = n u / (1 - n u)``.
"""

from __future__ import annotations

import torch

# Roundings charged to one elementwise nonlinearity or normalisation (an activation, a softmax entry, a
# sigmoid gate): libm-grade exp/erf within 1 ulp, then at most an add, a divide, a multiply and a cast: 8.
ELEMENTWISE_ROUNDINGS = 8


def unit_roundoff(dtype: torch.dtype) -> float:
    """u = eps / 2: the largest relative error of one correctly rounded operation in ``dtype``."""
    return torch.finfo(dtype).eps / 2


def gamma(n: int, dtype: torch.dtype) -> float:
    """gamma_n = n u / (1 - n u), the relative error bound of n chained roundings in ``dtype``."""
    nu = n * unit_roundoff(dtype)
    if nu >= 1:
        raise ValueError(f"{n} roundings in {dtype} admit no bound (n u = {nu:.3g} >= 1)")
    return nu / (1 - nu)


def reordering_rtol(d_model: int, num_experts: int, dtype: torch.dtype) -> float:
    """Relative difference allowed between two computations of one token's routing weights that may reduce in
    different orders (the token at another position or in another batch, another kernel's blocking).

    A weight comes from its token's logits (a product over d_model entries each), a normalisation over the
    num_experts logits and a few elementwise roundings: each computation lies within gamma_n of the exact
    weight, n = d_model + num_experts + ELEMENTWISE_ROUNDINGS, so two lie within 2 gamma_n of each other. The
    bound is relative to the weight for logits of order one (the suite's standard-normal tokens through a gate
    scaled like d_model^-1/2), where the logits' dot products do not cancel much.
    """
    return 2 * gamma(d_model + num_experts + ELEMENTWISE_ROUNDINGS, dtype)


def moe_chain_length(d_model: int, d_hidden: int, num_experts: int, num_tokens: int) -> int:
    """The most roundings along one chain behind any output or gradient entry of an MoE layer.

    Three passes (forward; backward through w_out; backward through w_in) each take at most a product over
    d_model + 2 d_hidden terms (2 d_hidden: SwiGLU's fused gate and up projections), ELEMENTWISE_ROUNDINGS for
    the activation or its derivative, and 2 for bias and combine weight; the combine sums over at most
    num_experts assignments of a token, forward and backward; a parameter gradient sums over at most
    num_tokens tokens. A shared expert runs beside the routed ones, on a chain no longer than theirs.
    """
    one_pass = d_model + 2 * d_hidden + ELEMENTWISE_ROUNDINGS + 2
    return 3 * one_pass + 2 * num_experts + num_tokens
