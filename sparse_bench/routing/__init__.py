"""Routers: each maps tokens (T, d_model) to a RoutingPlan."""

from .plan import RoutingPlan, plan_from_assignments

__all__ = ["RoutingPlan", "plan_from_assignments"]
