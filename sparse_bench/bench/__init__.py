"""The ratio table of the MoE layer against the GEMM floor and peers (``sparse-bench bench``).

Public API: ``run_ratio_table(profile, results_dir, ...) -> list[dict]``, ``format_table``, ``target_summary`` and
``format_target_summary`` (targets met, and what each miss needs), ``GridPoint``, ``full_grid``,
``quick_grid``; the building blocks live in floor.py (GEMM floors), peers.py (HF, GShard einsum, our
strategies on identical weights), gshard.py (the einsum peer), timing.py (pinned threads, median/IQR,
peak), speed_targets.py (the speed targets) and presets.py (the MoE layers of published models).
"""

import importlib

# Imported on first use (PEP 562): the command line reads the torch-free modules here (allocator, device,
# presets) to build its options, and must not load torch for ``--help``.
_LAZY = {"GridPoint": ".grid", "full_grid": ".grid", "quick_grid": ".grid", "format_table": ".ratio_table",
         "run_ratio_table": ".ratio_table", "format_target_summary": ".speed_targets",
         "target_summary": ".speed_targets"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
