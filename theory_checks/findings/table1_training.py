"""Table 1's flat dense column against how the readout is trained: its sample size and its training budget.

``table1_dense_flat`` (table1.py) reads the paper's dense column (eval MSE 0.01015 / 0.01009 / 0.01046 at
18,432 / 36,864 / 73,728 FLOPs, i.e. 2,048 / 4,096 / 8,192 active units) at one training sample size (1,024)
and one Adam budget (20 epochs). The paper trained its readouts by gradient descent and states neither its
sample size nor its budget, so a flat column may say as much about the training as about the models. Three
findings read the same ratio (dense eval MSE at the highest over the lowest FLOP level, flat when within
table1.py's band [1/1.1, 1.1]) as the training changes:

(a) ``table1_dense_flat_by_samples``: the paper's claim at each training sample size n_train, under ridge and
    under Adam (table1.py's Adam: the same epochs at every n_train, so its steps grow with n_train). Only the
    lowest and highest level are fitted: the ratio needs nothing else, and at 2,048 samples each closed-form
    fit of a level costs seconds (ridge runs in the dual, kernel form wherever n_train < width).
(b) ``table1_dense_flat_by_epochs``: the paper's claim at each Adam budget (epochs) at table1.py's sample
    size, every level fitted; the figure puts the column of each budget beside the paper's and ridge's.
(c) ``table1_dense_flat_undertrained``: THIS SUITE'S HYPOTHESIS about Table 1, not the paper's claim: the
    paper's flat dense column reflects an under-trained readout. It predicts that the readout trained for
    the smallest budget reads flat while the readout trained for the largest budget falls with width
    (ratio below 1/1.1, as a converged readout such as ridge's does at these sizes). Pre-registered:
    reproduced iff the ratio lies inside the flat band at the smallest budget AND below 1/1.1 at the
    largest. The registry applies one decision to every component, so the conjunction is written as three
    components each read as "below 1": ratio / 1.1 and (1/1.1) / ratio at the smallest budget (both below 1
    = inside the band) and ratio * 1.1 at the largest (below 1 = below 1/1.1).

Data, targets, models, fits and the evaluation noise are table1.py's (imported, not copied): every model of a
replicate is fitted on the same sample and scored on the same test sample, so the per-seed ratios are
paired; seeds are the replication unit. A sample size or budget is table1.py's design with that n_train or
those epochs, so where the sweeps cross table1.py's own design (1,024 samples, 20 epochs) they measure exactly
what ``table1_dense_flat`` measures. Each n_train draws its own samples (the design's seed and sizes set the
draws); each budget trains on the same samples.

Planted settings (controls, at the quick scale):

- (a), (b) hold under *evaluation noise* (table1.py's: N(0, 1) on every test label, far above every model's
  error, so every eval MSE is about 1 and the ratio is flat at every sample size and budget);
- (a), (b) and (c) fail with an *oracle unit* (table1.py's ``OracleUnits``) in the widest dense model only:
  the target is one of its features, so a readout fits it almost exactly and the widest model's error drops
  by orders of magnitude (at the quick scale: to about 1e-16 of the narrowest's under ridge, to 0.05-0.5 of
  it after one epoch of Adam, below 3e-3 after five): not flat at any sample size or budget, the smallest
  budget included, which (c) needs flat;
- (c) holds with the same oracle unit when training stops before any width can use its features: the
  smallest budget trains at a *stalled* learning rate (1e-30: Adam moves a weight by at most about 3.2 times
  the learning rate a step, so after one epoch every weight is below 1e-27 and every prediction below
  1e-23, which vanishes against labels of order 1e-2 in float64: every width's MSE is the mean squared
  label, bit for bit, and the ratio exactly 1), while the largest budget trains as usual and finds the
  oracle (its ratio falls below 1e-4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from theory_checks.framework import figure_spec, replicate_seed, series

from .decision import below, inside
from .lsh_common import geometric_interval
from .registry import Component, Reading, Scale, register_finding
from .table1 import (EVAL_NOISE_SD, FLAT_BAND, PAPER, PAPER_FLOPS, SCALES as TABLE1_SCALES, SOURCE,
                     TRAININGS, Table1Design, eval_mse, joined, level_label, log_ratio, model_predictions,
                     seed_data, training_description)

N_TRAINS = (128, 256, 512, 1_024, 2_048)  # training samples of (a), ascending; table1.py's 1,024 among them
BUDGETS = (1, 5, 20, 80)  # Adam epochs of (b) and (c), ascending; table1.py's 20 among them
STALLED_LR = 1e-30  # planted: a learning rate at which no readout weight leaves zero in a few hundred steps
PAPER_RATIO = PAPER["dense"][-1] / PAPER["dense"][0]


def _epochs(e: int) -> str:
    return f"{e} epoch" if e == 1 else f"{e} epochs"


@dataclass(frozen=True)
class SweepDesign:
    """table1.py's design of one profile (widths, seeds, validation and test samples, Adam's learning rates
    and batch) and the sweeps around it: training sample sizes and Adam epochs, each ascending and holding
    the base design's own value."""

    base: Table1Design
    n_trains: tuple = N_TRAINS
    budgets: tuple = BUDGETS

    def __post_init__(self):
        for name, values, own in (("n_trains", self.n_trains, self.base.n_train),
                                  ("budgets", self.budgets, self.base.adam.epochs)):
            if list(values) != sorted(set(values)) or own not in values:
                raise ValueError(f"{name} must be ascending, distinct and hold the base design's {own}, "
                                 f"got {values}")

    @property
    def levels(self) -> tuple:
        return tuple(range(len(self.base.active)))

    def at(self, n_train: int | None = None, epochs: int | None = None) -> Table1Design:
        """The base design with ``n_train`` training samples or Adam trained for ``epochs``."""
        design = self.base if n_train is None else replace(self.base, n_train=n_train)
        return design if epochs is None else replace(design, adam=replace(design.adam, epochs=epochs))

    def fitted_together(self, design: Table1Design) -> tuple:
        """The readouts one fit of ``design`` computes: both where (a) reads both, Adam alone elsewhere (its
        other budgets), so that each model is fitted once per design whichever finding asks first."""
        return TRAININGS if design.adam == self.base.adam else ("adam",)


