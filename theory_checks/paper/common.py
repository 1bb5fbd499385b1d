"""Shared pieces of the paper checks (docs/THEORY.md §A): area/source labels, point pairs, planted defects.

The broken implementations here are the planted defects of the negative controls; each is a small subclass or
wrapper of the real one, named after its defect.
"""

from __future__ import annotations

import math

import torch

from sparse_bench.hashing import PStableHash, SimHash, project

AREA = "paper"


def source(item: int) -> str:
    return f"paper §A.{item}"


def pair_at_angle(d: int, angle: float, gen: torch.Generator) -> torch.Tensor:
    """Two unit vectors in R^d at the given angle (radians), in a random orientation: (2, d) float64."""
    q, _ = torch.linalg.qr(torch.randn(d, 2, generator=gen, dtype=torch.float64))
    u, v = q[:, 0], q[:, 1]
    return torch.stack([u, torch.cos(torch.tensor(angle, dtype=torch.float64)) * u
                        + torch.sin(torch.tensor(angle, dtype=torch.float64)) * v])


def pair_in_coordinate_plane(d: int, angle: float) -> torch.Tensor:
    """Two unit vectors in R^d at the given angle (radians) in the plane of the first two axes, the first
    along e1: (2, d) float64 (d >= 2). Gaussian hyperplanes are rotation invariant, so the collision law holds
    here as in a random orientation; hyperplanes drawn from a law that is not (a cube's) show up here."""
    pair = torch.zeros(2, d, dtype=torch.float64)
    pair[0, 0], pair[1, 0], pair[1, 1] = 1.0, math.cos(angle), math.sin(angle)
    return pair


def cube_simhash(d: int, bits: int, seed: int) -> SimHash:
    """Defect: hyperplane normals uniform in the cube [-1, 1]^d (``rand * 2 - 1`` for ``randn``): symmetric
    and nearly isotropic in a random orientation, but not rotation invariant."""
    h = SimHash(d, bits, seed)
    gen = torch.Generator().manual_seed(int(seed))
    h.directions.copy_(torch.rand(h.directions.shape, generator=gen, dtype=torch.float64) * 2 - 1)
    return h


def biased_simhash(d: int, bits: int, seed: int) -> SimHash:
    """Defect: hyperplane normals drawn half-normal (all coordinates >= 0) instead of N(0, I)."""
    h = SimHash(d, bits, seed)
    h.directions.abs_()
    return h


def affine_simhash(d: int, bits: int, seed: int) -> SimHash:
    """Defect: hyperplanes with an offset, sign(a . x + 1) — an affine, not central, arrangement."""

    class AffineSimHash(SimHash):
        def signs(self, x, check_input=True):
            return project(x, self.directions) + 1.0 >= 0

    return AffineSimHash(d, bits, seed)


def quarter_offset_pstable(d: int, num_hashes: int, width: float, seed: int) -> PStableHash:
    """Defect: offsets drawn from U[0, w/4) instead of U[0, w). (U[0, w/2) would not show: by the symmetry of
    a . (y - x), offsets b and w - b give the same collision probability.)"""
    h = PStableHash(d, num_hashes, width, seed)
    h.offsets.mul_(0.25)
    return h


def unit_direction_pstable(d: int, num_hashes: int, width: float, seed: int) -> PStableHash:
    """Defect: directions normalised to unit length (not N(0, I_d)): bucket size grows like sqrt(d)."""
    h = PStableHash(d, num_hashes, width, seed)
    h.directions.div_(h.directions.norm(dim=0, keepdim=True))
    return h


def squared_width_pstable(d: int, num_hashes: int, width: float, seed: int) -> PStableHash:
    """Defect: the width is used squared (floor((a.x + b) / w^2)), so cells shrink like w^2."""
    return PStableHash(d, num_hashes, width * width, seed)
