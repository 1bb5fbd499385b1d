"""Exact count of the buckets of a p-stable hash that meet a ball of the subspace the inputs lie on.

On a k-dimensional subspace with orthonormal basis U, hash i of ``PStableHash`` cuts the subspace along the
parallel hyperplanes g_i . z = j w - b_i (g_i = U^T a_i, j integer); a bucket restricted to the subspace is a
cell of that arrangement. For hyperplanes in general position (almost sure for Gaussian directions and uniform
offsets: no k + 1 of them through a point, the normals of any k from distinct hashes independent), the
regions of the arrangement inside an open convex set number the flats of the arrangement that meet it
(Zaslavsky's count, each flat of a general-position arrangement counting once): the set itself, every
hyperplane, every intersection of 2, ..., of k hyperplanes from distinct hashes. A flat meets the ball
||z|| < r when its point nearest the origin does. Each region is one bucket: the codes of a region are
constant, and a code's cells are slabs' intersections, convex, so one region.
"""

from __future__ import annotations

import itertools
import math

import torch

from ..validation import check_float_tensor, check_positive_float

COMBINATION_CHUNK = 2**20  # level combinations whose distances are computed at once (8 MiB per column)
RANK_TOLERANCE = 1e-12  # a Gram determinant below this times the product of squared norms: not independent


def _levels(direction: torch.Tensor, offset: float, width: float, radius: float) -> torch.Tensor:
    """The values c = j w - b of the hyperplanes g . z = c of one hash that meet the ball: |c| < r |g|."""
    reach = radius * float(direction.norm())
    low, high = math.floor((offset - reach) / width), math.ceil((offset + reach) / width)
    c = torch.arange(low, high + 1, dtype=torch.float64) * width - offset
    return c[c.abs() < reach]


def _flats_meeting(gram_inverse: torch.Tensor, levels: list, radius: float) -> int:
    """Flats {z : g_i . z = c_i, i in S} meeting the ball, over every choice of one level per hash of S.

    gram_inverse: (j, j) inverse of G_S^T G_S; the flat's nearest point to the origin has squared norm
    c^T (G_S^T G_S)^{-1} c. levels: j tensors of hyperplane values."""
    sizes = [c.numel() for c in levels]
    if 0 in sizes:
        return 0
    met = 0
    head_chunk = max(1, COMBINATION_CHUNK // max(1, math.prod(sizes[1:])))
    for head in levels[0].split(head_chunk):  # combinations in chunks of the first hash's levels
        combos = torch.cartesian_prod(head, *levels[1:]).reshape(-1, len(levels))  # (m, j)
        squared = ((combos @ gram_inverse) * combos).sum(dim=1)
        met += int((squared < radius * radius).sum())
    return met


def buckets_meeting_ball(directions: torch.Tensor, offsets: torch.Tensor, width: float,
                         radius: float = 1.0) -> int:
    """Exact number of buckets of the hash z -> floor((g_i . z + b_i) / width), i < D, meeting ||z|| < radius.

    directions: (k, D) float, column i the hash direction g_i on the subspace (``U.T @ hash.directions``);
    offsets: (D,) float, the hash's b_i; width, radius > 0. ValueError for hashes not in general position:
    k or fewer directions from distinct hashes that are linearly dependent (a parallel pair, for k >= 2).
    Cost: about prod over hashes of (2 radius |g_i| / width) level combinations per k-subset of hashes.
    """
    check_float_tensor(directions, 2, "(k, D)", "directions")
    check_float_tensor(offsets, 1, "(D,)", "offsets")
    k, num_hashes = directions.shape
    if offsets.shape[0] != num_hashes or k == 0 or num_hashes == 0:
        raise ValueError(f"offsets must have shape ({num_hashes},) and directions at least one row and "
                         f"column, got directions {tuple(directions.shape)}, offsets {tuple(offsets.shape)}")
    width = check_positive_float(width, "width")
    radius = check_positive_float(radius, "radius")
    g = directions.detach().to(torch.float64).cpu()
    if bool((g.norm(dim=0) == 0).any()):
        raise ValueError("directions has a zero column: a hash that does not cut the subspace")
    b = offsets.detach().to(torch.float64).cpu()
    levels = [_levels(g[:, i], float(b[i]), width, radius) for i in range(num_hashes)]
    count = 1  # the ball itself
    for j in range(1, min(k, num_hashes) + 1):
        for subset in itertools.combinations(range(num_hashes), j):
            columns = g[:, list(subset)]  # (k, j)
            gram = columns.T @ columns
            if float(torch.linalg.det(gram)) <= RANK_TOLERANCE * float(torch.diagonal(gram).prod()):
                raise ValueError(f"directions of hashes {subset} are linearly dependent: the hash is not in "
                                 "general position on the subspace")
            count += _flats_meeting(torch.linalg.inv(gram), [levels[i] for i in subset], radius)
    return count