def _scale(profile: str, sweep_of: str) -> Scale:
    base = TABLE1_SCALES[profile]
    design, d = SweepDesign(base.design), base.design
    if sweep_of == "samples":
        swept = (f"training sample sizes {', '.join(f'{n:,}' for n in design.n_trains)} under ridge and "
                 f"under Adam ({d.adam.epochs} epochs), the lowest and highest level fitted")
    else:
        swept = f"Adam for {', '.join(map(str, design.budgets))} epochs on the {d.n_train:,} training samples"
    return Scale(base.fraction, f"table1_dense_flat's scale, {base.description}; swept here: {swept}", design,
                 TRAININGS if sweep_of == "samples" else ("adam",))


SCALES = {which: {p: _scale(p, which) for p in TABLE1_SCALES} for which in ("samples", "budgets")}


def _column(seed: int, design: Table1Design, sweep: SweepDesign, training: str, levels: tuple, oracle: bool,
            eval_noise: float) -> tuple[list, list]:
    """The dense model's (targets,) eval MSE at each of ``levels`` for one seed, and its fits' diagnostics.

    oracle: an oracle unit in the model of the highest level; eval_noise: the SD of N(0, 1) test-label noise.
    """
    data = seed_data(seed, design)
    labels = data.y_test + eval_noise * data.noise
    top = len(design.active) - 1
    mse, diagnostics = [], []
    for i in levels:
        s = design.active[i]
        got = model_predictions(seed, design, (s, s), oracle and i == top, sweep.fitted_together(design))
        mse.append(eval_mse(got[training], labels))
        diagnostics.append(got["diagnostics"].get(training, {}))
    return mse, diagnostics


def _ratios(per_seed: list, j: int) -> tuple:
    """Per seed, the log of target j's dense MSE at the highest over the lowest level fitted."""
    return tuple(log_ratio(mse[-1][j], mse[0][j]) for mse, _ in per_seed)


