"""Fuzz the target functions, the input samplers and the hash families."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from fuzzing import (
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
from sparse_bench.hashing import MERSENNE_31, PStableHash, SimHash, universal_hash
from sparse_bench.targets import (
    bump_family,
    hypercube_function,
    lipschitz_constant,
    random_polynomial,
    random_subspace,
    uniform_cube,
    uniform_sphere,
    uniform_subspace_cube,
)

SAMPLE_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


@st.composite
def points(draw, d):
    """(x, in range, malformed): (n, d) mostly, sometimes another width."""
    n = draw(st.integers(0, 8))
    x = draw(tensors((n, d + 1 if rarely(draw, 12) else d), dtypes=SAMPLE_DTYPES))
    return x, in_range(x) and x.shape[1] == d, malformed(x, x.shape[1] == d)


def check_targets(kind, d, degree, spacing, seed, data):
    if kind == "polynomial":
        valid = {"d": is_int(d, 1), "degree": is_int(degree, 0), "seed": is_int(seed, 0)}
        make = lambda: random_polynomial(d, degree, seed)  # noqa: E731
        big = is_int(d, 1) and is_int(degree, 0) and math.comb(d + degree, degree) > 10**5
    elif kind == "hypercube":
        valid = {"d": is_int(d, 1, 20), "seed": is_int(seed, 0)}
        make = lambda: hypercube_function(d, seed)  # noqa: E731
        big = False
    else:
        valid = {"k": is_int(d, 1), "spacing": is_positive_float(spacing) and spacing <= 2,
                 "seed": is_int(seed, 0)}
        make = lambda: bump_family(d, spacing, seed)  # noqa: E731
        big = valid["k"] and valid["spacing"] and int(2 / spacing + 1e-9) ** d > 10**5
    bad = {name for name, ok in valid.items() if not ok}
    # far too many monomials or bumps to build: a clear error naming the sizes (never a hang or a crash)
    names = bad | ({"d", "degree", "k", "spacing"} if big else set())
    f = outcome(make, names, not bad and not big, bool(bad))
    if f is None:
        return
    x, ok, bad_x = data.draw(points(d))
    y = outcome(lambda: f(x), {"x"}, ok, bad_x)
    if y is None:
        return
    assert y.shape == (x.shape[0],) and y.dtype == x.dtype
    assert_finite(y, kind)
    if x.shape[0] and x.dtype == torch.float64 and bool((x.abs() <= 1).all()):
        bound = 1.0 if kind != "bumps" else f.radius
        assert float(y.abs().max()) <= bound * (1 + 1e-12), "target outside its stated range on the cube"
        assert lipschitz_constant(f, x) <= f.lipschitz_bound * (1 + 1e-9) + 1e-12


test_targets, test_targets_long = fuzz(
    kind=st.sampled_from(["polynomial", "hypercube", "bumps"]), d=maybe_bad(st.integers(1, 4), odds=9),
    degree=maybe_bad(st.integers(0, 4), (-1, None, 2.0, 2**70, 200), odds=9),
    spacing=maybe_bad(st.sampled_from([0.5, 1.0, 2.0, 0.25]), (0.0, 3.0, 1e-300, math.nan, None), odds=9),
    seed=maybe_bad(st.integers(0, 2**63 - 1), odds=9), data=st.data(),
)(check_targets)


def check_samplers(kind, n, d, k, dtype, device, data):
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 99)))
    generator = gen if not rarely(data.draw, 12) else "gen"
    valid = {"n": is_int(n, 0), "d": is_int(d, 1), "generator": generator is gen}
    if kind in ("cube", "sphere"):
        valid["dtype"] = isinstance(dtype, torch.dtype) and dtype.is_floating_point
        valid["device"] = device in (None, "cpu")
        sample = uniform_cube if kind == "cube" else uniform_sphere
        call = lambda: sample(n, d, generator, device, dtype)  # noqa: E731
    else:
        valid["k"] = is_int(k, 1, d if is_int(d, 1) else 2**63 - 1)
        valid["dtype"] = isinstance(dtype, torch.dtype) and dtype.is_floating_point
        valid.pop("n")

        def call():
            basis = random_subspace(d, k, generator, dtype)
            return uniform_subspace_cube(n if is_int(n, 0) else 3, basis.double(), generator)
    bad = {name for name, ok in valid.items() if not ok}
    x = outcome(call, bad | {"basis"}, not bad, bool(bad))
    if x is None:
        return
    assert_finite(x, kind)
    if kind == "cube":
        assert x.shape == (n, d) and x.dtype == dtype and bool((x.abs() <= 1).all())
    elif kind == "sphere":
        norms = x.double().norm(dim=1)
        assert x.shape == (n, d) and bool(((norms - 1).abs() <= 4 * d * torch.finfo(dtype).eps).all())
    else:
        assert bool((x.abs() <= 1).all())


test_samplers, test_samplers_long = fuzz(
    kind=st.sampled_from(["cube", "sphere", "subspace"]), n=maybe_bad(st.integers(0, 9), odds=9),
    d=maybe_bad(st.integers(1, 4), odds=9), k=maybe_bad(st.integers(1, 4), odds=9),
    dtype=maybe_bad(st.sampled_from([torch.float64, torch.float32]),
                    (torch.int64, torch.bool, "float64", None), odds=9),
    device=maybe_bad(st.sampled_from([None, "cpu"]), ("gpu", 3), odds=9), data=st.data(),
)(check_samplers)


def universal_hash_reference(codes: torch.Tensor, seed: int) -> list[int]:
    """The documented hash in Python integers: two multilinear hashes mod 2^31 - 1, concatenated."""
    m = codes.shape[1]
    gen = torch.Generator().manual_seed(seed)
    coeffs = torch.randint(1, MERSENNE_31, (2, m + 1), generator=gen, dtype=torch.int64).tolist()
    out = []
    for row in codes.tolist():
        halves = [(sum(c * (v % MERSENNE_31) for c, v in zip(co[:m], row)) + co[m]) % MERSENNE_31
                  for co in coeffs]
        out.append(halves[0] * 2**31 + halves[1])
    return out


def check_universal_hash(rows, width, seed, kind, data):
    extremes = st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), MERSENNE_31, -MERSENNE_31])
    values = data.draw(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), extremes),
                                min_size=rows * width, max_size=rows * width))
    codes = torch.tensor(values, dtype=torch.int64).reshape(rows, width)
    if kind == "int32":
        codes = codes.to(torch.int32)
    elif kind == "float":
        codes = codes.double()
    elif kind == "rank":
        codes = codes.reshape(-1)
    valid = kind == "ok" and is_int(seed, 0)
    out = outcome(lambda: universal_hash(codes, seed), {"codes", "seed"}, valid, not valid)
    if out is None:
        return
    assert out.dtype == torch.int64 and out.shape == (rows,)
    assert out.tolist() == universal_hash_reference(codes, seed)


test_universal_hash, test_universal_hash_long = fuzz(
    rows=st.integers(0, 5), width=st.integers(0, 4), seed=maybe_bad(st.integers(0, 2**63 - 1), odds=9),
    kind=maybe_bad(st.just("ok"), ("int32", "float", "rank"), odds=9), data=st.data(),
)(check_universal_hash)


def check_lsh_hashes(family, d, num_hashes, width, seed, data):
    if family == "simhash":
        valid = {"d": is_int(d, 1), "bits": is_int(num_hashes, 1, 62), "seed": is_int(seed, 0)}
        make = lambda: SimHash(d, num_hashes, seed)  # noqa: E731
    else:
        valid = {"d": is_int(d, 1), "num_hashes": is_int(num_hashes, 1), "width": is_positive_float(width),
                 "seed": is_int(seed, 0)}
        make = lambda: PStableHash(d, num_hashes, width, seed)  # noqa: E731
    bad = {name for name, ok in valid.items() if not ok}
    h = outcome(make, bad, not bad, bool(bad))
    if h is None:
        return
    x, ok, bad_x = data.draw(points(d))
    sane = family == "simhash" or 1e-3 <= width <= 1e4
    buckets = outcome(lambda: h.bucket(x), {"x", "width"}, ok and sane, bad_x)
    if buckets is None:
        return
    assert buckets.shape == (x.shape[0],) and buckets.dtype == torch.int64
    if family == "simhash":
        assert bool(((buckets >= 0) & (buckets < 2**num_hashes)).all())
    if not (ok and sane):  # batch independence holds up to a projection's last bit (hashing.py's docstring)
        return
    for i in range(x.shape[0]):  # a row's bucket depends on that row alone
        assert int(h.bucket(x[i:i + 1])[0]) == int(buckets[i])


test_lsh_hashes, test_lsh_hashes_long = fuzz(
    family=st.sampled_from(["simhash", "pstable"]), d=maybe_bad(st.integers(1, 5), odds=9),
    num_hashes=maybe_bad(st.integers(1, 62), odds=9),
    width=maybe_bad(st.sampled_from([1.0, 0.25, 4.0, 1e-300, 1e300]), odds=9),
    seed=maybe_bad(st.integers(0, 2**63 - 1), odds=9), data=st.data(),
)(check_lsh_hashes)
