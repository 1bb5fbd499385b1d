"""``framework.result_from_cells``: the record of a Holm-corrected family of per-cell tests."""

import pytest

from theory_checks.framework import ALPHA, holm_adjusted, result_from_cells

SOURCE = {"source": "unit", "prediction": "p"}  # the name is not registered: the record states its claim


def _cells(*p_values):
    return [{"k": i, "predicted": 0.5, "measured": 0.5 + i / 100, "ci": [0.4 + i / 100, 0.6 + i / 100],
             "p_value": p} for i, p in enumerate(p_values)]


def test_passes_when_holm_rejects_no_cell_and_headlines_the_smallest_p():
    cells = _cells(0.9, 0.02, 0.5)
    record = result_from_cells("unit_family", cells, seed=1, profile="quick", n=30, test="t", **SOURCE)
    assert record.passed and record.predicted == 0.5 and record.measured == cells[1]["measured"]
    assert (record.ci_low, record.ci_high) == tuple(cells[1]["ci"])
    assert record.p_value == min(holm_adjusted([0.9, 0.02, 0.5])) == pytest.approx(0.06)
    assert record.details["cells"] == cells and record.alpha == ALPHA


def test_fails_when_a_cell_is_rejected_or_another_condition_fails():
    rejected = result_from_cells("unit_family", _cells(0.9, ALPHA / 10), seed=1, profile="quick", n=2,
                                 test="t", **SOURCE)
    assert not rejected.passed and rejected.p_value <= ALPHA
    other = result_from_cells("unit_family", _cells(0.9, 0.8), passed=False, seed=1, profile="quick", n=2,
                              test="t", **SOURCE)
    assert not other.passed and other.p_value > ALPHA


def test_head_fields_and_details_are_the_callers():
    cells = _cells(0.01, 0.5)
    record = result_from_cells("unit_family", cells, head=cells[1], seed=1, profile="quick", n=2, test="t",
                               measured=7.0, ci=None, margin="m", details={"figure": "f"}, **SOURCE)
    assert record.predicted == 0.5 and record.measured == 7.0 and record.ci_low is None
    assert record.margin == "m" and record.details == {"cells": cells, "figure": "f"}


def test_refuses_an_empty_family():
    with pytest.raises(ValueError, match="cells"):
        result_from_cells("unit_family", [], seed=1, profile="quick", n=0, test="t", **SOURCE)