def _ratio_cell(per_seed: list, j: int) -> tuple:
    """Target j's ratio: geometric mean over seeds and its 95% interval."""
    return geometric_interval([math.exp(v) for v in _ratios(per_seed, j)])


def _cell(m: float, lo: float, hi: float) -> str:
    return f"{m:.3g} [{lo:.3g}, {hi:.3g}]"


def _adam_diagnostics(per_seed: list, j: int, design: Table1Design) -> dict:
    """How the validated Adam fits of target j chose: share stopped at their last epoch (the validation error
    still falling: under-trained), and how often each learning rate won."""
    fits = [d for _, diagnostics in per_seed for d in diagnostics if d]
    last = [f["stopped_at_last_epoch"][j] for f in fits]
    return dict(fits=len(fits), share_stopped_at_last_epoch=sum(last) / len(last),
                learning_rates={f"{lr:g}": sum(f["lr"][j] == lr for f in fits) for lr in design.adam.lrs})


def _column_details(design: Table1Design, levels: tuple, columns: dict, j: int, title: str) -> tuple:
    """Dense eval MSE of each labelled column of ours (geometric mean over seeds, 95% interval) at ``levels``,
    beside the paper's dense column: a table (with each column's ratio) and a figure against FLOPs."""
    x = [design.flops[i] for i in levels]
    rows, curves = [], []
    for label, per_seed in columns.items():
        cells = [geometric_interval([mse[k][j] for mse, _ in per_seed]) for k in range(len(levels))]
        rows.append([label] + [_cell(*c) for c in cells] + [_cell(*_ratio_cell(per_seed, j))])
        m, lo, hi = zip(*cells)
        curves.append(series(f"ours: {label}", x, list(m), list(lo), list(hi), group=label))
    paper = [PAPER["dense"][i] for i in levels]
    rows.append(["paper: dense"] + [f"{v:.4g}" for v in paper] + [f"{PAPER_RATIO:.4g}"])
    curves.append(series("paper: dense", x, paper, style="source"))
    table = {"title": f"{title}: dense eval MSE [95% interval], the paper's below",
             "columns": ["readout"] + [level_label(design, i) for i in levels] + ["highest / lowest"],
             "rows": rows}
    figure = figure_spec(f"{title} (paper at its own FLOPs {joined(PAPER_FLOPS)}, plotted at our levels)",
                         "FLOPs per input (multiply-adds)", "dense eval MSE", *curves, log_x=True, log_y=True)
    return table, figure


def _sweep_figure(title: str, x_label: str, x: list, ratios: dict, references: dict) -> dict:
    """The ratio against the swept quantity: per training our geometric mean and 95% interval, the flat
    band's edges, and references (the paper's ratio; a converged readout's) as flat lines."""
    curves = []
    for label, cells in ratios.items():
        m, lo, hi = zip(*cells)
        curves.append(series(f"ours: {label}", x, list(m), list(lo), list(hi), group=label))
    for label, value in references.items():
        curves.append(series(label, [x[0], x[-1]], [value, value], style="predicted", group=label))
    for edge in (1 / FLAT_BAND, FLAT_BAND):
        curves.append(series(f"flat band edge {edge:.3g}", [x[0], x[-1]], [edge, edge], style="predicted",
                             group="flat band"))
    return figure_spec(title, x_label, "dense MSE, highest / lowest FLOP level", *curves, log_x=True,
                       log_y=True)


def _planted(**chosen) -> dict:
    """details' entry naming the planted settings of a control run; none for the real measurement."""
    chosen = {k: v for k, v in chosen.items() if v}
    return {"planted": chosen} if chosen else {}


FLAT_CLAIM = ("the dense model's eval MSE stays flat as FLOPs grow from 18,432 to 73,728 (Table 1: dense "
              "0.01015 / 0.01009 / 0.01046)")
FLAT_READING = (f"flat = the ratio of the dense model's eval MSE at the highest to the lowest FLOP level "
                f"lies within [1/{FLAT_BAND}, {FLAT_BAND}], table1_dense_flat's band (the paper's own ratio "
                f"is {PAPER_RATIO:.3f}); paired per seed, interval on logs")
