"""Case data of the paper checks (docs/THEORY.md §A, numbered as its items) and of the findings built on
Table 1: grids, sizes and sample counts, named once.

Counts are (quick, full) pairs read with ``framework.by_profile``. Items 4, 10, 11 and 12 are findings, not
checks (``theory_checks.findings``); Table 1's sizes and published numbers stay here for its findings.
"""

# 1. SimHash collision law: angle / pi, dimension, bits; SimHash instances per cell
#    (each instance gives 60 // bits independent trials)
SIMHASH_ANGLES = (0.1, 0.25, 0.5, 0.75)
SIMHASH_DIMS = (3, 32, 256)
SIMHASH_BITS = (1, 3, 6)
# 30 quick instances caught the cube-directions control (collision 0.92 against 0.90 at angle 0.1 pi, m = 1,
# along the axes) at 10 of seeds 1-20; 150 at 20 of 20, the real hash passing at all 20 (2026-12-03)
SIMHASH_INSTANCES = (150, 1_500)

# 2. p-stable collision law: r = w / c, dimension, hashes D, width, norm of the first point / w
PSTABLE_RATIOS = (0.5, 1.0, 2.0, 4.0)
PSTABLE_DIMS = (2, 64)
PSTABLE_HASHES = (1, 3)
PSTABLE_WIDTHS = (0.5, 4.0)
PSTABLE_ANCHOR_NORMS = (0.0, 3.0)  # 0: offsets matter (the control's defect shows); 3: projections wrap
PSTABLE_TRIALS = (600, 6_000)

# 3. Cover's count: (d, m) central arrangements; Gaussian sample points per case
COVER_CASES = ((2, 5), (3, 3), (3, 6), (4, 8), (5, 7))
COVER_SAMPLES = (100_000, 1_000_000)

# 5. buckets meeting the unit disk of a k = 2 subspace of R^d, against their expectation, per width
COUNT_D = 16
COUNT_K = 2
COUNT_C = 3
COUNT_WIDTHS = (1.0, 0.7, 0.5, 0.35, 0.25)
COUNT_SAMPLES = (20_000, 200_000)  # only to check codes against the geometry
COUNT_REPLICATES = (3, 12)

# 6. bucket-constant approximation: (k, widths) on a k-dim subspace of R^16, target a bump family (L = 1)
APPROX_D = 16
APPROX_CASES = ((1, (0.4, 0.303, 0.23, 0.174, 0.132, 0.1)),  # six widths over a factor 4 per k
                (2, (1.0, 0.758, 0.574, 0.435, 0.33, 0.25)))
APPROX_BUMP_SPACING = 2.0  # one cone of radius and height 1 at the origin of the subspace
APPROX_HASHES_PER_K = 3  # D = 3 k
APPROX_TRAIN = (40_000, 200_000)
APPROX_TEST = (5_000, 20_000)
APPROX_REPLICATES = (30, 40)

# 7. random-hash routing: inputs on a k = 2 subspace of R^8, degree-4 polynomial target
ROUTING_D, ROUTING_K = 8, 2
ROUTING_BUCKETS = (16, 64, 256, 1024)  # random-hash table sizes
ROUTING_CONTROL_WIDTHS = (1.6, 0.8, 0.4, 0.2)  # p-stable widths (D = 4 hashes) of the LSH control, per size
ROUTING_TRAIN = (20_000, 100_000)
ROUTING_TEST = (5_000, 20_000)
ROUTING_REPLICATES = (12, 20)

# 8. coverage: 1-D p-stable buckets on [-1, 1], training sizes as multiples of the bucket count
COVERAGE_HASHES = 6
COVERAGE_WIDTH = 0.3
COVERAGE_SIZE_FACTORS = (0.5, 1.0, 2.0, 4.0)
COVERAGE_REPLICATES = (200, 2_000)

# 9. FLOPs per input by counting
FLOPS_D = 8
FLOPS_LSH_WIDTHS = (2.0, 1.0, 0.5, 0.25, 0.125)  # table sizes grow as the width shrinks
FLOPS_DENSE_WIDTHS = (256, 512, 1024, 2048, 4096)
FLOPS_INPUTS = 512

# 11. Table 1 (its findings): active units of the dense / 50% / 25% models at the quick profile and the
#     paper's (2048, 4096, 8192 -> 18,432 ... FLOPs)
TABLE1_D = 8
TABLE1_ACTIVE = ((32, 64, 128), (2048, 4096, 8192))
TABLE1_SEEDS = (8, 5)  # quick: more seeds of a smaller problem
TABLE1_PAPER = {  # eval MSE from the paper's Table 1, columns FLOPs 18,432 / 36,864 / 73,728
    "dense": (0.01015, 0.01009, 0.01046),
    "dsm_50": (0.01014, 0.007438, 0.006115),
    "dsm_25": (0.009655, 0.005054, 0.001799),
}

# 13. k-NN regression == knn_as_dsm
KNN_CASES = ((2, 50, 1), (5, 300, 3), (8, 1000, 10), (16, 2000, 32))  # (d, points, k)
KNN_QUERIES = (500, 5_000)

