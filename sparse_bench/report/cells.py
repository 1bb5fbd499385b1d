"""Formatting of report table cells."""

from __future__ import annotations


def fmt(value, digits: int = 4) -> str:
    """None -> "", floats to ``digits`` significant figures, anything else as str (ints and bools exact)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def with_unit(text: str, unit: str | None) -> str:
    """"0.51 [0.48, 0.54] probability": ``text`` followed by its unit; empty text stays empty."""
    return f"{text} {unit}" if text and unit else text