FLAT_TEST = ("per seed, log of the dense model's eval MSE at the highest over the lowest FLOP level (same "
             "training and test samples)")
FLAT_SOURCE_VALUE = {"dense MSE ratio, 73,728 / 18,432 FLOPs": PAPER_RATIO}


def _flat_component(design: Table1Design, per_seed: list, j: int, setting: str) -> Component:
    top = len(design.active) - 1
    return Component(f"dense MSE at {level_label(design, top)} / at {level_label(design, 0)}, {setting}",
                     _ratios(per_seed, j), "log", PAPER_RATIO)


# (a) the flat reading at each training sample size ------------------------------------------------------
@register_finding(
    name="table1_dense_flat_by_samples", source=SOURCE, claim=FLAT_CLAIM,
    reading=FLAT_READING + "; at each training sample size (the paper states none), under ridge and Adam",
    source_value=FLAT_SOURCE_VALUE, unit="MSE ratio (highest / lowest FLOPs)",
    scale_by_profile=SCALES["samples"], decision=inside(1 / FLAT_BAND, FLAT_BAND),
    controls={"holds": lambda: {"eval_noise": EVAL_NOISE_SD}, "fails": lambda: {"oracle": True}},
)
def finding_flat_by_samples(seed: int, scale: Scale, training: str, oracle: bool = False,
                            eval_noise: float = 0.0) -> list[Reading]:
    sweep = scale.design
    seeds = [replicate_seed(seed, r) for r in range(sweep.base.seeds)]
    levels = (0, sweep.levels[-1])
    # both readouts at once: one fit of a model serves the ridge and the Adam reading
    columns = {(how, n): [_column(s, sweep.at(n_train=n), sweep, how, levels, oracle, eval_noise)
                          for s in seeds] for how in TRAININGS for n in sweep.n_trains}
    readings = []
    for j, target in enumerate(seed_data(seeds[0], sweep.base).targets):
        cells = {how: [_ratio_cell(columns[how, n], j) for n in sweep.n_trains] for how in TRAININGS}
        sweep_figure = _sweep_figure(
            f"Table 1 dense column, {target}: highest / lowest-level MSE against training samples "
            f"({len(seeds)} seeds, 95% interval; Adam {_epochs(sweep.base.adam.epochs)} at every size)",
            "training samples", list(sweep.n_trains), cells,
            {f"paper: {PAPER_RATIO:.3f} (sample size not stated)": PAPER_RATIO})
        table, _ = _column_details(sweep.base, levels, {f"{n:,} samples": columns[training, n]
                                                        for n in sweep.n_trains}, j,
                                   f"Table 1 dense column, {target}, {training}, by training samples")
        for n in sweep.n_trains:
            design = sweep.at(n_train=n)
            _, figure = _column_details(design, levels, {training: columns[training, n]}, j,
                                        f"Table 1 dense column, {target}, {training}, {n:,} training samples")
            details = dict(target=target, n_train=n,
                           samples=dict(train=n, validation=design.n_val, test=design.n_test),
                           table=table, figure=figure, figures=[sweep_figure],
                           **_planted(oracle_unit_in_widest=oracle, eval_noise=eval_noise))
            if training == "adam":
                details["training_diagnostics"] = _adam_diagnostics(columns[training, n], j, design)
            readings.append(Reading(
                params=dict(target=target, training=training, n_train=n),
                components=[_flat_component(design, columns[training, n], j, f"{n:,} samples")], seeds=seeds,
                test=FLAT_TEST, training=training_description(training, design), details=details))
    return readings


# (b) the flat reading at each Adam budget ---------------------------------------------------------------
def _budget_columns(seeds: list, sweep: SweepDesign, oracle: bool, eval_noise: float,
                    stalled: bool = False) -> dict:
    """"ridge" and each budget (epochs) -> per seed, (MSE per level, diagnostics) at the base design's
    samples; with ``stalled``, the smallest budget trains at STALLED_LR."""
    out = {"ridge": [_column(s, sweep.base, sweep, "ridge", sweep.levels, oracle, eval_noise) for s in seeds]}
    for e in sweep.budgets:
        design = sweep.at(epochs=e)
        if stalled and e == sweep.budgets[0]:
            design = replace(design, adam=replace(design.adam, lrs=(STALLED_LR,)))
        out[e] = [_column(s, design, sweep, "adam", sweep.levels, oracle, eval_noise) for s in seeds]
    return out


