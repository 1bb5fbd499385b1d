"""``result_from_cells``: the record of a check whose verdict is a family of per-cell tests, Holm-corrected.

Many checks test one prediction in several cells (sizes, angles, world sizes...), one p-value per cell, and
pass when Holm's procedure rejects none of them. Their record is built the same way every time: the verdict
from Holm, a headline cell's prediction, measurement and interval, the smallest Holm-adjusted p-value, and
the cells in the details.
"""

from __future__ import annotations

import numpy as np

from .result import ALPHA, CheckResult, make_result
from .stats import holm, holm_adjusted


def result_from_cells(name: str, cells: list[dict], *, seed: int, profile: str, n: int, test: str,
                      head: dict | None = None, passed: bool = True, alpha: float = ALPHA,
                      details: dict | None = None, **fields) -> CheckResult:
    """The record of check ``name``: it passes iff ``passed`` (the check's other conditions) holds and Holm at
    ``alpha`` rejects no cell.

    cells: one dict per test with its "p_value" and, unless ``fields`` name them, "predicted", "measured"
    and optionally "ci" (low, high); stored as ``details["cells"]`` beside ``details``.
    head: the cell whose predicted, measured and ci headline the record (default: the smallest p-value).
    The record's p_value is the smallest Holm-adjusted p-value, so it is <= alpha exactly when a cell is
    rejected. fields: the rest of ``make_result``'s arguments (margin, params), or values that
    replace the head's (predicted, measured, ci).
    """
    if not cells:
        raise ValueError(f"check {name!r}: cells must hold at least one test")
    p_values = [cell["p_value"] for cell in cells]
    head = cells[int(np.argmin(p_values))] if head is None else head
    summary = {"predicted": head.get("predicted"), "measured": head.get("measured"),
               "ci": None if head.get("ci") is None else tuple(head["ci"]),
               "p_value": min(holm_adjusted(p_values))}
    return make_result(name, passed=passed and not any(holm(p_values, alpha)), seed=seed, profile=profile,
                       n=n, test=test, alpha=alpha, details={"cells": cells, **(details or {})},
                       **{**summary, **fields})
