"""The ratio table of the MoE layer against the GEMM floor and peers (``python -m sparse_bench.bench``).

Public API: ``run_ratio_table(profile, results_dir, ...) -> list[dict]``, ``format_table``, ``target_summary`` and
``format_target_summary`` (targets met, and what each miss needs), ``GridPoint``,
``issue_grid``, ``quick_grid``; the building blocks live in floor.py (GEMM floors), peers.py (HF, GShard einsum,
our strategies on identical weights), gshard.py (the einsum peer), timing.py (pinned threads, median/IQR, peak)
and speed_targets.py (the issue's targets).
"""

from .grid import GridPoint, issue_grid, quick_grid
from .ratio_table import format_table, run_ratio_table
from .speed_targets import format_target_summary, target_summary

__all__ = ["GridPoint", "format_table", "format_target_summary", "issue_grid", "quick_grid",
           "run_ratio_table", "target_summary"]
