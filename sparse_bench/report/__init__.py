"""The HTML report: built from results files only (``build_report``)."""

from .build import build_report
from .inputs import ReportInputError, load_inputs

__all__ = ["ReportInputError", "build_report", "load_inputs"]
