"""universal_hash against its definition in exact Python integers, on small, negative and extreme int64 codes."""

from __future__ import annotations

import torch

from sparse_bench.hashing import MERSENNE_31, universal_hash


def by_definition(codes: torch.Tensor, seed: int) -> list[int]:
    """Two multilinear hashes mod p = 2^31 - 1 of each row, h = (sum_i a_i * (c_i mod p) + b) mod p, as
    h_0 * 2^31 + h_1, with the coefficients drawn as universal_hash draws them."""
    m = codes.shape[1]
    coeffs = torch.randint(1, MERSENNE_31, (2, m + 1), generator=torch.Generator().manual_seed(seed)).tolist()
    ids = []
    for row in codes.tolist():
        halves = [(sum(a * (c % MERSENNE_31) for a, c in zip(hash_coeffs, row)) + hash_coeffs[m]) % MERSENNE_31
                  for hash_coeffs in coeffs]
        ids.append(halves[0] * 2**31 + halves[1])
    return ids


def test_universal_hash_matches_exact_arithmetic():
    info = torch.iinfo(torch.int64)
    gen = torch.Generator().manual_seed(0)
    cases = [
        torch.randint(-6, 7, (400, 8), generator=gen),  # LSH bucket coordinates
        torch.randint(info.min, info.max, (400, 8), generator=gen),
        torch.tensor([[info.min, info.max, 0, -1, MERSENNE_31, MERSENNE_31 + 1, -MERSENNE_31, 2**62]]),
        torch.randint(-(2**40), 2**40, (50, 64), generator=gen),  # many columns: the sum of reduced terms grows
    ]
    for codes in cases:
        for seed in (0, 2**40 + 3):
            assert universal_hash(codes, seed).tolist() == by_definition(codes, seed)
