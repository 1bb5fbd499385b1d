"""Input checks shared by routers, experts and blocks: one clear error per kind of bad input."""

from __future__ import annotations

import math
import numbers

import torch

from .device_path import host_path


def check_float_tensor(x: torch.Tensor, rank: int, layout: str, name: str = "x", values: bool = True
                       ) -> torch.Tensor:
    """Validate a floating tensor of the given rank with finite entries; return it unchanged.

    layout: the expected shape in words, e.g. "(tokens, d_model)", used in the error message. values=False skips
    the NaN/Inf scan, for callers that run ``check_finite_image`` on a projection of x instead.
    Raises TypeError for non-tensors and non-floating dtypes, ValueError for a wrong rank or NaN/Inf entries.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (float16/bfloat16/float32/float64), got {x.dtype}")
    if x.dim() != rank:
        raise ValueError(f"{name} must have shape {layout}, got rank {x.dim()} shape {tuple(x.shape)}")
    if values:
        check_finite(x, name)
    return x


def check_tokens(x: torch.Tensor, d_model: int | None = None, name: str = "x", values: bool = True
                 ) -> torch.Tensor:
    """Validate a (tokens, d_model) floating tensor with finite entries; return it unchanged.

    Raises TypeError for non-tensors and non-floating dtypes, ValueError for a wrong rank, a wrong last
    dimension, or NaN/Inf entries (not scanned when values=False). tokens = 0 is valid.
    """
    check_float_tensor(x, 2, "(tokens, d_model)", name, values)
    if d_model is not None and x.shape[1] != d_model:
        raise ValueError(f"{name} has d_model={x.shape[1]}, expected {d_model}")
    return x


def check_samples(x: torch.Tensor, y: torch.Tensor, d: int, x_name: str = "x", y_name: str = "y") -> None:
    """Validate a training set: x (n, d) and y (n,) floating with finite entries, n >= 1."""
    check_tokens(x, d, x_name)
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        got = getattr(y, "shape", type(y).__name__)
        raise ValueError(f"{y_name} must be a ({x.shape[0]},) tensor, got {got}")
    if x.shape[0] == 0:
        raise ValueError(f"{x_name} must hold at least one sample")
    check_float_tensor(y, 1, "(n,)", y_name)


def all_finite(x: torch.Tensor) -> torch.Tensor:
    """A 0-dim bool tensor on x's device, True when x (non-empty) holds no NaN or Inf: its largest |entry| is
    finite (one reduction, which NaN propagates through; ``isfinite(x).all()`` takes five operations)."""
    return torch.linalg.vector_norm(x, float("inf")) < float("inf")


def check_finite(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError if ``x`` holds NaN or Inf; on the device path, an asynchronous device assertion with
    the same message instead (no host read: the error surfaces at the next synchronisation).

    Host path: one summing pass first: any NaN or Inf makes the sum NaN or Inf, so a finite sum proves x
    finite. A sum that is not finite (bad entries, or finite ones that overflowed) is settled by the exact
    elementwise scan.
    """
    if not x.numel():
        return
    if not host_path(x):
        torch._assert_async(all_finite(x), f"{name} contains NaN or Inf")
        return
    if bool(torch.isfinite(x.sum())):
        return
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")


def check_finite_image(image: torch.Tensor, x: torch.Tensor, name: str = "x",
                       image_name: str = "its projection") -> None:
    """NaN/Inf check of x through image = x @ W (W finite), scanning the small (n, m) image, not the (n, d) x.

    IEEE arithmetic carries any NaN or Inf of a row of x into every entry of that row of the image (NaN
    propagates; Inf times a weight is +-Inf, or NaN when the weight is 0), so a finite image means a finite x.
    Host path: only when the image is not finite is x scanned, to say which of the two is at fault: a finite
    x whose image is not finite overflowed (or met NaN/Inf weights), a ValueError naming x and image_name.
    Device path: one asynchronous device assertion on the image whose message names both causes.
    """
    if not image.numel():
        return
    if not host_path(image):
        torch._assert_async(all_finite(image),
                            f"{image_name} holds NaN or Inf: {name} does, or the weights do, or it "
                            f"overflowed {image.dtype}")
        return
    if bool(torch.isfinite(image.detach().sum())) or bool(torch.isfinite(image).all()):
        return  # a finite sum proves every entry finite (the full scan only settles a sum that overflowed)
    check_finite(x, name)
    raise ValueError(f"{name} is finite but {image_name} is not: the weights hold NaN/Inf or it overflowed "
                     f"{image.dtype} (largest |{name}| {float(x.detach().abs().max()):.3g})")


INT64_MAX = 2**63 - 1  # the largest size, index or seed torch takes


def check_int_in_range(value: int, name: str, low: int, high: int | None = None) -> int:
    """Raise unless value is an int (not a bool) in [low, high] (high=None: up to INT64_MAX)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or value > (INT64_MAX if high is None else high):
        upper = "2**63 - 1" if high is None else str(high)
        raise ValueError(f"{name} must be in [{low}, {upper}], got {value}")
    return value


def check_seed(seed: int, name: str = "seed") -> int:
    """Raise unless seed is an integer (Python or NumPy, not a bool) in [0, 2**63 - 1]; return it as int."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(seed).__name__}")
    return check_int_in_range(int(seed), name, 0)


def check_bool(value: bool, name: str) -> bool:
    """Raise TypeError unless value is a bool (a string such as "False" would otherwise read as True)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_generator(generator, name: str = "generator") -> torch.Generator:
    """Raise TypeError unless generator is a torch.Generator; return it."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator, got {type(generator).__name__}")
    return generator


def check_float_dtype(dtype: torch.dtype, name: str = "dtype") -> torch.dtype:
    """Raise TypeError unless dtype is a floating torch.dtype; return it."""
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{name} must be a floating torch.dtype, got {dtype!r}")
    return dtype


def check_device(device, name: str = "device") -> torch.device | None:
    """None, or a device (torch.device, string or index) this build can allocate on; ValueError otherwise."""
    if device is None:
        return None
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, TypeError, AssertionError) as error:  # AssertionError: CUDA in a CPU-only build
        raise ValueError(f"{name} must be a device this build can use, got {device!r}: {error}") from error
    return device


def _check_number(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")


def check_real(value: float, name: str) -> float:
    """Raise unless value is a finite real number (int or float, not a bool); return it as a float."""
    _check_number(value, name)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return float(value)


def check_positive_float(value: float, name: str) -> float:
    """Raise unless ``value`` is a finite number > 0; return it as a float."""
    _check_number(value, name)
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)
