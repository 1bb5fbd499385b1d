"""The shapes of the ratio table: the full grid (full profile) and a small subset of it (quick profile)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from ..validation import check_int_in_range
from .presets import ROUTERS

PROFILES = ("quick", "full")
# Peers that build a dense (T, E, C) tensor are skipped above this many elements (2^26 fp32 = 256 MiB each).
MAX_DENSE_DISPATCH_ELEMENTS = 2**26


@dataclass(frozen=True)
class GridPoint:
    """One MoE shape: E experts, top-k, T tokens, model width d, expert width h, SwiGLU experts; the router
    (one of ROUTERS, built by ``peers.make_router``) and shared experts (each of width h, on every token)."""

    num_experts: int
    k: int
    num_tokens: int
    d_model: int
    d_hidden: int
    activation: str = "swiglu"
    router: str = "topk"
    shared_experts: int = 0

    def __post_init__(self):
        check_int_in_range(self.num_experts, "num_experts", 1)
        check_int_in_range(self.k, "k", 1, self.num_experts)
        check_int_in_range(self.num_tokens, "num_tokens", 1)
        check_int_in_range(self.d_model, "d_model", 1)
        check_int_in_range(self.d_hidden, "d_hidden", 1)
        if self.activation != "swiglu":
            raise ValueError(f"the ratio table's floor is defined for swiglu experts, got {self.activation!r}")
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {', '.join(ROUTERS)}, got {self.router!r}")
        if self.router == "hash" and self.k != 1:
            raise ValueError(f"the hash router sends each token to one expert: k must be 1, got {self.k}")
        check_int_in_range(self.shared_experts, "shared_experts", 0)

    @property
    def num_assignments(self) -> int:
        """A = T * k routed rows (top-k routing is dropless here; expert choice picks about as many)."""
        return self.num_tokens * self.k

    @property
    def label(self) -> str:
        """"E=8 k=2 T=512 d=512 h=256", then " shared=1" and " router=NAME" where they differ from the
        default (so records of another layer never share a name with the grid's)."""
        label = f"E={self.num_experts} k={self.k} T={self.num_tokens} d={self.d_model} h={self.d_hidden}"
        if self.shared_experts:
            label += f" shared={self.shared_experts}"
        if self.router != "topk":
            label += f" router={self.router}"
        return label

    def to_dict(self) -> dict:
        """The fields as a dict; router and shared_experts only where they differ from the default, so the
        records of the grid's layers stay as they were."""
        data = asdict(self)
        for key, default in (("router", "topk"), ("shared_experts", 0)):
            if data[key] == default:
                del data[key]
        return data


def full_grid(d_model: int = 512) -> list[GridPoint]:
    """E in {8, 64}, k in {1, 2, 8}, T in {512, 4096}, h in {256, 1024}: 24 points."""
    return [
        GridPoint(E, k, T, d_model, h)
        for E, k, T, h in itertools.product((8, 64), (1, 2, 8), (512, 4096), (256, 1024))
    ]


def quick_grid() -> list[GridPoint]:
    """Two small points of the full grid, few and many experts (finishes in well under 2 minutes)."""
    return [GridPoint(8, 2, 512, 512, 256), GridPoint(64, 2, 512, 512, 256)]


def grid_for(profile: str) -> list[GridPoint]:
    """The grid of a profile ("quick" or "full")."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return quick_grid() if profile == "quick" else full_grid()
