"""Hash families: SimHash (random hyperplanes), p-stable Euclidean LSH, and a universal integer hash.

All randomness is drawn once, on the CPU, from ``torch.Generator().manual_seed(seed)``, so the same seed gives
the same hash on every device and every batch composition (a row's bucket depends on that row alone), up to
the last bit of a projection: the matrix product may round a row differently in batches of different sizes
(seen for float64 on MKL: one row goes through its matrix-vector kernel), which moves a bucket only for a
projection within one ulp of a cell boundary or of 0; at |projection| / width near 2^52 (x of 1e38 at width
2^70), not at ordinary scales.
"""

from __future__ import annotations

import torch
from torch import nn

from . import kernels
from .validation import check_finite_image, check_int_in_range, check_positive_float, check_seed, check_tokens

INT64_CELL_LIMIT = 2.0**63  # |floor(projection / width)| must stay below this to be an int64 coordinate

MERSENNE_31 = (1 << 31) - 1  # prime modulus of the universal hash: products of two residues fit in int64


def universal_hash(codes: torch.Tensor, seed: int) -> torch.Tensor:
    """Hash integer rows to 62-bit ids: two independent multilinear hashes mod 2^31 - 1, concatenated.

    codes: (n, m) int64 (any values, negatives included). Returns (n,) int64 in [0, 2^62). Two distinct rows
    collide with probability about 2^-62 over the seed. Deterministic given ``seed``.
    """
    if codes.dim() != 2 or codes.dtype != torch.int64:
        raise ValueError(f"codes must be a (n, m) int64 tensor, got {codes.dtype} {tuple(codes.shape)}")
    n, m = codes.shape
    gen = torch.Generator().manual_seed(check_seed(seed))
    coeffs = torch.randint(1, MERSENNE_31, (2, m + 1), generator=gen, dtype=torch.int64).to(codes.device)
    residues = torch.remainder(codes, MERSENNE_31)  # (n, m) in [0, p)
    halves = []
    for row in coeffs:  # two independent hashes
        products = residues * row[:m]  # (n, m), each < 2^62
        # x = (x >> 31) * 2^31 + (x & p) = (x >> 31) + (x & p) mod p: < 2^32 without a division, whose time
        # grows with the codes' magnitude
        terms = (products >> 31).add_(products.bitwise_and_(MERSENNE_31))  # (n, m), congruent, < 2^32
        halves.append(torch.remainder(terms.sum(dim=1) + row[m], MERSENNE_31))  # (n,): the sum is < m * 2^32
    return halves[0] * (1 << 31) + halves[1]


def project(x: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """x: (n, d) float; directions: (d, m) float64. Returns x @ directions in x's dtype, (n, m), on
    ``kernels.linear`` (few-column products are slow on MKL: the CPU backend takes oneDNN)."""
    return kernels.linear(x, directions.to(x.dtype).t())


class SimHash(nn.Module):
    """Random-hyperplane LSH: ``bits`` sign bits of Gaussian projections; P[same bit] = 1 - angle/pi.

    d: input dimension; bits: hyperplanes (1..62); seed: drawing seed. Directions are a (d, bits) buffer.
    """

    def __init__(self, d: int, bits: int, seed: int = 0):
        super().__init__()
        check_int_in_range(d, "d", 1)
        check_int_in_range(bits, "bits", 1, 62)
        gen = torch.Generator().manual_seed(check_seed(seed))
        self.d, self.bits, self.seed = d, bits, seed
        self.register_buffer("directions", torch.randn(d, bits, generator=gen, dtype=torch.float64))
        self.register_buffer("powers", 2 ** torch.arange(bits, dtype=torch.int64))

    def signs(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n, bits) bool, True where the projection is >= 0."""
        check_tokens(x, self.d, values=False)  # NaN/Inf: found in the (n, bits) projection instead
        proj = project(x, self.directions)  # (n, bits)
        check_finite_image(proj, x)
        return proj >= 0

    def bucket(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n,) int64 in [0, 2^bits): the sign pattern read as a binary number."""
        return (self.signs(x).to(torch.int64) * self.powers).sum(dim=1)

    @property
    def num_buckets(self) -> int:
        return 1 << self.bits


class PStableHash(nn.Module):
    """Euclidean (2-stable) LSH: ``h_i(x) = floor((a_i . x + b_i) / width)``, a_i ~ N(0, I_d), b_i ~ U[0, width).

    d: input dimension; num_hashes: D, the hashes concatenated into one bucket; width: w > 0; seed: drawing seed.
    Computed in x's dtype: a width beyond that dtype's range, or cells beyond int64's, is a ValueError.
    """

    def __init__(self, d: int, num_hashes: int, width: float, seed: int = 0):
        super().__init__()
        check_int_in_range(d, "d", 1)
        check_int_in_range(num_hashes, "num_hashes", 1)
        self.width = check_positive_float(width, "width")
        gen = torch.Generator().manual_seed(check_seed(seed))
        self.d, self.num_hashes, self.seed = d, num_hashes, seed
        self.register_buffer("directions", torch.randn(d, num_hashes, generator=gen, dtype=torch.float64))
        self.register_buffer(
            "offsets", torch.rand(num_hashes, generator=gen, dtype=torch.float64) * self.width
        )

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n, num_hashes) int64 bucket coordinates."""
        check_tokens(x, self.d, values=False)  # NaN/Inf: found in the (n, num_hashes) projection instead
        if self.width > torch.finfo(x.dtype).max:  # the offsets, drawn in [0, width), would be Inf
            raise ValueError(f"width={self.width!r} exceeds the range of x's dtype {x.dtype}; use a smaller "
                             f"width or a wider dtype")
        proj = project(x, self.directions) + self.offsets.to(x.dtype)  # (n, num_hashes)
        check_finite_image(proj, x)
        cells = torch.floor(proj / self.width)  # (n, num_hashes), integral floats
        if cells.numel() and not bool(cells.abs().max() < INT64_CELL_LIMIT):
            largest = float(x.detach().abs().max())
            raise ValueError(f"the projections of x / width exceed the int64 range of bucket coordinates at "
                             f"width={self.width!r} (largest |x| {largest:.3g}); use a larger width or a "
                             f"smaller x")
        return cells.to(torch.int64)

    def bucket(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n,) int64: a stable id per distinct code vector (62-bit universal hash)."""
        return universal_hash(self.codes(x), seed=self.seed)
