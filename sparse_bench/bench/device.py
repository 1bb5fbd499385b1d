"""Where and in which precision the benchmarks run: the names ``--device`` and ``--dtype`` take, and their
torch objects. torch is imported inside the functions, so the command line can list the names without it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("float32", "bfloat16", "float16")  # of the experts and activations; the router stays float32


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype called ``name`` (one of DTYPE_NAMES); ValueError naming the option otherwise."""
    import torch

    if name not in DTYPE_NAMES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPE_NAMES)}, got {name!r}")
    return getattr(torch, name)


def is_cpu_float32(device: str | torch.device, dtype: str | torch.dtype) -> bool:
    """Whether (device, dtype) is CPU float32: the setting of the speed targets, of the component
    ratios and of oneDNN prepacking, whose ratio-table records keep their plain names. device and dtype as
    torch objects or as records write them ("cpu", "cuda:0"; "float32")."""
    import torch

    dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    return torch.device(device).type == "cpu" and dtype == torch.float32


def resolve_device(name: str) -> torch.device:
    """The torch.device called ``name``; ValueError naming the option when it is unknown or absent here."""
    import torch

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
