"""Regressions found by the fuzz tests (tests/fuzz/): each is the exact input that failed, as a plain test.

Every test here failed before its fix: a raw torch/Python exception, a silent NaN/Inf or wrong result, or an
error that did not name the offending argument.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sparse_bench import ExpertBank, MoELayer, SharedExpert
from sparse_bench.blocks import (
    ConvPoolBlock,
    avgpool_plan,
    compose_conv_kernels,
    conv2d_im2col,
    conv2d_toeplitz_matrix,
    lse_pool,
    maxpool_plan,
)
from sparse_bench.dispatch import DISPATCHERS, dispatch_grouped, dispatch_loop
from sparse_bench.dsm import LSHModel, TopKDSM, knn_as_dsm
from sparse_bench.hashing import PStableHash, SimHash
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, TopKRouter
from sparse_bench.targets import (
    bump_family,
    hypercube_function,
    lipschitz_constant,
    random_polynomial,
    uniform_cube,
)


# ---- routers ----

def test_sizes_beyond_int64_are_refused_by_name():
    """d_model=2**70 reached torch.randn, which raised a TypeError about unpacking a long long."""
    with pytest.raises(ValueError, match=r"d_model must be in \[1, 2\*\*63 - 1\], got 11805916207174113"):
        TopKRouter(2**70, 1)


def test_jitter_must_be_a_number():
    """jitter=None raised float()'s TypeError, naming no argument; jitter="0.5" was accepted as 0.5."""
    for jitter in (None, "0.5"):
        with pytest.raises(TypeError, match="jitter must be a number"):
            TopKRouter(1, 1, jitter=jitter)


def test_z_loss_that_overflows_is_refused():
    """Finite logits above sqrt(float32's max) gave aux["z_loss"] = inf; float16 logits above 256 too."""
    with pytest.raises(ValueError, match="z-loss"):
        ExpertChoiceRouter(1, 1, 0.5).plan_from_logits(torch.tensor([[3e38]]))
    plan = TopKRouter(4, 2).plan_from_logits(torch.tensor([[300.0, 0.0]], dtype=torch.float16))
    assert plan.aux["z_loss"].dtype == torch.float32 and plan.aux["z_loss"] == 300.0**2


@pytest.mark.parametrize("seed", [None, math.nan, math.inf, 2**64, 1.5])
def test_seeds_must_be_integers_in_range(seed):
    """LSHRouter(seed=None/nan/inf) raised int()'s TypeError/ValueError/OverflowError, 2**64 torch's overflow
    error, none naming seed; 1.5 was truncated to 1."""
    makers = [lambda: LSHRouter(1, 1, seed=seed), lambda: HashRouter(1, seed=seed),
              lambda: SimHash(1, 1, seed), lambda: PStableHash(1, 1, 1.0, seed),
              lambda: LSHModel(1, "simhash", seed=seed), lambda: TopKDSM(1, 1, 1, seed=seed),
              lambda: random_polynomial(1, 1, seed=seed)]
    for make in makers:
        with pytest.raises((TypeError, ValueError), match="seed must be"):
            make()


def test_capacity_beyond_int64_and_capacity_factors_beyond_the_batch():
    """capacity=2**70 was accepted, and routing with it (or with a factor of 1e20, whose C is above 2**63)
    raised OverflowError ("int too big to convert"): a C of T * k or more drops nothing."""
    with pytest.raises(ValueError, match=r"capacity must be in \[1, 2\*\*63 - 1\]"):
        TopKRouter(1, 1, capacity=2**70)
    plan = TopKRouter(4, 2, k=2, capacity_factor=1e20)(torch.randn(3, 4))
    assert plan.num_assignments == 6 and plan.dropped == 0 and plan.aux["capacity"] > 2**63


def test_lsh_router_names_num_hashes_and_checks_width():
    """num_hashes=63 with simhash was refused as "bits must be in [1, 62]"; width="2" was accepted."""
    with pytest.raises(ValueError, match=r"num_hashes must be in \[1, 62\], got 63"):
        LSHRouter(4, 2, "simhash", num_hashes=63)
    with pytest.raises(TypeError, match="width must be a number"):
        LSHRouter(4, 2, "pstable", width="2")


