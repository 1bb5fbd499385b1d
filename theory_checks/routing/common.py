"""Shared pieces of the routing checks (docs/THEORY.md §C): area and source labels, the gate width of routers
driven through ``plan_from_logits``, float64 epsilon, and the one generator a check draws from."""

from __future__ import annotations

import torch

SOURCE = "routing §C"
AREA = "routing"
GATE_DIM = 4  # d_model of routers driven through plan_from_logits (their gate weight is unused)
F64_EPS = 2.0**-52


def generator(seed: int) -> torch.Generator:
    """The one CPU generator a check draws everything from."""
    return torch.Generator().manual_seed(int(seed))
