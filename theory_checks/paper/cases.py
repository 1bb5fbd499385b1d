"""Case data of the paper checks (docs/THEORY.md §A): grids, sizes and sample counts, named once
(append only).

Counts are (quick, full) pairs read with ``framework.by_profile``.
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

# 4. Lemma 4.2: bucket diameter on a k-dim subspace vs d; D = C * k hashes of width w
LEMMA42_DIMS = (8, 32, 128, 512)
LEMMA42_K = 2
LEMMA42_C = 3
LEMMA42_WIDTH = 0.25
LEMMA42_QUERIES = (1_000, 4_000)  # query points in the unit disk of the subspace per replicate
LEMMA42_REPLICATES = (8, 40)  # hash + subspace draws per dimension
LEMMA42_CONTROL_SLOPE = 0.5  # unit-norm directions: cell size on the subspace grows like sqrt(d)

# 5. non-empty buckets vs width on the unit disk of a k = 2 subspace of R^d
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

# 7. random-hash routing vs LSH: inputs on a k = 2 subspace of R^8, degree-4 polynomial target
ROUTING_D, ROUTING_K = 8, 2
ROUTING_BUCKETS = (16, 64, 256, 1024)  # random-hash table sizes
ROUTING_WIDTHS = (1.6, 0.8, 0.4, 0.2)  # p-stable widths (D = 4 hashes) for the LSH model
ROUTING_TRAIN = (20_000, 100_000)
ROUTING_TEST = (5_000, 20_000)
ROUTING_REPLICATES = (12, 20)  # quick: 8 left the LSH slope test short of power on 1 of 100 audit seeds

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

# 10. dense frozen random features on bump families: spacings per k (epsilon = bump height / 2)
BUMP_CASES = ((2, (1.0, 0.5, 0.25)),)  # (k, spacings): 4, 16, 64 bumps
BUMP_TRAIN = 4_096  # training samples per fit (a quarter as many more pick the ridge)
BUMP_GRID = 101  # sup-error on a BUMP_GRID^k grid of [-1, 1]^k
BUMP_FIRST_WIDTH = 8
BUMP_WIDTH_STEP = 2 ** 0.25  # widths searched on a geometric grid of this ratio
BUMP_MAX_WIDTH = 4_096
# Replicates: with 3 (quick) the collapsed-input control's slope bound fell below k at only about half of
# seeds 1-30 at ALPHA = 1e-3 (a level of 0.01 had been used to catch it); with 6 at ALPHA, on 30 of 30
# (2026-12-03)
BUMP_REPLICATES = (6, 12)

# 11. Table 1: active units of the dense / 50% / 25% models (paper: 2048, 4096, 8192 -> 18,432 ... FLOPs)
TABLE1_D = 8
TABLE1_ACTIVE = ((32, 64, 128), (2048, 4096, 8192))
# training samples (CPU budget: kernel ridge at t = 32768); a quarter as many more pick the ridge
TABLE1_TRAIN = (2_048, 2_048)
TABLE1_TEST = (2_048, 8_192)
TABLE1_SEEDS = (8, 5)  # quick: more seeds of a smaller problem
TABLE1_PAPER = {  # eval MSE from the paper's Table 1, columns FLOPs 18,432 / 36,864 / 73,728
    "dense": (0.01015, 0.01009, 0.01046),
    "dsm_50": (0.01014, 0.007438, 0.006115),
    "dsm_25": (0.009655, 0.005054, 0.001799),
}

# 12. LSH vs dense crossover on the degree-4 polynomial in 8 dimensions
CROSSOVER_D = 8
CROSSOVER_HASHES = 12
CROSSOVER_WIDTHS = (16.0, 11.3, 8.0, 5.66, 4.0)  # >= ~15 training samples per bucket at the narrowest
CROSSOVER_DENSE_WIDTH = (256, 2_048)
CROSSOVER_DENSE_TRAIN = (4_096, 8_192)  # dense model's training samples (a quarter more pick the ridge)
CROSSOVER_TRAIN = (50_000, 200_000)
CROSSOVER_TEST = (5_000, 20_000)
CROSSOVER_SEEDS = (6, 8)
CROSSOVER_PAPER_BUCKETS = 2048

# 13. k-NN regression == knn_as_dsm
KNN_CASES = ((2, 50, 1), (5, 300, 3), (8, 1000, 10), (16, 2000, 32))  # (d, points, k)
KNN_QUERIES = (500, 5_000)