def test_hash_router_token_ids_that_are_not_a_tensor():
    """A list of token ids raised AttributeError ('list' object has no attribute 'shape')."""
    with pytest.raises(TypeError, match="token_ids must be an int64 torch.Tensor"):
        HashRouter(1)(torch.empty(0, 1), token_ids=[])


def test_flags_must_be_bools():
    """Non-bool flags were read by truthiness: normalize="False" normalised, count_include_pad=None was
    False."""
    with pytest.raises(TypeError, match="normalize must be a bool"):
        TopKRouter(4, 2, k=2, normalize="False")
    with pytest.raises(TypeError, match="balanced must be a bool"):
        HashRouter(2, balanced="no", token_frequencies=torch.ones(3))
    with pytest.raises(TypeError, match="bias must be a bool"):
        ExpertBank(2, 4, 4, bias="no")
    with pytest.raises(TypeError, match="prepack must be a bool"):
        ExpertBank(2, 4, 4, prepack=1)
    with pytest.raises(TypeError, match="count_include_pad must be a bool"):
        avgpool_plan(torch.zeros(1, 1, 2, 2), 2, count_include_pad=None)


def test_pstable_errors_name_x_and_width():
    """Cells beyond int64 from a huge x blamed the width alone; a width beyond float16's range made the
    offsets Inf and was blamed on x."""
    with pytest.raises(ValueError, match="projections of x / width"):
        LSHRouter(1, 1, "pstable", width=1.0)(torch.tensor([[1.5410e20]]))
    with pytest.raises(ValueError, match="width=1.18.*exceeds the range of x's dtype torch.float16"):
        LSHModel(1, "pstable", num_hashes=1, width=2**70).fit(torch.tensor([[1.541]], dtype=torch.float16),
                                                              torch.tensor([1.541], dtype=torch.float64))


# ---- MoE layer, dispatch ----

def test_moe_dtype_mismatch_names_x():
    """The message spoke of "expert input", which is no argument of the layer."""
    layer = MoELayer(TopKRouter(4, 2), ExpertBank(2, 4, 4).double())
    with pytest.raises(TypeError, match="^x is torch.float32 but expert weights are torch.float64"):
        layer(torch.randn(3, 4))


@pytest.mark.parametrize("name", sorted(DISPATCHERS))
def test_dispatch_refuses_nan_input(name):
    """A NaN token routed by token id went through every strategy into a NaN output."""
    x = torch.tensor([[math.nan]])
    plan = HashRouter(1)(x, token_ids=torch.tensor([0]))
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        DISPATCHERS[name](x, plan, ExpertBank(1, 1, 1))


@pytest.mark.parametrize("name", sorted(DISPATCHERS))
def test_dispatch_refuses_inf_input_that_relu_turns_into_zero(name):
    """x = Inf times a negative weight is -Inf, relu makes it 0: a finite output from an Inf input."""
    bank = ExpertBank(1, 1, 1)
    with torch.no_grad():
        bank.w_in.fill_(-1.0)
    x = torch.tensor([[math.inf]])
    plan = HashRouter(1)(x, token_ids=torch.tensor([0]))
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        DISPATCHERS[name](x, plan, bank)


def test_dispatch_refuses_a_plan_that_is_not_a_plan():
    with pytest.raises(TypeError, match="plan must be a RoutingPlan"):
        DISPATCHERS["sorted"](torch.zeros(1, 1), torch.zeros(1, dtype=torch.int64), ExpertBank(1, 1, 1))


def test_moe_output_that_overflows_is_refused():
    """Finite inputs whose expert outputs overflow float32 came back as Inf (a hash router never scans
    them)."""
    bank = ExpertBank(1, 8, 4)
    with torch.no_grad():
        bank.w_in.fill_(1.0)
        bank.w_out.fill_(1.0)
    x = torch.full((2, 8), 3e38)
    with pytest.raises(ValueError, match="x is finite but the experts' combined output is not"):
        MoELayer(HashRouter(1, key="input"), bank)(x)
    shared = SharedExpert(ExpertBank(1, 8, 4))
    with torch.no_grad():
        shared.expert.w_in.fill_(1.0)
        shared.expert.w_out.fill_(1.0)
        bank.w_in.zero_()  # the routed experts give 0: only the shared expert overflows
    with pytest.raises(ValueError, match="x is finite but the layer's output is not"):
        MoELayer(HashRouter(1, key="input"), bank, shared_expert=shared)(x)


