"""Fuzz the routers: random constructor arguments and inputs (shapes, dtypes, NaN/Inf/huge/tiny entries)."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from fuzzing import (
    rarely,
    BAD_SCALARS,
    FLOAT_DTYPES,
    assert_finite,
    fuzz,
    in_range,
    is_float,
    is_int,
    is_positive_float,
    malformed,
    maybe_bad,
    outcome,
    tensors,
    unit_roundoff,
)
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter

BAD_FLAGS = (None, 0, 1, "False", 2.0)


def rare_bad(valid, bad=BAD_SCALARS):
    """Valid nine times in ten: a constructor with many arguments still gets built often."""
    return maybe_bad(valid, bad, odds=9)


@st.composite
def router_input(draw, d_model, dtypes=FLOAT_DTYPES):
    """(x, in range and well formed, malformed) for a router of width d_model: mostly (T, d_model), sometimes
    another width or rank, now and then not a tensor."""
    width = d_model if is_int(d_model, 1, 12) else 3
    tokens = draw(st.integers(0, 9))
    shape = draw(st.sampled_from([(tokens, width)] * 6 + [(tokens, width + 1), (width,), (1, tokens, width),
                                                           (tokens, 0)]))
    if rarely(draw, 30):
        return [[0.0] * width] * tokens, False, True
    x = draw(tensors(shape, dtypes))
    shape_ok = x.dim() == 2 and x.shape[1] == d_model
    return x, in_range(x) and shape_ok, malformed(x, shape_ok)


def check_plan(plan, x, num_experts):
    """What every plan of a router over x (T, d) must satisfy."""
    plan.validate()
    assert plan.num_tokens == x.shape[0] and plan.num_experts == num_experts
    assert plan.weight.is_floating_point()
    assert_finite(plan.weight, "plan.weight")
    for key in ("load_balancing_loss", "z_loss"):
        if key in plan.aux:
            assert_finite(plan.aux[key], f"aux[{key!r}]")
    if plan.num_assignments:
        pairs = plan.token_index * num_experts + plan.expert_index
        assert pairs.unique().numel() == plan.num_assignments, "a token sent twice to one expert"


def generators():
    return rare_bad(st.sampled_from([None, "gen"]), ("not a generator", 0))


def make_generator(value):
    return torch.Generator().manual_seed(3) if value == "gen" else value


def valid_generator(value) -> bool:
    return value is None or value == "gen"


def valid_jitter(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1


def check_topk_router(d_model, num_experts, k, normalize, capacity_factor, capacity, drop_policy, jitter,
                      generator, training, data):
    args = dict(k=k, normalize=normalize, capacity_factor=capacity_factor, capacity=capacity,
                drop_policy=drop_policy, jitter=jitter, generator=make_generator(generator))
    valid = {
        "d_model": is_int(d_model, 1), "num_experts": is_int(num_experts, 1),
        "k": is_int(k, 1, num_experts if is_int(num_experts, 1) else 2**63 - 1),
        "normalize": isinstance(normalize, bool),
        "capacity_factor": capacity_factor is None or is_positive_float(capacity_factor),
        "capacity": capacity is None or is_int(capacity, 1),
        "drop_policy": drop_policy in ("position", "probability"),
        "jitter": valid_jitter(jitter), "generator": valid_generator(generator),
    }
    both = capacity_factor is not None and capacity is not None
    bad = {name for name, ok in valid.items() if not ok}
    if both:
        bad |= {"capacity", "capacity_factor"}
    router = outcome(lambda: TopKRouter(d_model, num_experts, **args), bad, not bad, bool(bad))
    if router is None:
        return
    router.train(training)
    x, well_formed, bad_x = data.draw(router_input(d_model))
    # a factor this far from 1 may legitimately give a capacity that underflows or overflows: named errors
    sane_factor = capacity_factor is None or 1e-300 <= capacity_factor <= 1e300
    plan = outcome(lambda: router(x), {"x", "logits", "capacity_factor"}, well_formed and sane_factor, bad_x)
    if plan is None:
        return
    check_plan(plan, x, num_experts)
    T = x.shape[0]
    assert plan.num_assignments + plan.dropped == T * k
    cap = router.expert_capacity(T)
    if cap is None:
        assert plan.dropped == 0
    else:
        assert int(plan.expert_counts.max(), ) <= cap if plan.num_assignments else True
    weight = plan.weight.double()
    assert bool(((weight >= 0) & (weight <= 1)).all())
    if normalize and plan.dropped == 0 and T:
        sums = torch.zeros(T, dtype=torch.float64).index_add_(0, plan.token_index.cpu(), weight.cpu())
        bound = (k + 2) * unit_roundoff(plan.weight.dtype)  # k additions and one division of rounded terms
        assert bool(((sums - 1).abs() <= bound).all()), sums


test_topk_router, test_topk_router_long = fuzz(
    d_model=rare_bad(st.integers(1, 12)), num_experts=rare_bad(st.integers(1, 9)),
    k=rare_bad(st.integers(1, 10)), normalize=rare_bad(st.booleans(), BAD_FLAGS),
    # the extremes among the bad values are valid factors that may give no integer capacity (named errors)
    capacity_factor=rare_bad(st.one_of(st.none(), st.sampled_from([0.5, 1.0, 1.25, 4.0])),
                             BAD_SCALARS + (1e-320, 1e300, 1e308)),
    capacity=maybe_bad(st.none(), (1, 3) + BAD_SCALARS, odds=4),
    drop_policy=rare_bad(st.sampled_from(["position", "probability"]), ("random", None, 1)),
    jitter=rare_bad(st.sampled_from([0.0, 0.0, 0.1, 0.5]), (None, True, -0.1, 1.0, math.nan, "0.1", 1e-320)),
    generator=generators(), training=st.booleans(), data=st.data(),
)(check_topk_router)


def check_expert_choice(d_model, num_experts, capacity_factor, generator, data):
    valid = {"d_model": is_int(d_model, 1), "num_experts": is_int(num_experts, 1),
             "capacity_factor": is_positive_float(capacity_factor), "generator": valid_generator(generator)}
    bad = {name for name, ok in valid.items() if not ok}
    gen = make_generator(generator)
    router = outcome(lambda: ExpertChoiceRouter(d_model, num_experts, capacity_factor, gen), bad, not bad,
                     bool(bad))
    if router is None:
        return
    x, well_formed, bad_x = data.draw(router_input(d_model))
    sane_factor = 1e-300 <= capacity_factor <= 1e300
    plan = outcome(lambda: router(x), {"x", "logits", "capacity_factor"}, well_formed and sane_factor, bad_x)
    if plan is None:
        return
    check_plan(plan, x, num_experts)
    T = x.shape[0]
    C = min(math.ceil(capacity_factor * T / num_experts), T)
    assert plan.expert_counts.tolist() == [C] * num_experts and plan.dropped == 0


test_expert_choice, test_expert_choice_long = fuzz(
    d_model=rare_bad(st.integers(1, 12)), num_experts=rare_bad(st.integers(1, 9)),
    capacity_factor=st.one_of(st.sampled_from([0.5, 1.0, 2.0, 1e-320, 1e300]), st.sampled_from(BAD_SCALARS)),
    generator=generators(), data=st.data(),
)(check_expert_choice)


def check_sinkhorn(d_model, num_experts, k, iterations, tol, temperature, data):
    valid = {"d_model": is_int(d_model, 1), "num_experts": is_int(num_experts, 1),
             "k": is_int(k, 1, num_experts if is_int(num_experts, 1) else 2**63 - 1),
             "iterations": is_int(iterations, 1), "tol": is_positive_float(tol),
             "temperature": is_positive_float(temperature)}
    bad = {name for name, ok in valid.items() if not ok}
    router = outcome(lambda: SinkhornRouter(d_model, num_experts, k, iterations, tol, temperature), bad,
                     not bad, bool(bad))
    if router is None:
        return
    x, well_formed, bad_x = data.draw(router_input(d_model))
    sane_temperature = 1e-3 <= temperature <= 1e30  # far below the logits it overflows: a named error
    plan = outcome(lambda: router(x), {"x", "logits", "temperature"}, well_formed and sane_temperature, bad_x)
    if plan is None:
        return
    check_plan(plan, x, num_experts)
    assert plan.num_assignments == x.shape[0] * k and plan.dropped == 0
    assert math.isfinite(plan.aux["sinkhorn_marginal_error"]) or x.shape[0] == 0


# iterations: no 2**70 here (with a tiny tol that is a request for 2**70 passes, not a hang of the library)
test_sinkhorn, test_sinkhorn_long = fuzz(
    d_model=rare_bad(st.integers(1, 12)), num_experts=rare_bad(st.integers(1, 9)),
    k=rare_bad(st.integers(1, 10)), iterations=rare_bad(st.integers(1, 60), (None, True, 0, -1, 2.5, "3")),
    tol=rare_bad(st.sampled_from([1e-4, 1e-2, 1e-8])),
    temperature=rare_bad(st.sampled_from([1.0, 0.3, 10.0, 1e-45, 1e-30, 1e30])),
    data=st.data(),
)(check_sinkhorn)


@st.composite
def token_ids(draw, tokens):
    kind = draw(st.sampled_from(["ok"] * 8 + ["negative", "int32", "float", "shape", "list", "none"]))
    values = draw(st.lists(st.integers(0, 2**62), min_size=tokens, max_size=tokens))
    if kind == "negative" and tokens:
        values[0] = -1
    if kind == "list":
        return values, False
    if kind == "none":
        return None, False
    ids = torch.tensor(values, dtype=torch.int64).reshape(tokens)
    if kind == "int32":
        ids = ids.to(torch.int32)
    elif kind == "float":
        ids = ids.to(torch.float32)
    elif kind == "shape":
        ids = ids.reshape(tokens, 1)
    return ids, kind == "ok" or (kind == "negative" and not tokens)


def check_hash_router(num_experts, key, balanced, seed, frequencies, data):
    valid = {"num_experts": is_int(num_experts, 1), "key": key in ("token_id", "input"),
             "balanced": isinstance(balanced, bool), "seed": is_int(seed, 0, 2**63 - 1)}
    bad = {name for name, ok in valid.items() if not ok}
    if balanced and (key != "token_id" or frequencies is None):
        bad |= {"balanced", "token_frequencies"}
    if balanced is True and frequencies is not None and (
            frequencies.numel() == 0 or not bool(torch.isfinite(frequencies).all())
            or bool((frequencies < 0).any())):
        bad.add("token_frequencies")
    router = outcome(lambda: HashRouter(num_experts, key, balanced, seed, frequencies), bad, not bad,
                     bool(bad))
    if router is None:
        return
    x, well_formed, bad_x = data.draw(router_input(data.draw(st.integers(1, 6))))
    if key == "token_id":  # x's values are not read: only its type, rank and length matter
        T = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() else 0
        ids, ids_ok = data.draw(token_ids(T))
        ok = ids_ok and is_float(x) and x.dim() == 2
        plan = outcome(lambda: router(x, token_ids=ids), {"x", "token_ids"}, ok, not ok)
    else:
        bad_x = malformed(x, x.dim() == 2) if isinstance(x, torch.Tensor) else True  # any width: bits hashed
        plan = outcome(lambda: router(x), {"x"}, well_formed or (not bad_x and in_range(x)), bad_x)
    if plan is None:
        return
    check_plan(plan, x, num_experts)
    assert plan.num_assignments == x.shape[0] and bool((plan.weight == 1).all())


test_hash_router, test_hash_router_long = fuzz(
    num_experts=rare_bad(st.integers(1, 9)),
    key=rare_bad(st.sampled_from(["token_id", "input"]), ("position", None)),
    balanced=rare_bad(st.booleans(), BAD_FLAGS), seed=rare_bad(st.integers(0, 2**63 - 1)),
    frequencies=st.one_of(st.none(), st.builds(
        lambda values: torch.tensor(values, dtype=torch.float64),
        st.lists(st.sampled_from([0.0, 1.0, 5.0, 1e300, -1.0, math.nan]), min_size=0, max_size=8))),
    data=st.data(),
)(check_hash_router)


def check_lsh_router(d_model, num_experts, family, num_tables, width, seed, num_hashes, data):
    simhash = family == "simhash"
    valid = {"d_model": is_int(d_model, 1), "num_experts": is_int(num_experts, 1),
             "family": family in ("simhash", "pstable"), "num_tables": is_int(num_tables, 1),
             "width": width is None or (not simhash and is_positive_float(width)),
             "seed": is_int(seed, 0, 2**63 - 1),
             "num_hashes": num_hashes is None or is_int(num_hashes, 1, 62 if simhash else 2**63 - 1)}
    bad = {name for name, ok in valid.items() if not ok}
    router = outcome(lambda: LSHRouter(d_model, num_experts, family, num_tables, width, seed, num_hashes),
                     bad, not bad, bool(bad))
    if router is None:
        return
    x, well_formed, bad_x = data.draw(router_input(d_model))
    # cells far narrower than the inputs overflow int64, a width beyond x's dtype's range cannot be added
    # to it: named errors
    sane_width = width is None or 1e-3 <= width <= 1e4
    plan = outcome(lambda: router(x), {"x", "width"}, well_formed and sane_width, bad_x)
    if plan is None:
        return
    check_plan(plan, x, num_experts) if num_tables == 1 else plan.validate()
    assert plan.num_assignments == x.shape[0] * num_tables


test_lsh_router, test_lsh_router_long = fuzz(
    d_model=rare_bad(st.integers(1, 12)), num_experts=rare_bad(st.integers(1, 9)),
    family=rare_bad(st.sampled_from(["simhash", "pstable"]), ("minhash", None)),
    num_tables=rare_bad(st.integers(1, 3)),
    width=st.one_of(st.none(), st.sampled_from([0.5, 1.0, 4.0, 1e-300, 1e300]), st.sampled_from(BAD_SCALARS)),
    seed=rare_bad(st.integers(0, 2**63 - 1)),
    num_hashes=st.one_of(st.none(), st.integers(1, 70), st.sampled_from(BAD_SCALARS)),
    data=st.data(),
)(check_lsh_router)


def check_plan_from_logits(kind, num_experts, data):
    routers = {
        "topk": lambda: TopKRouter(4, num_experts, k=min(2, num_experts), normalize=True),
        "capacity": lambda: TopKRouter(4, num_experts, k=1, capacity_factor=1.0, drop_policy="probability"),
        "expert_choice": lambda: ExpertChoiceRouter(4, num_experts, 1.0),
        "sinkhorn": lambda: SinkhornRouter(4, num_experts, k=1, iterations=20),
    }
    router = routers[kind]()
    tokens = data.draw(st.integers(0, 9))
    shapes = [(tokens, num_experts)] * 5 + [(tokens, num_experts + 1), (num_experts,)]
    shape = data.draw(st.sampled_from(shapes))
    logits = data.draw(tensors(shape))
    shape_ok = logits.dim() == 2 and logits.shape[1] == num_experts
    plan = outcome(lambda: router.plan_from_logits(logits), {"logits", "temperature"},
                   in_range(logits) and shape_ok, malformed(logits, shape_ok))
    if plan is None:
        return
    check_plan(plan, logits, num_experts)


test_plan_from_logits, test_plan_from_logits_long = fuzz(
    kind=st.sampled_from(["topk", "capacity", "expert_choice", "sinkhorn"]), num_experts=st.integers(1, 8),
    data=st.data(),
)(check_plan_from_logits)
