"""sparse-bench: reference sparsely activated layers, theory checks and speed benchmarks.

Public API: ``ExpertBank``, ``MoELayer``, ``SharedExpert``, the routers in ``sparse_bench.routing``, dispatch
strategies in ``sparse_bench.dispatch``, HF interop in ``sparse_bench.interop``.
"""

import importlib

__version__ = "0.1.0"
# Imported on first use (PEP 562), so that ``sparse-bench --help`` and the results store never load torch.
_LAZY = {"ExpertBank": ".experts", "MoELayer": ".moe", "SharedExpert": ".moe", "RoutingPlan": ".routing"}
__all__ = ["ExpertBank", "MoELayer", "RoutingPlan", "SharedExpert", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
