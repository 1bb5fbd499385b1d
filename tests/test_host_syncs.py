"""No host synchronisation in the forward of the default CUDA path: top-k routing (dropless and with capacity)
and dispatch "auto" (which is "grouped" on CUDA).

Under ``FakeTensorMode``, tensors made with ``device="cuda"`` are fake on this CPU-only machine: they carry
shapes, dtypes and the CUDA device but no values, so the CUDA branch runs (chosen by the device, never by
querying a GPU) and any read of a value on the host fails. Forward only: autograd on a fake CUDA tensor needs
a CUDA build. The counts per strategy (where strategies read sizes on the host) are taken on the device path
run on CPU tensors, where every host read is counted instead of failing.
"""

from __future__ import annotations

import contextlib
import sys
from unittest import mock

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from moe_cases import make_router, numpy_seed_tokens
from sparse_bench import ExpertBank, MoELayer
from sparse_bench.bench.op_count import CountOps, count_ops
from sparse_bench.device_path import device_path_on_cpu
from sparse_bench.routing import ExpertChoiceRouter, TopKRouter

D_MODEL, D_HIDDEN, NUM_EXPERTS, NUM_TOKENS = 64, 32, 8, 128  # widths the grouped GEMM takes in bf16
TOKEN_CHOICE = ("switch", "mixtral", "top3_capacity", "top2_capacity_probability")


def layer_for(router, dispatch: str) -> MoELayer:
    bank = ExpertBank(router.num_experts, router.d_model, D_HIDDEN, activation="swiglu",
                      generator=torch.Generator().manual_seed(1))
    return MoELayer(router, bank, dispatch)


def on_fake_cuda(layer: MoELayer) -> MoELayer:
    """The layer's parameters as fake CUDA tensors (experts in bf16, the router in fp32), without autograd.
    Call inside the FakeTensorMode."""
    layer.requires_grad_(False)
    layer.router._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device="cuda"))
    layer.experts._apply(lambda t: torch.empty(t.shape, dtype=torch.bfloat16, device="cuda"))
    return layer


GPU_QUERIES = ("is_available", "device_count", "get_device_properties", "get_device_capability",
               "current_device", "synchronize")


@contextlib.contextmanager
def no_gpu_queries():
    """Within the block, a query of a real GPU made by sparse_bench fails the test: the branch must follow the
    tensor's device alone (FakeTensorMode's own queries pass through)."""
    def refusing(original):
        def query(*args, **kwargs):
            if sys._getframe(1).f_globals.get("__name__", "").startswith("sparse_bench"):
                raise AssertionError(f"sparse_bench called torch.cuda.{original.__name__}")
            return original(*args, **kwargs)
        return query

    with contextlib.ExitStack() as stack:
        for name in GPU_QUERIES:
            stack.enter_context(mock.patch.object(torch.cuda, name, refusing(getattr(torch.cuda, name))))
        yield


def fake_cuda_forward(layer: MoELayer):
    """(output, op counts) of one forward of the layer on fake CUDA tensors, no GPU queried during it."""
    with FakeTensorMode():
        on_fake_cuda(layer)
        x = torch.randn(NUM_TOKENS, D_MODEL, dtype=torch.bfloat16, device="cuda")
        with torch.no_grad(), CountOps() as counter, no_gpu_queries():
            y = layer(x)
    return y, counter.counts


@pytest.mark.parametrize("dispatch", ["auto", "grouped"])
@pytest.mark.parametrize("router_name", TOKEN_CHOICE)
def test_default_cuda_forward_reads_nothing_on_the_host(router_name, dispatch):
    layer = layer_for(make_router(router_name, d_model=D_MODEL, num_experts=NUM_EXPERTS), dispatch)
    y, counts = fake_cuda_forward(layer)
    assert y.device.type == "cuda" and y.shape == (NUM_TOKENS, D_MODEL) and y.dtype == torch.bfloat16
    assert counts.host_syncs == 0, dict(counts.host_reads)
    assert counts.ops["aten._grouped_mm"] == 2  # the CUDA branch ran: two grouped GEMMs, no per-expert loop
    assert counts.ops["aten._assert_async"] >= 3  # the router's and the dispatch's checks stay on the device


class ReadsOnTheHost(TopKRouter):
    """A planted regression: a router that reads how many tokens its top expert takes."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.aux["busiest"] = int(plan.expert_counts.max())
        return plan


def test_negative_control_a_host_read_fails_on_fake_cuda_and_is_counted_on_cpu():
    with pytest.raises(Exception) as caught:  # a CPU-only build refuses the read (a CUDA one would fake it)
        fake_cuda_forward(layer_for(ReadsOnTheHost(D_MODEL, NUM_EXPERTS, k=2), "grouped"))
    assert any("busiest" in str(entry.statement) for entry in caught.traceback)  # raised at the planted read
    layer = layer_for(ReadsOnTheHost(D_MODEL, NUM_EXPERTS, k=2), "grouped")
    clean = layer_for(TopKRouter(D_MODEL, NUM_EXPERTS, k=2), "grouped")
    x = numpy_seed_tokens(NUM_TOKENS, d_model=D_MODEL)
    with device_path_on_cpu(), torch.no_grad():
        assert count_ops(lambda: layer(x)).host_syncs == 1
        assert count_ops(lambda: clean(x)).host_syncs == 0


# Host reads per forward on the device path, as each strategy's docstring states them: the per-expert counts
# ("sorted", "loop": one tolist), the largest count for the slabs of a dropless plan ("padded", "einsum"; with
# capacity the router's C is static), and nothing for "grouped".
READS = {"grouped": (0, 0), "sorted": (1, 1), "loop": (1, 1), "padded": (1, 0), "einsum": (1, 0)}


@pytest.mark.parametrize("strategy", sorted(READS))
def test_host_reads_per_strategy_on_the_device_path(strategy):
    x = numpy_seed_tokens(NUM_TOKENS, d_model=D_MODEL)
    reads = []
    for capacity_factor in (None, 1.25):
        router = TopKRouter(D_MODEL, NUM_EXPERTS, k=2, capacity_factor=capacity_factor,
                            generator=torch.Generator().manual_seed(2))
        layer = layer_for(router, strategy)
        with device_path_on_cpu(), torch.no_grad():
            reads.append(count_ops(lambda: layer(x)).host_syncs)
    assert tuple(reads) == READS[strategy]


def test_expert_choice_reads_one_size_on_the_host():
    """Its plan does not say how many experts pick a token: the combine reads the largest such count once."""
    router = ExpertChoiceRouter(D_MODEL, NUM_EXPERTS, capacity_factor=2.0,
                                generator=torch.Generator().manual_seed(3))
    layer = layer_for(router, "grouped")
    x = numpy_seed_tokens(NUM_TOKENS, d_model=D_MODEL)
    with device_path_on_cpu(), torch.no_grad():
        assert count_ops(lambda: layer(x)).host_syncs == 1
