"""Routers: each maps tokens (T, d_model) to a RoutingPlan (see plan.py for the contract)."""

from .base import LearnedRouter, Router, RouterCapabilities, switch_load_balancing_loss, z_loss
from .expert_choice import ExpertChoiceRouter
from .hash_router import HashRouter
from .lsh import LSHRouter
from .plan import RoutingPlan, plan_from_assignments
from .sinkhorn import SinkhornRouter
from .topk import TopKRouter

__all__ = [
    "ExpertChoiceRouter",
    "HashRouter",
    "LSHRouter",
    "LearnedRouter",
    "Router",
    "RouterCapabilities",
    "RoutingPlan",
    "SinkhornRouter",
    "TopKRouter",
    "plan_from_assignments",
    "switch_load_balancing_loss",
    "z_loss",
]
