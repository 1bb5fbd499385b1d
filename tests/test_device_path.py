"""The device path (what CUDA runs), run on CPU tensors (``device_path_on_cpu``): it computes what the host
path computes, gives the same bits twice, and calls no ATen operation that PyTorch documents as
nondeterministic on CUDA, in the forward or the backward, for every router and dispatch strategy."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from moe_cases import ROUTERS, make_router, numpy_seed_tokens, relative_error
from sparse_bench import ExpertBank, MoELayer
from sparse_bench.dispatch import DISPATCHERS, Strategy, dispatch_grouped
from sparse_bench.device_path import device_path_on_cpu, host_path

NUM_TOKENS = 64
# fp32 against fp32: the paths differ in summation order (combine, grouped products) and in the router's GEMM
# kernel (oneDNN on the host path); a token's output sums at most E terms of size 1, each rounded once more.
REL_TOL = 1e-5

aten = torch.ops.aten

# The operations PyTorch lists as nondeterministic on CUDA: both lists (made deterministic / raising in
# deterministic mode) in the docstring of ``torch.use_deterministic_algorithms`` (torch 2.13), as the ATen
# calls they issue; autograd's backward of gather, index_select, indexing, repeat_interleave and embedding
# shows up as the scatter_add / index_add / index_put it calls.
ALWAYS_DENIED = {
    aten.index_add, aten.index_add_, aten.scatter_add, aten.scatter_add_, aten.scatter_reduce,
    aten.scatter_reduce_, aten.index_put, aten.index_put_, aten._index_put_impl_, aten.put, aten.put_,
    aten.index_copy, aten.index_copy_, aten.histc, aten.embedding_dense_backward, aten.index_select_backward,
    aten._embedding_bag_backward, aten._embedding_bag_dense_backward, aten.avg_pool3d_backward,
    aten._adaptive_avg_pool2d_backward, aten._adaptive_avg_pool3d_backward, aten.adaptive_max_pool2d_backward,
    aten.fractional_max_pool2d_backward, aten.fractional_max_pool3d_backward,
    aten.max_pool3d_with_indices_backward, aten.max_unpool2d, aten.max_unpool3d,
    aten.upsample_linear1d_backward, aten.upsample_bilinear2d_backward, aten.upsample_bicubic2d_backward,
    aten.upsample_trilinear3d_backward, aten.reflection_pad1d_backward, aten.reflection_pad2d_backward,
    aten.reflection_pad3d_backward, aten.replication_pad1d_backward, aten.replication_pad2d_backward,
    aten.replication_pad3d_backward, aten.nll_loss_forward, aten.nll_loss2d_forward, aten._ctc_loss_backward,
    aten.grid_sampler_2d_backward, aten.grid_sampler_3d_backward, aten.convolution, aten.convolution_backward,
}


def nondeterministic_on_cuda(func, args, kwargs) -> str | None:
    """Why PyTorch's list names this ATen call, or None."""
    packet = func.overloadpacket
    if packet in ALWAYS_DENIED:
        return packet.__name__
    if packet in (aten.scatter, aten.scatter_) and "value" not in func._overloadname:  # src is a tensor
        return "scatter with a tensor src"
    if packet in (aten.cumsum, aten.cumsum_) and (args[0].is_floating_point() or args[0].is_complex()):
        return "floating-point cumsum"
    weights = args[1] if len(args) > 1 else kwargs.get("weights")
    if packet is aten.bincount and weights is not None:
        return "bincount with weights"
    if packet in (aten.median, aten.nanmedian) and func._overloadname != "default":  # with indices
        return "median with indices"
    if packet is aten.bmm and any(a.layout != torch.strided for a in args[:2]):
        return "sparse-dense bmm"
    return None