@pytest.mark.parametrize("experts,d_model,d_hidden,activation", [(2, 1, 4, "swiglu"), (1, 4, 1, "relu"),
                                                                  (1, 3, 4, "relu")])
def test_grouped_dispatch_with_rows_not_16_byte_aligned(experts, d_model, d_hidden, activation):
    """PyTorch's grouped_mm raised "strides should be multiple of 16 bytes" (a (2, 1) operand: row stride 4
    bytes, which the alignment check skipped as a dimension of size 1)."""
    bank = ExpertBank(experts, d_model, d_hidden, activation)
    x = torch.randn(1, d_model, generator=torch.Generator().manual_seed(0))  # one token: a (1, d) operand
    plan = TopKRouter(d_model, experts)(x)
    torch.testing.assert_close(dispatch_grouped(x, plan, bank), dispatch_loop(x, plan, bank))


# ---- convolution and pooling ----

def test_conv_refuses_non_finite_weight_bias_of_another_dtype():
    """A NaN weight gave NaN outputs (or a Toeplitz matrix that silently dropped it); a float64 bias turned a
    float32 convolution's output into float64."""
    x = torch.randn(1, 1, 3, 3)
    with pytest.raises(ValueError, match="weight contains NaN or Inf"):
        conv2d_im2col(x, torch.tensor([[[[math.nan]]]]))
    with pytest.raises(ValueError, match="weight contains NaN or Inf"):
        conv2d_toeplitz_matrix(torch.tensor([[[[math.nan]]]]), (1, 2, 2))
    with pytest.raises(ValueError, match="weight contains NaN or Inf"):
        conv2d_toeplitz_matrix(torch.tensor([[[[math.nan, -0.2934, -2.1788]]]]), (1, 1, 1), padding=(0, 1))
    with pytest.raises(TypeError, match="bias dtype torch.float64 differs from x dtype torch.float32"):
        conv2d_im2col(x, torch.randn(2, 1, 2, 2), torch.zeros(2, dtype=torch.float64))


def test_grouped_conv_of_an_empty_batch():
    """N = 0 with groups > 1 raised RuntimeError (a reshape of 0 elements with a -1 dimension)."""
    y = conv2d_im2col(torch.randn(0, 2, 4, 4), torch.randn(2, 1, 3, 3), groups=2)
    assert y.shape == F.conv2d(torch.randn(0, 2, 4, 4), torch.randn(2, 1, 3, 3), groups=2).shape


def test_images_without_pixels_are_refused():
    """H or W = 0 with padding raised F.pad's RuntimeError ("Only zero batch or zero channel inputs ...")."""
    empty = torch.empty(1, 1, 1, 0)
    with pytest.raises(ValueError, match="x must have H, W >= 1"):
        conv2d_im2col(empty, torch.randn(1, 1, 1, 1), padding=1)
    with pytest.raises(ValueError, match="x must have H, W >= 1"):
        maxpool_plan(empty, 2, padding=1)
    with pytest.raises(ValueError, match="x must have H, W >= 1"):
        ConvPoolBlock(1, 1, 1, padding=1)(empty)


