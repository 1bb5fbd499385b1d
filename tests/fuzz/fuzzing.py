"""Shared pieces of the fuzz tests: the two hypothesis profiles, input strategies and the outcome oracle.

Oracle: every call either returns a correct result (finite, of the right shape and dtype, when its inputs are
finite and in range) or raises a ValueError/TypeError whose message names the offending argument. Any other
exception, a NaN/Inf result from finite input, or a hang (hypothesis deadline, pytest-timeout) fails the test.

Profiles: "ci" (``make test``: derandomized, so the same examples every run, few of them) and "long" (many
more examples, fresh ones each run; ``pytest -m slow tests/fuzz``). ``fuzz`` turns one property into both
tests.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

DEADLINE = timedelta(seconds=10)  # one example on tiny shapes taking longer than this is a hang
_COMMON = dict(deadline=DEADLINE, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, database=None, max_examples=300, **_COMMON)
settings.register_profile("long", max_examples=1500, **_COMMON)
CI, LONG = settings.get_profile("ci"), settings.get_profile("long")
CI_TIMEOUT_S, LONG_TIMEOUT_S = 120, 3600


def fuzz(examples: float = 1.0, **strategies):
    """Decorator: the property ``fn(**drawn)`` as a pair (quick test in profile "ci", long test in "long",
    marked slow). examples scales both profiles' max_examples for properties that are costly per example.

    Use: ``test_x, test_x_long = fuzz(a=st.integers())(check_x)``.
    """
    def make(fn):
        def scaled(profile):
            return settings(profile, max_examples=max(1, round(profile.max_examples * examples)))

        quick, long = (scaled(profile)(given(**strategies)(fn)) for profile in (CI, LONG))
        return (pytest.mark.timeout(CI_TIMEOUT_S)(quick),
                pytest.mark.slow(pytest.mark.timeout(LONG_TIMEOUT_S)(long)))
    return make


DEVICES = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
OTHER_DTYPES = (torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64)

# Entries planted into otherwise ordinary tensors: non-finite, huge-but-finite (float32's max is 3.4e38,
# float64's 1.8e308), subnormal, signed zero. Casting to a narrower dtype may turn a huge entry into Inf, as
# it would for a user.
SPECIAL_VALUES = (math.nan, math.inf, -math.inf, 1e38, -1e38, 3e38, -3e38, 1e300, 1.7e308, -1.7e308, 5e-324,
                  -1e-45, 1e-40, -0.0, 0.0, 65504.0, 1e5, -1e5)
SCALES = (1.0, 1.0, 1.0, 1e-3, 30.0, 1e-40, 1e-300, 1e4, 1e20, 1e38)

# Largest |entry| for which inputs count as "in range": every computation here is then far from overflow, so
# a clean result is required; above it a clear error naming the input is allowed too (never NaN/Inf output).
IN_RANGE = {torch.float16: 8.0, torch.bfloat16: 1e3, torch.float32: 1e4, torch.float64: 1e4}


def rarely(draw, n: int) -> bool:
    """True one draw in n + 1. The rare branch is the largest integer: hypothesis starts from, and shrinks
    toward, small ones, so early and shrunk examples stay on the common branch."""
    return draw(st.integers(0, n)) == n


@st.composite
def tensors(draw, shape, dtypes=FLOAT_DTYPES, other_dtypes=True, specials=True, device="cpu"):
    """A tensor of the given shape: seeded normal entries times a drawn scale, plus a few planted specials.

    dtypes: the floating dtypes to draw from; other_dtypes: also draw int/bool/complex now and then; device:
    where the tensor lives (the MoE layer fuzz draws it from DEVICES, the devices present, and moves the
    layer there).
    """
    choices = list(dtypes) + (list(OTHER_DTYPES) if other_dtypes else [])
    dtype = draw(st.sampled_from(choices)) if rarely(draw, 7) else draw(st.sampled_from(list(dtypes)))
    seed = draw(st.integers(0, 2**32 - 1))
    gen = torch.Generator().manual_seed(seed)
    numel = math.prod(shape)
    if dtype == torch.bool:
        x = torch.rand(shape, generator=gen) < 0.5
    elif not (dtype.is_floating_point or dtype.is_complex):
        x = torch.randint(-3 if dtype != torch.uint8 else 0, 4, shape, generator=gen).to(dtype)
    else:
        scale = draw(st.sampled_from(SCALES))
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        if specials and numel and rarely(draw, 3):
            for _ in range(draw(st.integers(1, 3))):
                x.view(-1)[draw(st.integers(0, numel - 1))] = draw(st.sampled_from(SPECIAL_VALUES))
        x = x.to(dtype) if dtype.is_floating_point else x.to(torch.complex128).to(dtype)
    return x.to(device)


def is_float(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def is_finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all()) if x.numel() else True


def malformed(x, shape_ok: bool = True) -> bool:
    """x must be refused: not a floating tensor, the wrong shape, or NaN/Inf entries."""
    return not (is_float(x) and shape_ok and is_finite(x))


def in_range(x: torch.Tensor) -> bool:
    """Finite floating x with every |entry| <= IN_RANGE of its dtype."""
    return is_float(x) and is_finite(x) and (not x.numel() or float(x.abs().max()) <= IN_RANGE[x.dtype])


def is_int(value, low: int, high: int = 2**63 - 1) -> bool:
    """The library's rule for integer arguments: an int (not a bool) in [low, high], at most int64's max."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_positive_float(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


# Arguments of the wrong kind or out of range, for constructors and parameters.
BAD_SCALARS = (None, True, False, -1, 0, 2.5, -0.0, math.nan, math.inf, "2", [1], 2**70, -(2**70), 1e-320)


def maybe_bad(valid: st.SearchStrategy, bad=BAD_SCALARS, odds: int = 4) -> st.SearchStrategy:
    """Mostly a valid value, one draw in odds + 1 something from ``bad`` (the largest integer: see rarely)."""
    return st.integers(0, odds).flatmap(lambda r: st.sampled_from(bad) if r == odds else valid)


CLEAN_ERRORS = (ValueError, TypeError)


def outcome(call, names, expect_success: bool, must_refuse: bool = False):
    """Run ``call()``. Returns its result, or None when it raised a clean error.

    names: words of which the error message must contain one (the offending arguments); expect_success: the
    inputs are valid and in range, so no error is allowed at all; must_refuse: some argument is of the wrong
    kind or out of its documented range (a wrong type, NaN/Inf, a bad setting), so a result is not allowed
    either. Any exception other than ValueError/TypeError propagates and fails the test.
    """
    try:
        result = call()
    except CLEAN_ERRORS as error:
        event(f"refused: {type(error).__name__}: {str(error)[:48]}")
        message = str(error)
        if expect_success:
            raise AssertionError(
                f"valid, in-range input was refused: {type(error).__name__}: {message}") from error
        if not any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message) for n in names):
            raise AssertionError(
                f"{type(error).__name__} does not name any of {sorted(names)}: {message!r}") from error
        return None
    event("accepted")
    assert not must_refuse, f"invalid arguments were accepted (expected an error naming {sorted(names)})"
    return result


def assert_finite(t: torch.Tensor, what: str) -> None:
    assert is_finite(t.detach()), f"{what} holds NaN/Inf (returned instead of a clear error)"


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2
