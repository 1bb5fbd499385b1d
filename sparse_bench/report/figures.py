"""Figures for the report: matplotlib (Agg) PNGs embedded as data URIs, built only from results records.

A check may describe its own figure in ``details["figure"]``::

    {"title": str, "x_label": str, "y_label": str, "log_x": bool, "log_y": bool,
     "series": [{"label": str, "x": [...], "y": [...], "lo": [...]?, "hi": [...]?,
                 "style": "measured" | "predicted" | "bar", "group": str?}]}

"measured" series are points with interval bars (lo/hi), "predicted" series are lines; several figures may be
given as ``details["figures"]`` (a list). Series with the same "group" share a colour (a measurement and its
prediction). Plotting libraries are imported here, lazily, never at package import.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass


@dataclass(frozen=True)
class EmbeddedFigure:
    """One figure of the report: where it comes from, a caption, and the PNG as a data URI."""

    key: str
    title: str
    caption: str
    data_uri: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def to_data_uri(fig) -> str:
    """Render a matplotlib figure to a base64 PNG data URI and close it."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_spec(spec: dict):
    """A matplotlib Figure from a figure spec (module docstring)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups: dict = {}
    for i, series in enumerate(spec.get("series", [])):
        x, y = series["x"], series["y"]
        style = series.get("style", "measured")
        color = palette[groups.setdefault(series.get("group", f"#{i}"), len(groups)) % len(palette)]
        if style == "predicted":
            ax.plot(x, y, "-", lw=2, alpha=0.8, color=color, label=series.get("label"))
        elif style == "bar":
            numeric = all(isinstance(v, (int, float)) for v in x)
            ax.bar(
                x if numeric else [str(v) for v in x], y, alpha=0.6, color=color, label=series.get("label")
            )
        else:
            lo, hi = series.get("lo"), series.get("hi")
            yerr = None
            if lo is not None and hi is not None:
                yerr = [
                    [max(v - low, 0.0) for v, low in zip(y, lo)],
                    [max(high - v, 0.0) for v, high in zip(y, hi)],
                ]
            ax.errorbar(x, y, yerr=yerr, fmt="o", ms=4, capsize=3, color=color, label=series.get("label"))
    if spec.get("log_x"):
        ax.set_xscale("log")
    if spec.get("log_y"):
        ax.set_yscale("log")
    ax.set_title(spec.get("title", ""), fontsize=11)
    ax.set_xlabel(spec.get("x_label", ""))
    ax.set_ylabel(spec.get("y_label", ""))
    if any(s.get("label") for s in spec.get("series", [])):
        ax.legend(fontsize=8)
    return fig


def check_figure_specs(record: dict) -> list[dict]:
    """The figure specs a check record carries (``details["figure"]`` or ``details["figures"]``)."""
    details = record.get("details") or {}
    specs = list(details.get("figures") or [])
    if details.get("figure"):
        specs.insert(0, details["figure"])
    return specs


def check_figures(checks: dict) -> list[EmbeddedFigure]:
    """Every figure the latest check records describe, in check-name order."""
    out = []
    for name in sorted(checks):
        record = checks[name]
        for i, spec in enumerate(check_figure_specs(record)):
            caption = f"{record.get('source', '')}: {record.get('prediction', '')} (verdict: {record.get('verdict')})"
            out.append(
                EmbeddedFigure(
                    f"{name}-{i}", spec.get("title") or name, caption, to_data_uri(plot_spec(spec))
                )
            )
    return out
