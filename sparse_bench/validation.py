"""Input checks shared by routers, experts and blocks: one clear error per kind of bad input."""

from __future__ import annotations

import torch


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


def check_finite(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError if ``x`` holds NaN or Inf.

    One summing pass first: any NaN or Inf makes the sum NaN or Inf, so a finite sum proves x finite. A sum
    that is not finite (bad entries, or finite ones that overflowed) is settled by the exact elementwise scan.
    """
    if not x.numel() or bool(torch.isfinite(x.sum())):
        return
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")


def check_finite_image(image: torch.Tensor, x: torch.Tensor, name: str = "x") -> None:
    """NaN/Inf check of x through image = x @ W (W finite), scanning the small (n, m) image, not the (n, d) x.

    IEEE arithmetic carries any NaN or Inf of a row of x into every entry of that row of the image (NaN
    propagates; Inf times a weight is +-Inf, or NaN when the weight is 0), so a finite image means a finite x.
    Only when the image is not finite is x scanned, to say which of the two is at fault.
    """
    if image.numel() and not bool(torch.isfinite(image).all()):
        check_finite(x, name)
        raise ValueError(f"{name} is finite but its projection is not: the weights hold NaN/Inf or it overflowed")


def check_int_in_range(value: int, name: str, low: int, high: int | None = None) -> int:
    """Raise ValueError unless ``low <= value <= high`` (high=None: no upper bound) and value is an int."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        upper = "inf" if high is None else str(high)
        raise ValueError(f"{name} must be in [{low}, {upper}], got {value}")
    return value


def check_positive_float(value: float, name: str) -> float:
    """Raise ValueError unless ``value`` is a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)
