"""Figures for the report: matplotlib SVGs embedded as data URIs, built only from results records.

A check may describe its own figure in ``details["figure"]``::

    {"title": str, "x_label": str, "y_label": str, "log_x": bool, "log_y": bool,
     "series": [{"label": str, "x": [...], "y": [...], "lo": [...]?, "hi": [...]?,
                 "style": "measured" | "predicted" | "bar", "group": str?}]}

"measured" series are points with interval bars (lo/hi), "predicted" series are lines, "source" series (a
published number a finding re-measures) are open diamonds; several figures may be given as
``details["figures"]`` (a list). Series with the same "group" share a colour (a measurement and its
prediction). A check that has nothing to draw says why in ``details["no_figure"]``. Plotting libraries are
imported here, lazily, never at package import; no pyplot state is touched (``matplotlib.figure.Figure``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import textwrap
from dataclasses import dataclass

TITLE_WIDTH = 64  # characters per title line: titles wrap instead of running past the figure's edge
LEGEND_BELOW = 4  # more legend entries than this go under the axes, where they cover no data
CATEGORY_CHARACTERS = 48  # categorical x labels longer than this in all are set at an angle (no overlap)
FIGURE_SIZE = (6.4, 4.0)  # inches; SVG scales, so this only sets the proportions and the text size


@dataclass(frozen=True)
class EmbeddedFigure:
    """One figure of the report: where it comes from, a caption, and the SVG as a data URI."""

    key: str
    title: str
    caption: str
    data_uri: str


@contextlib.contextmanager
def figure_style():
    """matplotlib settings of every report figure (seaborn's whitegrid look; SVG text kept as text and
    reproducible ids), applied to the figures made inside the block only."""
    import matplotlib
    import seaborn as sns

    style = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook"),
             "svg.fonttype": "none", "svg.hashsalt": "sparse-bench", "font.family": "sans-serif"}
    with matplotlib.rc_context(style):
        yield


def new_figure(width: float = FIGURE_SIZE[0], height: float = FIGURE_SIZE[1], layout: str | None = None,
               **subplots):
    """(Figure, axes) without pyplot: nothing global is created or kept. Call inside ``figure_style()``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    return fig, fig.subplots(**subplots)


def to_data_uri(fig) -> str:
    """Render a matplotlib Figure to a base64 SVG data URI (cropped to its content, no date stamp)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def wrap_title(title: str) -> str:
    return "\n".join(textwrap.wrap(title, TITLE_WIDTH)) or title


def _number(value) -> float:
    """A plotted value: numbers as floats; None and the strings records use for non-finite floats as NaN."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _error_bars(y, lo, hi):
    return [[max(v - low, 0.0) for v, low in zip(y, lo)], [max(high - v, 0.0) for v, high in zip(y, hi)]]


def plot_spec(spec: dict):
    """A matplotlib Figure from a figure spec (module docstring). Call inside ``figure_style()``."""
    import matplotlib

    fig, ax = new_figure()
    palette = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    groups: dict = {}
    for i, series in enumerate(spec.get("series", [])):
        x, y = series["x"], [_number(v) for v in series["y"]]
        style = series.get("style", "measured")
        color = palette[groups.setdefault(series.get("group", f"#{i}"), len(groups)) % len(palette)]
        numeric = all(isinstance(v, (int, float)) for v in x)
        x = [_number(v) for v in x] if numeric else [str(v) for v in x]
        if style == "predicted":
            ax.plot(x, y, "-", lw=2, alpha=0.8, color=color, label=series.get("label"))
        elif style == "bar":
            ax.bar(x, y, alpha=0.6, color=color, label=series.get("label"))
        elif style == "source":
            ax.plot(x, y, "D", ms=6, mfc="none", mew=1.5, color=color, label=series.get("label"))
        else:
            lo, hi = series.get("lo"), series.get("hi")
            yerr = None
            if lo is not None and hi is not None:
                yerr = _error_bars(y, [_number(v) for v in lo], [_number(v) for v in hi])
            ax.errorbar(x, y, yerr=yerr, fmt="o", ms=4, capsize=3, color=color, label=series.get("label"))
    if spec.get("log_x"):
        ax.set_xscale("log")
    if spec.get("log_y"):
        ax.set_yscale("log")
    categories = [str(v) for s in spec.get("series", []) for v in s["x"] if not isinstance(v, (int, float))]
    if sum(len(c) for c in dict.fromkeys(categories)) > CATEGORY_CHARACTERS:
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.set_title(wrap_title(spec.get("title", "")), fontsize=11)
    ax.set_xlabel(spec.get("x_label", ""))
    ax.set_ylabel(spec.get("y_label", ""))
    labelled = [s for s in spec.get("series", []) if s.get("label")]
    if len(labelled) > LEGEND_BELOW:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    elif labelled:
        ax.legend(fontsize=8)
    return fig


def check_figure_specs(record: dict) -> list[dict]:
    """The figure specs a check record carries (``details["figure"]`` or ``details["figures"]``)."""
    details = record.get("details") or {}
    specs = list(details.get("figures") or [])
    if details.get("figure"):
        specs.insert(0, details["figure"])
    return specs


def check_figures(checks: dict) -> dict[str, list[EmbeddedFigure]]:
    """check name -> the figures its latest record describes (checks without one are absent)."""
    out: dict[str, list[EmbeddedFigure]] = {}
    with figure_style():
        for name in sorted(checks):
            record = checks[name]
            for i, spec in enumerate(check_figure_specs(record)):
                caption = f"{record.get('source', '')}: {record.get('prediction', '')}"
                out.setdefault(name, []).append(
                    EmbeddedFigure(f"{name}-{i}", spec.get("title") or name, caption,
                                   to_data_uri(plot_spec(spec))))
    return out