def test_conv_pool_block_native_overflow_is_refused_like_im2col():
    """Both paths returned Inf for a finite x whose convolution overflows float32."""
    x = torch.full((1, 1, 4, 4), 3e38)
    for impl in ("im2col", "native"):
        block = ConvPoolBlock(1, 1, 2, impl=impl, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            block.weight.fill_(1.0)
        with pytest.raises(ValueError, match="x is finite but the convolution is not"):
            block(x)


def test_compose_refuses_non_finite_kernels_and_overflow():
    """A NaN kernel composed into NaN; float32 kernels of 1.5e4 and 1.5e38 composed into Inf."""
    with pytest.raises(ValueError, match="first contains NaN or Inf"):
        compose_conv_kernels(torch.tensor([[[[math.nan]]]], dtype=torch.float64),
                             torch.ones(1, 1, 2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="the composed kernel overflows torch.float32"):
        compose_conv_kernels(torch.tensor([[[[15409.9609]]]]), torch.full((1, 1, 2, 2), 1.5410e38))


def log_mean_exp64(values: list[float], temperature: float) -> float:
    """log-mean-exp of a window's values in float64, the maximum taken out first (accurate at every T)."""
    top = max(values)
    mean = sum(math.expm1((v - top) / temperature) for v in values) / len(values)
    return top + temperature * math.log1p(mean)


def test_lse_pool_keeps_its_digits_at_large_temperature():
    """T * (logsumexp(x / T) - log n) lost a digit per decade of T: 2.9e-5 off at T = 1000 on two values near
    1 (beyond the n u bound of float32: n = 16 roundings of at most u * 1.541 each), and 0 instead of the
    mean 1.5 at T = 1e8."""
    x = torch.tensor([[[[1.5410], [-0.2934]]]])  # (1, 1, 2, 1): kernel 2, padding (0, 1) gives one window
    y = lse_pool(x, 2, 1000.0, padding=[0, 1])
    u = torch.finfo(torch.float32).eps / 2
    assert abs(float(y) - log_mean_exp64(x.reshape(-1).tolist(), 1000.0)) <= 16 * u * 1.5410
    mean = lse_pool(torch.tensor([[[[1.0, 2.0]]]]), (1, 2), 1e8)
    assert abs(float(mean) - 1.5) <= 16 * u * 2


# ---- formal model ----

def test_dsm_pre_activations_that_overflow_name_x():
    """A finite float32 query of 3e38 gave NaN predictions; a fit on it blamed "features"."""
    one = torch.ones(1, 1, dtype=torch.float64)
    model = TopKDSM(1, 1, 1).fit(one, one[0])
    with pytest.raises(ValueError, match="x is finite but its pre-activations"):
        model.predict(torch.tensor([[3e38]]))
    with pytest.raises(ValueError, match="x is finite but its pre-activations"):
        TopKDSM(1, 3, 1).fit(torch.tensor([[3e38], [1.0]]), torch.zeros(2))  # 3e38 * 1.54 overflows


def test_dsm_prediction_that_overflows_names_x():
    """A readout of 4.4e299 (fit to y = 1e300) times a feature of 1.5e20 predicted Inf."""
    model = TopKDSM(1, 1, 1).fit(torch.tensor([[1.5410]], dtype=torch.float64),
                                 torch.tensor([1e300], dtype=torch.float64))
    with pytest.raises(ValueError, match="x is finite but its prediction is not"):
        model.predict(torch.tensor([[1.5410e20]], dtype=torch.float64))


def test_dsm_fit_names_x_and_y():
    """An empty x was refused as "features must hold at least one sample", a NaN y as "targets contains
    ..."."""
    with pytest.raises(ValueError, match="x must hold at least one sample"):
        TopKDSM(1, 1, 1).fit(torch.empty(0, 1, dtype=torch.float64), torch.empty(0, dtype=torch.float64))
    with pytest.raises(ValueError, match="y contains NaN or Inf"):
        TopKDSM(1, 1, 1).fit(torch.zeros(1, 1), torch.tensor([math.nan]))
    with pytest.raises(ValueError, match="x must hold at least one sample"):
        LSHModel(1, "pstable", num_hashes=1, width=1.0).fit(torch.empty(0, 1), torch.empty(0))


def test_dsm_singular_ridge_system_is_a_clear_error():
    """Features of 6.6e19 swamped the ridge and torch.linalg.solve raised its LinAlgError (a RuntimeError)."""
    x = torch.tensor([[6.6135e19], [6.0e19]], dtype=torch.float64)
    with pytest.raises(ValueError, match="ridge system is singular or overflows"):
        TopKDSM(1, 3, 1).fit(x, torch.zeros(2, dtype=torch.float64))


def test_knn_points_too_large_for_the_construction():
    """Points of 1e300 made the bias -||b||^2 / 2 infinite, refused as "bias contains NaN or Inf", an argument
    knn_as_dsm does not have."""
    with pytest.raises(ValueError, match="points are too large for the construction"):
        knn_as_dsm(torch.tensor([[1e300]], dtype=torch.float64), torch.ones(1, dtype=torch.float64), 1)


def test_lsh_model_means_that_overflow_name_y():
    """Targets of 1.7e308 summed to Inf in float64: default and bucket means Inf, every prediction Inf."""
    y = torch.tensor([1.7e308, 1.7e308], dtype=torch.float64)
    with pytest.raises(ValueError, match="the means of y overflow float64"):
        LSHModel(1, "pstable", width=1.0).fit(torch.zeros(2, 1, dtype=torch.float64), y)


def test_lsh_model_mean_of_huge_constants():
    """default=1e308 in two empty buckets: their float64 sum overflowed and the prediction was Inf."""
    model = LSHModel(2, "simhash", num_tables=2, num_hashes=3, seed=0)
    x, y = torch.tensor([[1.5410, -0.2934]], dtype=torch.float64), torch.tensor([1.5410], dtype=torch.float64)
    model.fit(x, y, default=1e308)
    assert model.predict(torch.tensor([[0.6614, 0.2669]], dtype=torch.float64)).tolist() == [1e308]


def test_lsh_model_names_num_hashes():
    """num_hashes=63 with simhash was refused as "bits must be in [1, 62]"."""
    with pytest.raises(ValueError, match=r"num_hashes must be in \[1, 62\], got 63"):
        LSHModel(1, "simhash", num_hashes=63)


def test_lsh_model_default_must_be_a_number():
    """default="0" raised math.isfinite's TypeError, naming no argument; default=True was taken as 1.0."""
    for default in ("0", True):
        with pytest.raises(TypeError, match="default must be a number"):
            LSHModel(1, "pstable", width=1.0).fit(torch.zeros(2, 1), torch.zeros(2), default=default)


# ---- targets and samplers ----

def test_hypercube_of_no_points():
    """n = 0 raised RuntimeError (a reshape of 0 elements with a -1 dimension)."""
    assert hypercube_function(1)(torch.empty(0, 1, dtype=torch.float64)).shape == (0,)


def test_bumps_of_float16_points():
    """torch.cdist has no float16 kernel on CPU: NotImplementedError."""
    f = bump_family(1, 1.0)
    y = f(torch.tensor([[0.25]], dtype=torch.float16))
    assert y.dtype == torch.float16 and float(y) == float(f(torch.tensor([[0.25]], dtype=torch.float64))) != 0


def test_lipschitz_constant_at_a_cone_rim_and_of_a_constant():
    """At x = 1.5e-40, on the rim of two touching cones of spacing 0.5, autograd through clamp_min summed both
    slopes: a "lower bound" of 2 on a Lipschitz constant of 1. A degree-0 polynomial raised autograd's
    RuntimeError ("element 0 of tensors does not require grad")."""
    x = torch.tensor([[1.5410e-40]], dtype=torch.float64)
    f = bump_family(1, 0.5, seed=1)
    assert lipschitz_constant(f, x) <= f.lipschitz_bound
    assert lipschitz_constant(random_polynomial(1, 0), torch.tensor([[0.0015]], dtype=torch.float64)) == 0.0


def test_target_that_overflows_names_x():
    """A finite float32 point far outside the cube (1.5e20, squared) gave Inf."""
    with pytest.raises(ValueError, match="x is finite but f\\(x\\) is not"):
        random_polynomial(1, 2)(torch.tensor([[1.5410e20]]))


def test_targets_too_large_to_build_are_refused():
    """degree=2**40 never returned (a loop over all monomials); spacing=1e-300 raised OverflowError."""
    with pytest.raises(ValueError, match="more than 1048576 monomials"):
        random_polynomial(4, 2**40)
    with pytest.raises(ValueError, match="bumps, more than 1048576"):
        bump_family(2, 1e-300)


def test_samplers_refuse_bad_dtype_and_device():
    """An integer dtype raised NotImplementedError ("check_uniform_bounds"), device="gpu" a RuntimeError."""
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype"):
        uniform_cube(3, 2, gen, dtype=torch.int64)
    with pytest.raises(ValueError, match="device must be a device this build can use"):
        uniform_cube(3, 2, gen, device="gpu")
