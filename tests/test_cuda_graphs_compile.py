"""The default CUDA path (top-k routing, dropless and with capacity; dispatch "auto", i.e. "grouped") captures
in a CUDA graph and compiles whole with ``torch.compile(fullgraph=True)``: both fail on any host
synchronisation or graph break. On a machine without CUDA, the CUDA tests are skipped, and the forward of
the device path on CPU tensors is compiled instead (bf16 experts: PyTorch's grouped GEMM traces in bf16)."""

from __future__ import annotations

import pytest
import torch

from moe_cases import make_router
from sparse_bench import ExpertBank, MoELayer
from sparse_bench.device_path import device_path_on_cpu

D_MODEL, D_HIDDEN, NUM_EXPERTS, NUM_TOKENS = 64, 32, 8, 128
ROUTERS = ("mixtral", "top3_capacity")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def build(router_name: str, device: str) -> tuple[MoELayer, torch.Tensor, torch.Tensor]:
    """(layer with bf16 experts on device, two bf16 inputs). Dispatch "auto" on CUDA; "grouped", what it
    runs there, on CPU (where "auto" reads the plan's counts for the CPU crossover)."""
    router = make_router(router_name, d_model=D_MODEL, num_experts=NUM_EXPERTS)
    bank = ExpertBank(NUM_EXPERTS, D_MODEL, D_HIDDEN, activation="swiglu",
                      generator=torch.Generator().manual_seed(1))
    layer = MoELayer(router, bank.to(torch.bfloat16), "auto" if device == "cuda" else "grouped").to(device)
    gen = torch.Generator().manual_seed(2)
    x, other = (torch.randn(NUM_TOKENS, D_MODEL, generator=gen).to(device, torch.bfloat16) for _ in range(2))
    return layer, x, other


def bf16_tolerance(k: int) -> float:
    """A compiled layer may fuse and round differently: per token 4 + k roundings of half an ulp each in
    either layer (pre-activation, activation, expert output, weighted output, the k-term sum), relative to
    max |y| (the peers' bound, bench/peers.py)."""
    return 2 * (4 + k) * torch.finfo(torch.bfloat16).eps / 2


@needs_cuda
@pytest.mark.parametrize("router_name", ROUTERS)
def test_default_cuda_path_captures_in_a_cuda_graph(router_name):
    layer, x, other = build(router_name, "cuda")
    static_x = x.clone()
    with torch.no_grad():
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up outside the capture, on a side stream
            for _ in range(3):
                layer(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # raises on a host synchronisation
            static_y = layer(static_x)
        static_x.copy_(other)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(static_y, layer(other))  # the same kernels on the same input: the same bits


@needs_cuda
@pytest.mark.parametrize("router_name", ROUTERS)
def test_default_cuda_path_compiles_in_one_graph(router_name):
    layer, x, _ = build(router_name, "cuda")
    with torch.no_grad():
        compiled = torch.compile(layer, fullgraph=True)(x)
        eager = layer(x)
    k = layer.router.k
    assert float((compiled - eager).abs().max()) <= bf16_tolerance(k) * float(eager.abs().max())


@pytest.mark.parametrize("router_name", ROUTERS)
def test_device_path_forward_is_one_graph_on_cpu(router_name):
    """Dynamo captures the whole forward without a break (backend "eager": the captured graph is run as it
    is, so the output is the eager one's, bit for bit)."""
    layer, x, _ = build(router_name, "cpu")
    with device_path_on_cpu(), torch.no_grad():
        compiled = torch.compile(layer, fullgraph=True, backend="eager")(x)
        assert torch.equal(compiled, layer(x))


@pytest.mark.slow
def test_device_path_forward_compiles_with_inductor_on_cpu():
    """The same through Inductor's CPU code generation (about 25 s with a cold Inductor cache on 2 cores)."""
    layer, x, _ = build("mixtral", "cpu")
    with device_path_on_cpu(), torch.no_grad():
        compiled = torch.compile(layer, fullgraph=True)(x)
        eager = layer(x)
    assert float((compiled - eager).abs().max()) <= bf16_tolerance(2) * float(eager.abs().max())