def _budget_sweep_figure(sweep: SweepDesign, columns: dict, j: int, target: str, seeds: int) -> dict:
    """The ratio against Adam's epochs, ridge's at the same samples beside it as the converged reference."""
    n, ridge = sweep.base.n_train, _ratio_cell(columns["ridge"], j)[0]
    return _sweep_figure(
        f"Table 1 dense column, {target}: highest / lowest-level MSE against Adam's epochs ({n:,} training "
        f"samples, {seeds} seeds, 95% interval)", "Adam epochs", list(sweep.budgets),
        {"adam": [_ratio_cell(columns[e], j) for e in sweep.budgets]},
        {f"paper: {PAPER_RATIO:.3f} (training not stated)": PAPER_RATIO,
         f"ridge (closed form), {n:,} samples: {ridge:.3g}": ridge})


def _budget_column_details(sweep: SweepDesign, columns: dict, j: int, target: str, shown: tuple) -> tuple:
    """Table of every budget's dense column and ridge's; figure of the budgets ``shown`` and ridge's."""
    label = lambda key: "ridge" if key == "ridge" else f"adam, {_epochs(key)}"  # noqa: E731
    title = f"Table 1 dense column, {target}, {sweep.base.n_train:,} training samples"
    table, _ = _column_details(sweep.base, sweep.levels, {label(k): v for k, v in columns.items()}, j,
                               f"{title}, by training")
    _, figure = _column_details(sweep.base, sweep.levels, {label(k): columns[k] for k in (*shown, "ridge")},
                                j, f"{title}, {', '.join(label(k) for k in shown)} and ridge")
    return table, figure


def _only_adam(training: str) -> None:
    if training != "adam":
        raise ValueError(f"training must be 'adam' (the budgets are Adam's epochs), got {training!r}")


@register_finding(
    name="table1_dense_flat_by_epochs", source=SOURCE, claim=FLAT_CLAIM,
    reading=FLAT_READING + "; at each Adam training budget (the paper states none) on table1_dense_flat's "
                           "training sample, learning rate and stopping epoch (up to the budget) validated",
    source_value=FLAT_SOURCE_VALUE, unit="MSE ratio (highest / lowest FLOPs)",
    scale_by_profile=SCALES["budgets"], decision=inside(1 / FLAT_BAND, FLAT_BAND),
    controls={"holds": lambda: {"eval_noise": EVAL_NOISE_SD}, "fails": lambda: {"oracle": True}},
)
def finding_flat_by_epochs(seed: int, scale: Scale, training: str, oracle: bool = False,
                           eval_noise: float = 0.0) -> list[Reading]:
    _only_adam(training)
    sweep = scale.design
    seeds = [replicate_seed(seed, r) for r in range(sweep.base.seeds)]
    columns = _budget_columns(seeds, sweep, oracle, eval_noise)
    readings = []
    for j, target in enumerate(seed_data(seeds[0], sweep.base).targets):
        sweep_figure = _budget_sweep_figure(sweep, columns, j, target, len(seeds))
        for e in sweep.budgets:
            design = sweep.at(epochs=e)
            table, figure = _budget_column_details(sweep, columns, j, target, (e,))
            details = dict(target=target, epochs=e,
                           samples=dict(train=design.n_train, validation=design.n_val, test=design.n_test),
                           training_diagnostics=_adam_diagnostics(columns[e], j, design), table=table,
                           figure=figure, figures=[sweep_figure],
                           **_planted(oracle_unit_in_widest=oracle, eval_noise=eval_noise))
            readings.append(Reading(
                params=dict(target=target, training="adam", epochs=e, n_train=design.n_train),
                components=[_flat_component(design, columns[e], j, f"Adam {_epochs(e)}")], seeds=seeds,
                test=FLAT_TEST, training=training_description("adam", design), details=details))
    return readings


