"""Which of two code paths a tensor takes, chosen from its device alone (never by querying a GPU).

The host path (CPU tensors): input checks read values on the host and raise ValueError at once; dispatch may
use CPU-tuned kernels. The device path (every other device, CUDA foremost): device-neutral PyTorch that never
reads a value on the host (checks become asynchronous device assertions, shapes stay static) and never uses
an operation PyTorch documents as nondeterministic on CUDA. ``device_path_on_cpu()`` runs the device path on
CPU tensors too, so that a machine without a GPU can test and time what CUDA runs.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

_device_path_on_cpu = False


def host_path(t: torch.Tensor) -> bool:
    """Whether work on t takes the host path: t is on the CPU and ``device_path_on_cpu`` is not active."""
    return t.device.type == "cpu" and not _device_path_on_cpu


@contextlib.contextmanager
def device_path_on_cpu() -> Iterator[None]:
    """Within this block, CPU tensors take the device path (what CUDA runs). Not thread-safe: a switch for
    tests and measurements, not for serving."""
    global _device_path_on_cpu
    before = _device_path_on_cpu
    _device_path_on_cpu = True
    try:
        yield
    finally:
        _device_path_on_cpu = before
