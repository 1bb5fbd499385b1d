"""Case data of the routing checks: sizes, grids and sample counts, chosen once and named (append only).

Sample counts come in (quick, full) pairs, read with ``framework.by_profile``. Changing a published case
changes what a check measures, so add a new case rather than editing one.
"""

import math

# --- routing (docs/THEORY.md §C) --------------------------------------------------------------------------
ROUTING_TOKENS = 256  # T, tokens per batch
ROUTING_EXPERTS = 8  # E (a power of two, so SimHash buckets map onto experts without modulo bias)

# Switch loss identities: (T, E, k) cases checked exactly
SWITCH_LOSS_CASES = [(64, 4, 1), (256, 8, 1), (256, 8, 2), (96, 16, 4)]
SWITCH_LOSS_RANDOM_DRAWS = (20, 100)  # random balanced / collapsed logit matrices per case
SWITCH_LOSS_COLLAPSE_MARGIN = 60.0  # logit gap of the collapsed expert: 1 - P_collapsed <= (E-1) e^-60
# Expectation under iid random logits: batches per k, and the logit law (iid Uniform[0, LOGIT_SPAN))
SWITCH_LOSS_EXPECTATION_TOKENS = 32
SWITCH_LOSS_EXPECTATION_BATCHES = (1_500, 15_000)
SWITCH_LOSS_LOGIT_SPAN = 4.0
SWITCH_LOSS_EXPECTATION_KS = (1, 2)

# Token drops under capacity for uniformly random top-k routing
# capacity factors chosen so that C sits within ~2.5 sd of the mean load for k = 1 and 2, where drops vary
# enough for a test to see an off-by-one capacity. Batches: each adds one expert's drops to the exact test;
# with 1,200 (quick) the capacity-minus-one control was caught at 12 of seeds 1-12, with 400 at 7 of 10
DROP_CAPACITY_FACTORS = (0.875, 1.0, 1.125, 1.25)
DROP_KS = (1, 2)
DROP_BATCHES = (1_200, 8_000)  # batches per (capacity factor, k) cell

# Maximum expert load (exact multinomial maximum)
MAX_LOAD_BATCHES = (2_000, 20_000)

# Expert choice: (T, E, capacity_factor) cases
EXPERT_CHOICE_CASES = [(256, 8, 1.0), (256, 8, 2.0), (100, 7, 1.3), (64, 16, 0.5)]
EXPERT_CHOICE_DRAWS = (20, 200)

# Sinkhorn
SINKHORN_CASES = [(256, 8), (128, 16), (100, 7)]  # (T, E) for the marginal check
SINKHORN_MARGINAL_TEMPERATURES = (1.0, 0.3)
SINKHORN_LOAD_TEMPERATURES = (1.0, 0.3, 0.1)  # the trend is tested between the first and the last
SINKHORN_ITERATIONS = 1_000  # upper bound; the router stops at its tolerance (~100 iterations at 0.1)
SINKHORN_TOL = 1e-6
SINKHORN_DRAWS = (10, 50)  # logit matrices per case (marginals)
SINKHORN_LOAD_BATCHES = (60, 400)  # paired batches for the max-load comparison
SINKHORN_EXPERT_BIAS_SD = 0.5  # logits = N(0,1) + a per-batch expert bias N(0, 0.5^2): a skewed gate

# Hash routing
HASH_TABLES = (2_000, 20_000)  # random tables (seeds) for the multinomial check
HASH_VOCAB = 50_000
ZIPF_VOCAB = 5_000
ZIPF_EXPONENT = 1.0
ZIPF_BATCHES = (40, 400)

# LSH routing: angles between token pairs, fresh router per pair
LSH_D_MODEL = 16
LSH_ANGLES = (math.pi / 16, math.pi / 8, math.pi / 4, math.pi / 2)
LSH_PAIRS = (1_000, 10_000)  # pairs per angle
