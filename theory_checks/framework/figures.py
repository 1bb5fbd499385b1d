"""Figure data a check puts in ``details["figure"]`` (or a list in ``details["figures"]``) for the report.

The report draws "measured" series as points with interval bars and "predicted" series as lines, so every
figure shows the prediction against the measurement; a finding's "source" series are the published numbers it
re-measures (points without intervals). Values must be JSON-serialisable numbers.
"""

from __future__ import annotations

SERIES_STYLES = ("measured", "predicted", "bar", "source")


def series(label: str, x, y, lo=None, hi=None, style: str = "measured", group: str | None = None) -> dict:
    """One curve: x, y (and optional interval lo, hi for measured points); ``group`` pairs a measurement with
    its prediction (same colour)."""
    if style not in SERIES_STYLES:
        raise ValueError(f"style must be one of {SERIES_STYLES}, got {style!r}")
    if len(x) != len(y) or (lo is not None and len(lo) != len(y)) or (hi is not None and len(hi) != len(y)):
        raise ValueError(f"series {label!r}: x, y, lo, hi must have equal lengths")
    out = {"label": label, "x": list(x), "y": list(y), "style": style}
    if lo is not None and hi is not None:
        out.update(lo=list(lo), hi=list(hi))
    if group is not None:
        out["group"] = group
    return out


def figure_spec(title: str, x_label: str, y_label: str, *curves: dict, log_x: bool = False, log_y: bool = False) -> dict:
    """A figure: axis labels (with units), curves from ``series``, optional log axes."""
    return {"title": title, "x_label": x_label, "y_label": y_label, "series": list(curves), "log_x": log_x, "log_y": log_y}
