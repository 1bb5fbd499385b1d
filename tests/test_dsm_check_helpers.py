"""Tests of the closed forms and geometry helpers the paper checks and findings rely on, against independent
computations (numerical integration, brute-force geometry, Monte Carlo)."""

import math

import numpy as np
import torch
from scipy import integrate, spatial, stats

from sparse_bench.hashing import PStableHash
from theory_checks.findings.lemma42_geometry import cell_diameters
from theory_checks.paper.approx import farthest_in_bucket
from theory_checks.paper.common import pair_at_angle
from theory_checks.paper.geometry import (exact_disk_regions, expected_disk_count, interval_buckets,
                                          unit_ball_points)
from theory_checks.paper.hashing import cover_count, pstable_collision_probability


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_pstable_closed_form_matches_numerical_integral():
    # P[collide] = int_0^w (1/c) f_|N|(t/c) (1 - t/w) dt with f_|N| the half-normal density (Datar et al.)
    for r in (0.3, 1.0, 2.5, 6.0):
        c, w = 1.0, r
        integral, _ = integrate.quad(lambda t: 2 * stats.norm.pdf(t / c) / c * (1 - t / w), 0, w)
        assert abs(pstable_collision_probability(r) - integral) < 1e-10


def test_cover_count_small_cases():
    assert cover_count(3, 3) == 8 and cover_count(2, 5) == 4  # m <= d: 2^m (arguments are m, d)
    assert cover_count(5, 2) == 10 and cover_count(6, 3) == 32 and cover_count(4, 2) == 8


def test_pair_at_angle():
    pair = pair_at_angle(7, 1.1, _gen(1))
    torch.testing.assert_close(pair.norm(dim=1), torch.ones(2, dtype=torch.float64))
    assert abs(math.acos(float(pair[0] @ pair[1])) - 1.1) < 1e-12


def test_cell_diameters_match_convex_hull_of_halfspaces():
    gen = _gen(2)
    proj = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    offsets = torch.rand(5, generator=gen, dtype=torch.float64) * 0.3
    z = unit_ball_points(20, 2, gen)
    got = cell_diameters(z, proj, offsets, 0.3)
    for i in range(20):
        level = torch.floor((z[i] @ proj + offsets) / 0.3)
        lo, hi = (level * 0.3 - offsets).numpy(), ((level + 1) * 0.3 - offsets).numpy()
        g = proj.T.numpy()
        halfspaces = np.vstack([np.hstack([-g, lo[:, None]]), np.hstack([g, -hi[:, None]])])  # A x + b <= 0
        verts = spatial.HalfspaceIntersection(halfspaces, z[i].numpy()).intersections
        ref = spatial.distance.pdist(verts).max()
        assert abs(float(got[i]) - ref) < 1e-9


def _exact_disk_regions(proj, offsets, w):
    """Regions of the unit disk cut by the lines g_i . z = j w - b_i: 1 + chords + crossings inside (Euler).
    """
    lines = []  # (normal, value)
    for i in range(proj.shape[1]):
        g, b = proj[:, i].numpy(), float(offsets[i])
        reach = np.linalg.norm(g)
        for j in range(math.floor((-reach + b) / w), math.ceil((reach + b) / w) + 1):
            if abs(j * w - b) < reach:
                lines.append((g, j * w - b))
    crossings = 0
    for a in range(len(lines)):
        for c in range(a + 1, len(lines)):
            mat = np.stack([lines[a][0], lines[c][0]])
            if abs(np.linalg.det(mat)) > 1e-12:
                pt = np.linalg.solve(mat, [lines[a][1], lines[c][1]])
                crossings += int(np.linalg.norm(pt) < 1)
    return 1 + len(lines) + crossings


def test_expected_disk_count_matches_exact_region_counts_over_offsets():
    gen = _gen(3)
    proj = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    pts = unit_ball_points(10_000, 2, gen)
    exact = []
    for draw in range(300):
        offsets = torch.rand(4, generator=gen, dtype=torch.float64) * 0.5
        exact.append(_exact_disk_regions(proj, offsets, 0.5))
        assert exact_disk_regions(proj, offsets, 0.5) == exact[-1]  # vectorised == python loop
        if draw < 10:  # sampling can miss slivers, never invent a region
            codes = torch.floor((pts @ proj + offsets) / 0.5).to(torch.int64)  # (N, 4)
            assert torch.unique(codes, dim=0).shape[0] <= exact[-1]
    mean, sem = np.mean(exact), np.std(exact, ddof=1) / math.sqrt(len(exact))
    assert abs(mean - expected_disk_count(proj, 0.5)) < 4 * sem


def test_interval_buckets_are_the_hash_buckets():
    h = PStableHash(1, 5, 0.2, seed=4)
    edges, p = interval_buckets(h)
    assert abs(float(p.sum()) - 1.0) < 1e-12
    x = torch.linspace(-1, 1, 200_001, dtype=torch.float64).unsqueeze(1)[1:-1]
    assert torch.unique(h.bucket(x)).numel() == p.numel()


def test_farthest_in_bucket_bounds_the_true_max_distance():
    gen = _gen(5)
    z = torch.rand(300, 2, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, 7, (300,), generator=gen)
    zt = torch.rand(50, 2, generator=gen, dtype=torch.float64)
    ids_t = torch.randint(0, 7, (50,), generator=gen)
    bound = farthest_in_bucket(z, ids, zt, ids_t)
    for j in range(50):
        true = float((z[ids == ids_t[j]] - zt[j]).norm(dim=1).max())
        assert true <= float(bound[j]) + 1e-12