class NondeterministicCalls(TorchDispatchMode):
    """Collects the name of every nondeterministic-on-CUDA ATen call made within it."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reason = nondeterministic_on_cuda(func, args, kwargs)
        if reason is not None:
            self.found.append(reason)
        return func(*args, **kwargs)


def build(router_name: str, dispatch, seed: int = 0) -> MoELayer:
    bank = ExpertBank(7, 24, 40, activation="swiglu", generator=torch.Generator().manual_seed(seed))
    return MoELayer(make_router(router_name, seed=seed), bank, dispatch)


def forward_backward(layer: MoELayer, seed: int = 0) -> list[torch.Tensor]:
    """Output and gradients of x, the expert weights and the router weight (where it has one)."""
    layer.zero_grad(set_to_none=True)
    x = numpy_seed_tokens(NUM_TOKENS, seed=seed).requires_grad_()
    y = layer(x)
    y.square().sum().backward()
    grads = [x.grad, layer.experts.w_in.grad, layer.experts.w_out.grad]
    weight = getattr(layer.router, "weight", None)
    if isinstance(weight, torch.Tensor):
        grads.append(weight.grad)
    return [y.detach(), *grads]


def test_device_path_on_cpu_switches_the_path():
    t = torch.zeros(1)
    assert host_path(t)
    with device_path_on_cpu():
        assert not host_path(t)
    assert host_path(t)


@pytest.mark.parametrize("dispatch", sorted(DISPATCHERS))
@pytest.mark.parametrize("router_name", ROUTERS)
def test_device_path_computes_what_the_host_path_computes(router_name, dispatch):
    """Output and every gradient against the host path's "loop" reference."""
    expected = forward_backward(build(router_name, "loop"))
    with device_path_on_cpu():
        got = forward_backward(build(router_name, dispatch))
        again = forward_backward(build(router_name, dispatch))
    for ours, reference, second in zip(got, expected, again):
        assert relative_error(ours, reference) < REL_TOL
        assert torch.equal(ours, second)  # the same bits on a second run


@pytest.mark.parametrize("dispatch", sorted(DISPATCHERS))
@pytest.mark.parametrize("router_name", ROUTERS)
def test_device_path_calls_nothing_nondeterministic_on_cuda(router_name, dispatch):
    """Forward and backward of the whole layer (router, dispatch, combine, aux losses) on the device path."""
    with device_path_on_cpu():
        layer = build(router_name, dispatch)
        with NondeterministicCalls() as calls:
            forward_backward(layer)
            aux = layer.router(numpy_seed_tokens(NUM_TOKENS)).aux
            losses = [aux[name] for name in ("load_balancing_loss", "z_loss") if name in aux]
            if any(loss.requires_grad for loss in losses):
                sum(losses).backward()
    assert calls.found == []


def _combine_by_index_add(x, plan, bank):
    """A planted regression: the grouped strategy with its combine done by index_add (atomic on CUDA)."""
    rows = x.index_select(0, plan.token_index)
    counts = plan.expert_counts.tolist()
    out = bank.forward_grouped(rows, counts)
    return x.new_zeros(x.shape).index_add(0, plan.token_index, out * plan.weight.unsqueeze(1))


def test_negative_control_a_planted_index_add_is_caught():
    with device_path_on_cpu():
        planted = build("mixtral", Strategy("planted", _combine_by_index_add))
        with NondeterministicCalls() as calls:
            forward_backward(planted)
        with NondeterministicCalls() as clean:
            forward_backward(build("mixtral", dispatch_grouped))
    assert "index_add" in calls.found  # forward (the combine) and backward (index_select's gradient)
    assert clean.found == []


def test_negative_control_a_gather_backward_is_caught():
    """Autograd's own backward of a gather (the router's weights before this path) is a scatter_add."""
    probs = torch.rand(8, 4).requires_grad_()
    index = torch.topk(probs.detach(), 2, dim=1).indices
    with NondeterministicCalls() as calls:
        probs.gather(1, index).sum().backward()
    assert calls.found == ["scatter_add"] or calls.found == ["scatter_add_"]


@pytest.mark.parametrize("router_name", ["top3_capacity", "top2_capacity_probability"])
def test_capacity_keeps_static_shapes_on_the_device_path(router_name):
    """All T k choices stay in the plan, the dropped ones as a weight-0 tail; cut off, it is the host path's
    plan."""
    x = numpy_seed_tokens(NUM_TOKENS)
    host = make_router(router_name)(x)
    with device_path_on_cpu():
        static = make_router(router_name)(x)
    k = make_router(router_name).k
    assert isinstance(static.kept, torch.Tensor) and isinstance(static.dropped, torch.Tensor)
    assert static.num_entries == NUM_TOKENS * k and int(static.kept) == host.num_assignments
    assert int(static.dropped) == host.dropped > 0
    assert bool((static.weight[int(static.kept):] == 0).all())
    static.validate()
    compact = static.compact()
    for field in ("token_index", "expert_index", "expert_counts", "token_cells"):
        assert torch.equal(getattr(compact, field), getattr(host, field)), field
    assert relative_error(compact.weight, host.weight) < REL_TOL  # the router's GEMM kernels differ
