"""pytest integration: one test per (object, clause), with ids that say which object and which clause."""

from __future__ import annotations

import functools
import inspect

from .layer_checks import moe_layer_clauses
from .router_checks import router_clauses

SCALAR_TYPES = (bool, int, float, str, type(None))


def is_moe_layer(obj) -> bool:
    """Layers carry a router and experts; anything else handed to the suite is taken for a router."""
    return hasattr(obj, "router") and hasattr(obj, "experts")


def clauses_for(obj) -> list:
    """The clauses that apply to a router or an MoE layer."""
    return moe_layer_clauses(obj) if is_moe_layer(obj) else router_clauses(obj)


def describe(obj) -> str:
    """A short readable id: the class and the constructor arguments that differ from their defaults (read back
    from attributes of the same name), e.g. ``TopKRouter(d_model=16,num_experts=5,k=2,normalize=True)``; a
    layer shows its dispatch strategy and router, e.g. ``MoELayer[sorted](TopKRouter(...))``."""
    if is_moe_layer(obj):
        shared = "+shared" if getattr(obj, "shared_expert", None) is not None else ""
        return f"{type(obj).__name__}[{getattr(obj, 'dispatch_name', '?')}{shared}]({describe(obj.router)})"
    shown = []
    try:
        parameters = inspect.signature(type(obj).__init__).parameters.values()
    except (TypeError, ValueError):
        parameters = []
    for parameter in parameters:
        if parameter.name == "self" or not hasattr(obj, parameter.name):
            continue
        value = getattr(obj, parameter.name)
        if not isinstance(value, SCALAR_TYPES) or value == parameter.default:
            continue
        shown.append(f"{parameter.name}={value}")
    return f"{type(obj).__name__}({','.join(shown)})"


def parametrize_with_checks(objects, *, device="cpu"):
    """A pytest decorator running every applicable clause on every object, one test each::

        @parametrize_with_checks([MyRouter(16, 4), my_layer])
        def test_contract(obj, check):
            check(obj)

    objects: routers and MoE layers, already on ``device``. Ids read ``<object>-<clause>``, so
    ``pytest -k check_router_dtypes`` selects a clause. pytest is imported here only, when this is called.
    """
    import pytest

    cases, ids = [], []
    for obj in objects:
        for check in clauses_for(obj):
            on_device = functools.wraps(check)(functools.partial(check, device=device))
            bound = check if device == "cpu" else on_device
            cases.append((obj, bound))
            ids.append(f"{describe(obj)}-{check.__name__}")
    return pytest.mark.parametrize("obj, check", cases, ids=ids)
