"""Softmax over few experts on CPU, on the transposed layout.

ATen's CPU softmax vectorises along the reduced dimension, so it is slow when there are fewer experts than
fp32 lanes (16 with AVX-512); across tokens, on the transposed layout, it is fast (docs/performance-notes.md).
"""

from __future__ import annotations

import torch

SOFTMAX_ACROSS_TOKENS_BELOW_EXPERTS = 16  # fp32 lanes of an AVX-512 register


def expert_softmax(logits: torch.Tensor) -> torch.Tensor:
    """logits: (T, E). Returns softmax over the experts, (T, E), differentiable; with fewer than
    SOFTMAX_ACROSS_TOKENS_BELOW_EXPERTS experts it is computed on the transposed layout and returned as a
    (T, E) view of an (E, T) tensor (the same values up to rounding: within a few ulps)."""
    if logits.shape[1] < SOFTMAX_ACROSS_TOKENS_BELOW_EXPERTS:
        return torch.softmax(logits.t(), dim=0).t()
    return torch.softmax(logits, dim=-1)
