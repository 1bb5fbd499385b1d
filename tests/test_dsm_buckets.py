"""buckets_meeting_ball: the exact bucket count of a p-stable hash on a ball of a subspace, against
independent counts (sorted cut points in 1-D, Euler's chord count in 2-D, the codes of points put in every
cell in 2-D and 3-D)."""

import itertools
import math

import pytest
import torch

from sparse_bench.dsm.buckets import buckets_meeting_ball
from sparse_bench.hashing import PStableHash
from sparse_bench.targets import random_subspace
from theory_checks.paper.geometry import exact_disk_regions


def _hash_on_subspace(d, k, num_hashes, width, seed):
    """A library hash in R^d, a random k-dim subspace (d, k), and its directions on that subspace (k, D)."""
    h = PStableHash(d, num_hashes, width, seed)
    basis = random_subspace(d, k, torch.Generator().manual_seed(seed + 1))
    return h, basis, basis.T @ h.directions


@pytest.mark.parametrize("seed", range(5))
def test_one_dimension_counts_the_intervals_between_cut_points(seed):
    h, basis, g = _hash_on_subspace(6, 1, 4, 0.3, seed)
    cuts = []
    for i in range(4):  # hash i cuts the line at t = (j w - b_i) / g_i
        j = torch.arange(-40, 41, dtype=torch.float64)
        t = (j * 0.3 - h.offsets[i]) / g[0, i]
        cuts.append(t[t.abs() < 1.5])
    edges = torch.sort(torch.cat(cuts + [torch.tensor([-1.5, 1.5], dtype=torch.float64)])).values
    midpoints = ((edges[1:] + edges[:-1]) / 2).unsqueeze(1)  # one point per interval of (-1.5, 1.5)
    intervals = int(torch.unique(h.bucket(midpoints @ basis.T)).numel())
    assert buckets_meeting_ball(g, h.offsets, 0.3, radius=1.5) == intervals == edges.numel() - 1


@pytest.mark.parametrize("seed", range(5))
def test_two_dimensions_match_eulers_chord_count(seed):
    h, _, g = _hash_on_subspace(16, 2, 6, 0.4, seed)
    assert buckets_meeting_ball(g, h.offsets, 0.4) == exact_disk_regions(g, h.offsets, 0.4)


def _cells_around_flats(h, basis, g, radius):
    """Distinct buckets of points placed in every cell that meets the ball, found without the count's formula:
    the point of such a cell nearest the origin is the origin or the nearest point p of the affine hull of one
    of its faces (a flat g_S^T z = c_S of the arrangement); the 2^j points p + delta G_S (G_S^T G_S)^{-1} s,
    s in {-1, 1}^j, lie one in each cell around that flat (delta far below any cell's size)."""
    k, num_hashes = g.shape
    points = [torch.zeros(1, k, dtype=torch.float64)]
    for j in range(1, k + 1):
        for subset in itertools.combinations(range(num_hashes), j):
            columns = g[:, list(subset)]  # (k, j)
            dual = columns @ torch.linalg.inv(columns.T @ columns)  # (k, j): columns.T @ dual = I
            levels = []
            for i in subset:  # a flat meets the ball only if each of its hyperplanes does: |c_i| < r |g_i|
                c = torch.arange(-60, 61, dtype=torch.float64) * h.width - h.offsets[i]
                levels.append(c[c.abs() < radius * g[:, i].norm()])
            values = torch.cartesian_prod(*levels).reshape(-1, j)  # (m, j) choices of c_S
            nearest = values @ dual.T  # (m, k): the flats' points nearest the origin
            nearest = nearest[nearest.norm(dim=1) < radius]
            signs = torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=torch.float64)] * j).reshape(-1, j)
            step = 1e-7 * h.width * (signs @ dual.T)  # (2^j, k)
            points.append((nearest.unsqueeze(1) + step.unsqueeze(0)).reshape(-1, k))
    return int(torch.unique(h.bucket(torch.cat(points) @ basis.T)).numel())


@pytest.mark.parametrize("seed", range(4))
def test_three_dimensions_match_the_cells_found_around_every_flat(seed):
    h, basis, g = _hash_on_subspace(8, 3, 6, 1.0, seed)
    assert buckets_meeting_ball(g, h.offsets, 1.0) == _cells_around_flats(h, basis, g, 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_two_dimensions_match_the_cells_found_around_every_flat(seed):
    h, basis, g = _hash_on_subspace(8, 2, 5, 0.5, seed)
    assert buckets_meeting_ball(g, h.offsets, 0.5) == _cells_around_flats(h, basis, g, 1.0)


def test_count_depends_on_radius_over_width_only():
    h, _, g = _hash_on_subspace(8, 3, 6, 0.5, 3)
    base = buckets_meeting_ball(g, h.offsets, 0.5, radius=1.0)
    assert buckets_meeting_ball(g, h.offsets * 4, 2.0, radius=4.0) == base


def test_large_tables_count_in_chunks_as_at_once(monkeypatch):
    h, _, g = _hash_on_subspace(8, 3, 4, 0.25, 5)
    whole = buckets_meeting_ball(g, h.offsets, 0.25)
    import sparse_bench.dsm.buckets as buckets

    monkeypatch.setattr(buckets, "COMBINATION_CHUNK", 7)
    assert buckets_meeting_ball(g, h.offsets, 0.25) == whole


def test_axis_grid_counts_the_cubes_meeting_the_ball():
    # k = 2, two hashes along the axes, width 1, offsets 1/2: unit squares centred on integer points;
    # a square meets the open disk of radius r when its nearest point to the origin lies inside
    g, b, r = torch.eye(2, dtype=torch.float64), torch.full((2,), 0.5, dtype=torch.float64), 3.3
    centres = torch.cartesian_prod(*[torch.arange(-5, 6, dtype=torch.float64)] * 2)
    nearest = (centres.abs() - 0.5).clamp_min(0).norm(dim=1)
    assert buckets_meeting_ball(g, b, 1.0, radius=r) == int((nearest < r).sum())


@pytest.mark.parametrize("directions, offsets, width, radius, match", [
    (torch.ones(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 1.0, 1.0, "offsets"),
    (torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 1.0, 1.0, "directions"),
    (torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 0.0, 1.0, "width"),
    (torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 1.0, -1.0, "radius"),
    (torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 1.0,
     1.0, "linearly dependent"),
    (torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 1.0,
     1.0, "zero column"),
    (torch.tensor([[math.nan, 1.0], [0.0, 1.0]], dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
     1.0, 1.0, "directions"),
])
def test_bad_input_is_refused_naming_the_argument(directions, offsets, width, radius, match):
    with pytest.raises(ValueError, match=match):
        buckets_meeting_ball(directions, offsets, width, radius)
