"""Formatting of report table cells."""

from __future__ import annotations


def fmt(value, digits: int = 4) -> str:
    """None -> "", floats to ``digits`` significant figures, anything else as str (ints and bools exact)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)
