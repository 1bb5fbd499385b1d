"""The ratio table of the MoE layer against the GEMM floor and peers (``python -m sparse_bench.bench``).

Public API: ``run_ratio_table(profile, results_dir, ...) -> list[dict]``, ``format_table``, ``GridPoint``,
``issue_grid``, ``quick_grid``; the building blocks live in floor.py (GEMM floors), peers.py (HF, GShard einsum,
our strategies on identical weights), gshard.py (the einsum peer) and timing.py (pinned threads, median/IQR, peak).
"""

from .grid import GridPoint, issue_grid, quick_grid
from .ratio_table import BENCH_FILE, format_table, run_ratio_table

__all__ = ["BENCH_FILE", "GridPoint", "format_table", "issue_grid", "quick_grid", "run_ratio_table"]
