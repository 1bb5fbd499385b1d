"""Prepacked expert weights (``kernels.cpu.onednn.PackedOperand``, ``ExpertBank.prepack``): same results,
never stale, opt-in.

The staleness check has a negative control: a bank whose stamp ignores in-place updates keeps serving the old
weights, and the test that catches it must fail on that bank.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch

from sparse_bench.dispatch import choose_dispatch
from sparse_bench.experts import ExpertBank
from sparse_bench.kernels.cpu import onednn, prepack
from sparse_bench.moe import MoELayer
from sparse_bench.routing.topk import TopKRouter

# Packing is oneDNN's weight reorder, absent from torch builds without oneDNN (some non-x86 builds): there the
# tests that need a packed copy cannot run, while the fallback tests below (no copy, original operand) still do.
needs_packing = pytest.mark.skipif(not onednn.packing_available(torch.ones(1)),
                                   reason="this build has no oneDNN")
E, D, H = 6, 48, 24


def make_layer(seed=0, dispatch="sorted", prepack=False, **bank_kwargs):
    gen = torch.Generator().manual_seed(seed)
    router = TopKRouter(D, E, k=2, normalize=True, generator=gen)
    bank = ExpertBank(E, D, H, activation=bank_kwargs.pop("activation", "swiglu"), generator=gen,
                      prepack=prepack, **bank_kwargs)
    x = torch.randn(80, D, generator=gen)
    return MoELayer(router, bank, dispatch=dispatch), x


@needs_packing
@pytest.mark.parametrize("n", [1, 7, 300])
def test_packed_operand_gives_the_bits_of_the_unpacked_product(n):
    gen = torch.Generator().manual_seed(n)
    a, b = torch.randn(n, 64, generator=gen), torch.randn(64, 40, generator=gen)
    packed = onednn.PackedOperand(b)
    assert packed.packed is not None and packed.shape == b.shape
    assert torch.equal(onednn.mm(a, packed), onednn.mm(a, b))
    out = torch.empty(n, 40)
    assert torch.equal(onednn.mm_out(a, packed, out), onednn.mm(a, b))
    want = a.double() @ b.double()
    # fp32 products of K = 64 terms: error well under 1e-5 of the output's scale (as test_kernels_products)
    assert (onednn.mm(a, packed).double() - want).abs().max() <= 1e-5 * want.abs().max()


def test_packed_operand_falls_back_to_the_original():
    gen = torch.Generator().manual_seed(1)
    b = torch.randn(5, 3, generator=gen)
    a = torch.randn(4, 5, generator=gen, requires_grad=True)
    onednn.mm(a, onednn.PackedOperand(b)).sum().backward()  # autograd: torch.mm on the original
    assert torch.allclose(a.grad, b.sum(dim=1).expand(4, 5))
    double = onednn.PackedOperand(b.double())
    assert double.packed is None  # fp32 only
    assert torch.equal(onednn.mm(a.detach().double(), double), a.detach().double() @ b.double())
    with pytest.raises(ValueError, match="mm needs"):
        onednn.mm(torch.ones(2, 4), onednn.PackedOperand(b))


@needs_packing
@pytest.mark.parametrize("dispatch", ["sorted", "auto"])
def test_prepacked_layer_gives_the_same_bits(dispatch):
    layer, x = make_layer(dispatch=dispatch)
    packed = MoELayer(layer.router, layer.experts.sharing_weights(prepack=True), dispatch=dispatch)
    with torch.no_grad():
        assert torch.equal(packed(x), layer(x))
    assert prepack.cached_packs(packed.experts) is not None and prepack.cached_packs(layer.experts) is None
    assert packed.experts.w_in is layer.experts.w_in  # shared parameters, not copies


def _step_and_compare(layer, x):
    """An optimizer-like in-place update, then the prepacked forward against a fresh unpacked bank."""
    with torch.no_grad():
        layer(x)  # packs the current weights
        layer.experts.w_in.mul_(-0.5)  # in place, as an optimizer step does
        layer.experts.w_out.add_(0.25)
        unpacked = MoELayer(layer.router, layer.experts.sharing_weights(prepack=False), dispatch="sorted")
        return layer(x), unpacked(x)


@needs_packing
def test_packs_follow_in_place_updates():
    layer, x = make_layer(prepack=True)
    got, want = _step_and_compare(layer, x)
    assert torch.equal(got, want)


@needs_packing
def test_stale_packs_are_caught(monkeypatch):
    """Negative control of the test above: with a stamp blind to updates, the packs go stale and results differ."""
    monkeypatch.setattr(prepack, "weights_stamp", lambda *weights: ())
    layer, x = make_layer(prepack=True)
    got, want = _step_and_compare(layer, x)
    assert not torch.allclose(got, want)


@needs_packing
def test_packs_are_not_used_with_autograd_or_where_they_do_not_apply():
    layer, x = make_layer(prepack=True)
    with torch.no_grad():
        assert prepack.packs_for(layer.experts) is not None
    assert prepack.packs_for(layer.experts) is None  # grad mode: the packs stay, unused
    assert prepack.cached_packs(layer.experts) is not None
    plain, _ = make_layer()
    y = layer(x)
    y.sum().backward()
    plain(x).sum().backward()
    assert torch.equal(layer.experts.w_in.grad, plain.experts.w_in.grad)
    for kwargs in ({"activation": "relu"}, {"bias": True}):
        other, _ = make_layer(prepack=True, **kwargs)
        assert not other.experts.prepack_applies()
        with torch.no_grad():
            assert prepack.packs_for(other.experts) is None
    double, xd = make_layer(prepack=True)
    double = double.double()
    with torch.no_grad():
        assert prepack.packs_for(double.experts) is None  # fp32 only: the packs are dropped
        assert prepack.cached_packs(double.experts) is None
        double(xd.double())


@needs_packing
def test_auto_takes_sorted_on_prepacked_weights_without_autograd():
    gen = torch.Generator().manual_seed(2)
    router = TopKRouter(D, 16, k=1, generator=gen)  # many experts, few rows each: "padded" unpacked
    bank = ExpertBank(16, D, H, activation="swiglu", generator=gen)
    plan = router(torch.randn(64, D, generator=gen))
    cpu = torch.device("cpu")
    assert choose_dispatch(plan, bank, cpu, num_threads=2) == "padded"
    bank.prepack = True
    assert choose_dispatch(plan, bank, cpu, num_threads=2) == "padded"  # autograd: the packs are not used
    with torch.no_grad():
        assert choose_dispatch(plan, bank, cpu, num_threads=2) == "sorted"


def test_state_dict_and_deepcopy_leave_the_packs_out():
    layer, x = make_layer(prepack=True)
    with torch.no_grad():
        y = layer(x)
    assert set(layer.experts.state_dict()) == {"w_in", "w_out"}
    clone = copy.deepcopy(layer)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert prepack.cached_packs(clone.experts) is None and prepack.cached_packs(loaded.experts) is None
    with torch.no_grad():
        assert torch.equal(clone(x), y) and torch.equal(loaded(x), y)
