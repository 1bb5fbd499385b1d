"""The one switch between the reference ops and a device's own kernels.

The library's modules (routers, hashing, experts, convolution, dispatch) call the ops below; each runs the op
of the backend ``backend_for`` chooses for its tensor: from ``tensor.device.type`` alone, never by querying
a GPU, so it is the same under ``FakeTensorMode`` and on a machine without one. "cpu" -> ``kernels.cpu``
(oneDNN products, prepacking, chunked autograd), "cuda" -> ``kernels.cuda``, any other device ->
``kernels.reference`` (device-neutral PyTorch, which every backend's ops must agree with). CPU tensors on the
device path (``device_path.device_path_on_cpu``) run what CUDA runs, ``kernels.cuda``. ``use_backend`` forces
a backend within a block: tests run the reference on CPU tensors to compare it with the CPU kernels.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

import torch

from ..device_path import host_path
from . import cpu, cuda, reference
from .backend import Kernels, MatrixProducts

if TYPE_CHECKING:
    from ..experts import ExpertBank

__all__ = ["BACKENDS", "Kernels", "MatrixProducts", "backend_for", "expert_softmax",
           "experts_batched", "experts_grouped", "linear", "matrix_products", "prepacks",
           "use_backend"]

BACKENDS: dict[str, Kernels] = {kernels.name: kernels for kernels in (reference.KERNELS, cpu.KERNELS,
                                                                         cuda.KERNELS)}
# A plain module variable, not a ContextVar: torch.compile(fullgraph=True) traces module globals (guarding on
# them) but not ContextVar reads.
_forced: Kernels | None = None


def backend_for(t: torch.Tensor) -> Kernels:
    """The backend whose ops run on t: the one ``use_backend`` forces, else the one named by t's device type
    (the reference for devices without a backend; CUDA's for CPU tensors on the device path)."""
    if _forced is not None:
        return _forced
    if t.device.type == "cpu" and not host_path(t):
        return cuda.KERNELS
    return BACKENDS.get(t.device.type, reference.KERNELS)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Kernels]:
    """Within this block, every op runs ``BACKENDS[name]`` whatever its tensors' device. Process-wide, not
    thread-safe (like ``device_path_on_cpu``): a switch for tests and measurements. A device's backend forced
    onto another device's tensors runs only where its ops are device-neutral."""
    global _forced
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    before = _forced
    _forced = BACKENDS[name]
    try:
        yield _forced
    finally:
        _forced = before


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x: (n, k), weight: (m, k). Returns x @ weight.T, (n, m)."""
    return backend_for(x).linear(x, weight)


def expert_softmax(logits: torch.Tensor) -> torch.Tensor:
    """logits: (T, E). Returns the softmax over the experts, (T, E), differentiable."""
    return backend_for(logits).expert_softmax(logits)


def experts_grouped(bank: ExpertBank, rows: torch.Tensor, counts: list[int], first_expert: int,
                    weights: list[tuple] | None) -> torch.Tensor:
    """rows: (A, d) grouped by expert, counts[i] rows for expert first_expert + i. Returns (A, d)."""
    return backend_for(rows).experts_grouped(bank, rows, counts, first_expert, weights)


def experts_batched(bank: ExpertBank, slab: torch.Tensor, weights: tuple) -> torch.Tensor:
    """slab: (G, C, d), one slab per expert of weights (w_in, w_out, b_in, b_out). Returns (G, C, d)."""
    return backend_for(slab).experts_batched(bank, slab, weights)


def prepacks(bank: ExpertBank) -> bool:
    """Whether the bank's forwards without autograd run on prepacked copies of its weights."""
    return backend_for(bank.w_in).prepacks(bank)


def matrix_products(t: torch.Tensor) -> MatrixProducts:
    """The 2-D matrix products the fused expert kernels run on for t's backend."""
    return backend_for(t).products
