"""Where and in which precision the ratio table runs: the ``--device`` and ``--dtype`` options of both
benchmark command lines (``sparse-bench bench`` and ``python -m sparse_bench.bench``)."""

from __future__ import annotations

import argparse

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                        help="of the experts and activations; the router stays float32 (default float32)")


def is_cpu_float32(device: str | torch.device, dtype: str | torch.dtype) -> bool:
    """Whether (device, dtype) is CPU float32: the setting of the issue's speed targets, of the component
    ratios and of oneDNN prepacking, whose ratio-table records keep their plain names. device and dtype as
    torch objects or as records write them ("cpu", "cuda:0"; "float32")."""
    dtype = DTYPES.get(dtype) if isinstance(dtype, str) else dtype
    return torch.device(device).type == "cpu" and dtype == torch.float32


def resolve_device(name: str) -> torch.device:
    """The torch.device called ``name``; ValueError naming the option when it is unknown or absent here."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r}: {error}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: the ratio table runs on cpu or cuda")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name!r}: no CUDA device is available here")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name!r}: there are {count} CUDA devices, cuda:0 to cuda:{count - 1}")
    return device
