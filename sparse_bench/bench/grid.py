"""The shapes of the ratio table: the issue's grid (full profile) and a small subset (quick profile)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from ..validation import check_int_in_range

PROFILES = ("quick", "full")
# Peers that build a dense (T, E, C) tensor are skipped above this many elements (2^26 fp32 = 256 MiB each).
MAX_DENSE_DISPATCH_ELEMENTS = 2**26


@dataclass(frozen=True)
class GridPoint:
    """One MoE shape: E experts, top-k, T tokens, model width d, expert width h, SwiGLU experts."""

    num_experts: int
    k: int
    num_tokens: int
    d_model: int
    d_hidden: int
    activation: str = "swiglu"

    def __post_init__(self):
        check_int_in_range(self.num_experts, "num_experts", 1)
        check_int_in_range(self.k, "k", 1, self.num_experts)
        check_int_in_range(self.num_tokens, "num_tokens", 1)
        check_int_in_range(self.d_model, "d_model", 1)
        check_int_in_range(self.d_hidden, "d_hidden", 1)
        if self.activation != "swiglu":
            raise ValueError(f"the ratio table's floor is defined for swiglu experts, got {self.activation!r}")

    @property
    def num_assignments(self) -> int:
        """A = T * k routed rows (top-k routing is dropless here)."""
        return self.num_tokens * self.k

    @property
    def label(self) -> str:
        return f"E={self.num_experts} k={self.k} T={self.num_tokens} d={self.d_model} h={self.d_hidden}"

    def to_dict(self) -> dict:
        return asdict(self)


def issue_grid(d_model: int = 512) -> list[GridPoint]:
    """E in {8, 64}, k in {1, 2, 8}, T in {512, 4096}, h in {256, 1024}: 24 points."""
    return [
        GridPoint(E, k, T, d_model, h)
        for E, k, T, h in itertools.product((8, 64), (1, 2, 8), (512, 4096), (256, 1024))
    ]


def quick_grid() -> list[GridPoint]:
    """Two small points of the issue's grid, few and many experts (finishes in well under 2 minutes)."""
    return [GridPoint(8, 2, 512, 512, 256), GridPoint(64, 2, 512, 512, 256)]


def grid_for(profile: str) -> list[GridPoint]:
    """The grid of a profile ("quick" or "full")."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return quick_grid() if profile == "quick" else issue_grid()