# (c) this suite's hypothesis: the flat column is an under-trained readout's ------------------------------
@register_finding(
    name="table1_dense_flat_undertrained",
    source=f"this suite's hypothesis about {SOURCE}: the paper's dense column, and our measurement "
           "(table1_dense_flat under ridge) that a converged readout's dense column is not flat",
    claim="hypothesis, not the paper's claim: the paper's flat dense column (Table 1: 0.01015 / 0.01009 / "
          "0.01046) reflects an under-trained readout: the dense model's eval MSE reads flat across the "
          "FLOP levels when its readout is trained briefly, and falls with width when it is trained to "
          "convergence",
    reading=f"Adam on the frozen features for each budget (epochs; learning rate and stopping epoch up to "
            f"the budget validated). Reproduced iff the dense MSE ratio (highest / lowest FLOP level) lies "
            f"inside table1_dense_flat's flat band [1/{FLAT_BAND}, {FLAT_BAND}] at the smallest budget AND "
            f"below 1/{FLAT_BAND} at the largest, written as three components each below 1: ratio / "
            f"{FLAT_BAND} and (1/{FLAT_BAND}) / ratio at the smallest budget, ratio * {FLAT_BAND} at the "
            "largest. The budgets between are measured (table1_dense_flat_by_epochs), not decided on",
    source_value=FLAT_SOURCE_VALUE,
    unit="dense MSE ratio against the flat band's edges (below 1: the hypothesis's side)",
    scale_by_profile=SCALES["budgets"], decision=below(1.0),
    controls={"holds": lambda: {"oracle": True, "stalled": True}, "fails": lambda: {"oracle": True}},
)
def finding_flat_undertrained(seed: int, scale: Scale, training: str, oracle: bool = False,
                              stalled: bool = False) -> list[Reading]:
    _only_adam(training)
    sweep = scale.design
    seeds = [replicate_seed(seed, r) for r in range(sweep.base.seeds)]
    columns = _budget_columns(seeds, sweep, oracle, 0.0, stalled)
    first, last = sweep.budgets[0], sweep.budgets[-1]
    band = math.log(FLAT_BAND)
    readings = []
    for j, target in enumerate(seed_data(seeds[0], sweep.base).targets):
        small, large = _ratios(columns[first], j), _ratios(columns[last], j)
        components = [
            Component(f"ratio at {_epochs(first)} / {FLAT_BAND} (flat: below 1)",
                      tuple(v - band for v in small), "log", PAPER_RATIO / FLAT_BAND),
            Component(f"(1/{FLAT_BAND}) / ratio at {_epochs(first)} (flat: below 1)",
                      tuple(-band - v for v in small), "log", 1 / (FLAT_BAND * PAPER_RATIO)),
            Component(f"ratio at {_epochs(last)} * {FLAT_BAND} (falls past the band: below 1)",
                      tuple(v + band for v in large), "log")]
        table, figure = _budget_column_details(sweep, columns, j, target, (first, last))
        details = dict(target=target, budgets=dict(smallest=first, largest=last),
                       samples=dict(train=sweep.base.n_train, validation=sweep.base.n_val,
                                    test=sweep.base.n_test),
                       training_diagnostics={_epochs(e): _adam_diagnostics(columns[e], j, sweep.at(epochs=e))
                                             for e in (first, last)},
                       table=table, figure=_budget_sweep_figure(sweep, columns, j, target, len(seeds)),
                       figures=[figure], **_planted(oracle_unit_in_widest=oracle,
                                                    stalled_smallest_budget=stalled))
        readings.append(Reading(
            params=dict(target=target, training="adam", epochs=f"{first} and {last}",
                        n_train=sweep.base.n_train),
            components=components, seeds=seeds,
            test="per seed, log of the dense model's eval MSE at the highest over the lowest FLOP level, at "
                 "the smallest and at the largest Adam budget (same training and test samples)",
            training=f"adam at each budget ({', '.join(map(str, sweep.budgets))} epochs): "
                     f"{training_description('adam', sweep.at(epochs=last))}", details=details))
    return readings
