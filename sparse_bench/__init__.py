"""sparse-bench: reference sparsely activated layers, theory checks and speed benchmarks.

Public API: ``ExpertBank``, ``MoELayer``, ``SharedExpert``, the routers in ``sparse_bench.routing``, dispatch
strategies in ``sparse_bench.dispatch``, HF interop in ``sparse_bench.interop``.
"""

from .experts import ExpertBank
from .moe import MoELayer, SharedExpert
from .routing import RoutingPlan

__version__ = "0.1.0"
__all__ = ["ExpertBank", "MoELayer", "RoutingPlan", "SharedExpert", "__version__"]
