"""Fuzz the formal model: LSHModel, TopKDSM, RandomFeaturesDense, knn_as_dsm (fit and predict)."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from fuzzing import (
    BAD_SCALARS,
    assert_finite,
    fuzz,
    in_range,
    is_int,
    is_positive_float,
    malformed,
    maybe_bad,
    outcome,
    rarely,
    tensors,
)
from sparse_bench.dsm import LSHModel, RandomFeaturesDense, TopKDSM, knn_as_dsm

DATA_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


@st.composite
def samples(draw, d, min_rows=0):
    """(x (n, d), y (n,), both in range and well formed, malformed): sometimes another width, a y of another
    length, or y with NaN/Inf/huge entries."""
    n = draw(st.integers(min_rows, 12))
    width = d + 1 if rarely(draw, 12) else d
    x = draw(tensors((n, width), dtypes=DATA_DTYPES))
    y = draw(tensors((n + 1 if rarely(draw, 12) else n,), dtypes=DATA_DTYPES, other_dtypes=False))
    shape_ok = x.dim() == 2 and x.shape[1] == d and y.shape == (n,)
    return x, y, in_range(x) and in_range(y) and shape_ok, malformed(x, shape_ok) or malformed(y)


def check_lsh_model(d, family, num_tables, num_hashes, width, seed, default, data):
    valid = {"d": is_int(d, 1), "num_tables": is_int(num_tables, 1), "num_hashes": is_int(num_hashes, 1),
             "family": family in ("pstable", "simhash"),
             "width": (is_positive_float(width) if family == "pstable" else width is None),
             "seed": is_int(seed, 0)}
    if family == "simhash" and is_int(num_hashes, 1) and num_hashes > 62:
        valid["num_hashes"] = False
    bad = {name for name, ok in valid.items() if not ok}
    model = outcome(lambda: LSHModel(d, family, num_tables, num_hashes, width, seed), bad, not bad, bool(bad))
    if model is None:
        return
    x, y, ok, bad_xy = data.draw(samples(d))
    sane_width = width is None or 1e-3 <= width <= 1e4
    valid_default = default is None or (isinstance(default, (int, float)) and not isinstance(default, bool)
                                        and math.isfinite(default))
    sane_default = valid_default and (default is None or abs(default) < 1e4)
    fitted = outcome(lambda: model.fit(x, y, default), {"x", "y", "default", "width"},
                     ok and x.shape[0] > 0 and sane_width and sane_default,
                     bad_xy or x.shape[0] == 0 or not valid_default)
    if fitted is None:
        return
    query = data.draw(tensors((data.draw(st.integers(0, 6)), d), dtypes=DATA_DTYPES))
    pred = outcome(lambda: model.predict(query), {"x", "width"}, in_range(query) and sane_width,
                   malformed(query))
    if pred is None:
        return
    assert pred.shape == (query.shape[0],) and pred.dtype == torch.float64
    assert_finite(pred, "LSHModel.predict")
    y64 = y.double()
    low, high = float(y64.min()), float(y64.max())
    if model.default is not None:
        low, high = min(low, model.default), max(high, model.default)
    slack = 4 * torch.finfo(torch.float64).eps * max(abs(low), abs(high))  # a mean of means, rounded
    inside = (pred >= low - slack) & (pred <= high + slack)
    assert bool(inside.all()), "prediction outside the targets' hull"


test_lsh_model, test_lsh_model_long = fuzz(
    d=maybe_bad(st.integers(1, 5), odds=9), family=maybe_bad(st.sampled_from(["pstable", "simhash"]),
                                                            ("minhash", None), odds=9),
    num_tables=maybe_bad(st.integers(1, 3), odds=9), num_hashes=maybe_bad(st.integers(1, 70), odds=9),
    width=st.one_of(st.sampled_from([1.0, 0.5, 4.0, None, 1e-300, 1e300]), st.sampled_from(BAD_SCALARS)),
    seed=maybe_bad(st.integers(0, 2**63 - 1), odds=9),
    default=st.one_of(st.none(), st.sampled_from([0.0, 1.5, math.inf, math.nan, 1e308, "0", True])),
    data=st.data(),
)(check_lsh_model)


def check_topk_dsm(kind, d, total_units, active_units, seed, ridge, data):
    valid = {"d": is_int(d, 1), "total_units": is_int(total_units, 1), "seed": is_int(seed, 0),
             "ridge": is_positive_float(ridge),
             "active_units": is_int(active_units, 1, total_units if is_int(total_units, 1) else 2**63 - 1)}
    if kind == "dense":
        valid.pop("active_units")
        valid = {("width" if k == "total_units" else k): v for k, v in valid.items()}
        make = lambda: RandomFeaturesDense(d, total_units, seed, ridge)  # noqa: E731
    else:
        make = lambda: TopKDSM(d, total_units, active_units, seed, ridge)  # noqa: E731
    bad = {name for name, ok in valid.items() if not ok}
    model = outcome(make, bad, not bad, bool(bad))
    if model is None:
        return
    x, y, ok, bad_xy = data.draw(samples(d))
    sane_ridge = 1e-12 <= ridge <= 1e12
    fitted = outcome(lambda: model.fit(x, y), {"x", "y", "ridge"}, ok and x.shape[0] > 0 and sane_ridge,
                     bad_xy or x.shape[0] == 0)
    if fitted is None:
        return
    assert_finite(model.readout, "readout")
    query = data.draw(tensors((data.draw(st.integers(0, 6)), d), dtypes=DATA_DTYPES))
    pred = outcome(lambda: model.predict(query), {"x"}, in_range(query), malformed(query))
    if pred is None:
        return
    assert pred.shape == (query.shape[0],) and pred.dtype == torch.float64
    assert_finite(pred, f"{kind} predict")
    mask = model.mask(query)
    assert bool((mask.sum(dim=1) == model.active_units).all())


test_topk_dsm, test_topk_dsm_long = fuzz(
    kind=st.sampled_from(["topk", "dense"]), d=maybe_bad(st.integers(1, 5), odds=9),
    total_units=maybe_bad(st.integers(1, 40), odds=9), active_units=maybe_bad(st.integers(1, 40), odds=9),
    seed=maybe_bad(st.integers(0, 2**63 - 1), odds=9),
    ridge=maybe_bad(st.sampled_from([1e-6, 1e-3, 1.0, 1e-300, 1e300]), odds=9), data=st.data(),
)(check_topk_dsm)


def check_knn(k, data):
    points, values, ok, _ = data.draw(samples(data.draw(st.integers(1, 4))))
    bad = malformed(points, points.dim() == 2) or malformed(values, values.shape == points.shape[:1])
    ok = ok or (not bad and in_range(points) and in_range(values))  # any width of points will do
    valid_k = is_int(k, 1, points.shape[0])
    dsm = outcome(lambda: knn_as_dsm(points, values, k), {"points", "values", "k"}, ok and valid_k,
                  bad or not valid_k)
    if dsm is None:
        return
    d = points.shape[1]
    query = data.draw(tensors((data.draw(st.integers(0, 5)), d), dtypes=DATA_DTYPES))
    pred = outcome(lambda: dsm.predict(query), {"x"}, ok and in_range(query), malformed(query))
    if pred is None:
        return
    assert pred.shape == (query.shape[0],)
    assert_finite(pred, "k-NN predict")
    if not in_range(query):  # the float64 distances below could overflow
        return
    # brute force where the k-th and (k+1)-th distances are apart (ties may go either way)
    dist = torch.cdist(query.double(), points.double())  # (m, N)
    order = dist.sort(dim=1)
    for i in range(query.shape[0]):
        if k < points.shape[0] and float(order.values[i, k] - order.values[i, k - 1]) <= 1e-6 * (
                1 + float(order.values[i, k])):
            continue
        expected = values.double()[order.indices[i, :k]].mean()
        assert abs(float(pred[i]) - float(expected)) <= 1e-12 * (1 + float(values.double().abs().max())) * k


test_knn, test_knn_long = fuzz(k=maybe_bad(st.integers(1, 6), odds=9), data=st.data())(check_knn)
