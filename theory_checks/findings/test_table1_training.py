"""table1_training's sweeps against table1.py where they cross it, and the constructions its controls rely on
(the generic control and form tests are test_findings.py's)."""

import math

import pytest

from theory_checks.findings import run_control, run_finding
from theory_checks.findings.table1 import FLAT_BAND, SCALES as TABLE1_SCALES
from theory_checks.findings.table1_training import SCALES, SweepDesign


def _per_seed(records, **params) -> tuple:
    [record] = [r for r in records if all(r.params.get(k) == v for k, v in params.items())]
    return tuple(record.details["components"][0]["per_seed"])


def test_sweeps_measure_table1_dense_flat_where_they_cross_it():
    """At table1's own design (its samples, its Adam epochs) both sweeps read exactly table1_dense_flat's
    per-seed ratios: same data, models and fits, imported rather than rebuilt."""
    base = TABLE1_SCALES["quick"].design
    flat = run_finding("table1_dense_flat", profile="quick")
    by_samples = run_finding("table1_dense_flat_by_samples", profile="quick")
    by_epochs = run_finding("table1_dense_flat_by_epochs", profile="quick")
    for target in ("polynomial", "hypercube"):
        for training in ("ridge", "adam"):
            assert _per_seed(by_samples, target=target, training=training, n_train=base.n_train) == \
                _per_seed(flat, target=target, training=training)
        assert _per_seed(by_epochs, target=target, epochs=base.adam.epochs) == \
            _per_seed(flat, target=target, training="adam")


def test_stalled_budget_reads_a_ratio_of_exactly_one():
    """The planted stall (learning rate 1e-30) leaves every prediction rounding to 0, so both widths' MSE is
    the mean squared label and every seed's ratio is exactly 1, oracle unit or not."""
    for record in run_control("table1_dense_flat_undertrained", "holds"):
        flat_side = record.details["components"][0]
        assert flat_side["per_seed"] == [-math.log(FLAT_BAND)] * record.n


def test_sweep_design_refuses_a_sweep_missing_the_base_design():
    base = TABLE1_SCALES["quick"].design
    with pytest.raises(ValueError, match="n_trains"):
        SweepDesign(base, n_trains=(256, 512))
    with pytest.raises(ValueError, match="budgets"):
        SweepDesign(base, budgets=(80, 20, 1))


@pytest.mark.parametrize("name", ["table1_dense_flat_by_epochs", "table1_dense_flat_undertrained"])
def test_budget_findings_refuse_ridge(name):
    from theory_checks.findings import get_finding

    with pytest.raises(ValueError, match="training must be 'adam'"):
        get_finding(name).func(seed=0, scale=SCALES["budgets"]["quick"], training="ridge")
