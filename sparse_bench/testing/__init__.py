"""A contract suite for routers and MoE layers, each clause a named check raising AssertionError on failure.

``check_router(router, d_model)`` runs the router clauses its ``capabilities`` select;
``check_moe_layer(layer)`` runs the layer clauses; ``parametrize_with_checks([...])`` makes one pytest test
per (object, clause).
ROUTER_CLAUSES and MOE_LAYER_CLAUSES list every clause (each has ``applies(obj)`` and ``selected_when``);
``router_clauses(router)`` and ``moe_layer_clauses(layer)`` select. Importing this needs no pytest.
"""

from .layer_checks import MOE_LAYER_CLAUSES, check_moe_layer, moe_layer_clauses
from .parametrize import clauses_for, describe, parametrize_with_checks
from .plans import capabilities_of
from .router_checks import ROUTER_CLAUSES, check_router, router_clauses

__all__ = [
    "MOE_LAYER_CLAUSES",
    "ROUTER_CLAUSES",
    "capabilities_of",
    "check_moe_layer",
    "check_router",
    "clauses_for",
    "describe",
    "moe_layer_clauses",
    "parametrize_with_checks",
    "router_clauses",
]
