"""The LSH model LSH(d, s, m) of docs/THEORY.md §A: s hash tables, one trainable constant per bucket.

Output = mean over tables of the constant of x's bucket in that table (table weight 1/s). Constants are the
training means of the targets in each bucket, computed by deterministic float64 segment sums; a bucket that
holds no training sample returns ``default`` (the overall training mean unless given). One input touches
exactly one bucket per table, so the work per input does not depend on how many buckets exist.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..hashing import PStableHash, SimHash
from ..validation import (
    check_int_in_range,
    check_positive_float,
    check_real,
    check_samples,
    check_seed,
    check_tokens,
)

FAMILIES = ("pstable", "simhash")


def _table_seeds(seed: int, num_tables: int) -> list[int]:
    gen = torch.Generator().manual_seed(check_seed(seed))
    return [int(s) for s in torch.randint(0, 2**62, (num_tables,), generator=gen, dtype=torch.int64)]


def bucket_means(ids: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids: (n,) int64 bucket ids; y: (n,) float. Returns (sorted unique ids, float64 means, int64 counts)."""
    unique, inverse, counts = torch.unique(ids, sorted=True, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)  # (n,) samples grouped by bucket
    # segment sums (no atomics, so deterministic on every device; exact up to a per-bucket rounding)
    sums = torch.segment_reduce(y.to(torch.float64)[order], "sum", lengths=counts)  # (B,)
    return unique, sums / counts, counts


class LSHModel(nn.Module):
    """Bucket-constant model over ``num_tables`` independent hashes of one family.

    d: input dimension; family: "pstable" (``num_hashes`` hashes of ``width`` each) or "simhash"
    (``num_hashes`` sign bits, width must be None); seed: draws every table's hash. Use ``from_hashes`` to
    supply hash objects.
    """

    def __init__(self, d: int, family: str = "pstable", num_tables: int = 1, num_hashes: int = 8,
                 width: float | None = None, seed: int = 0):
        check_int_in_range(d, "d", 1)
        check_int_in_range(num_tables, "num_tables", 1)
        check_int_in_range(num_hashes, "num_hashes", 1, 62 if family == "simhash" else None)  # simhash: bits
        if family == "pstable":
            if width is None:
                raise ValueError("width is required for family='pstable'")
            check_positive_float(width, "width")
            hashes = [PStableHash(d, num_hashes, width, s) for s in _table_seeds(seed, num_tables)]
        elif family == "simhash":
            if width is not None:
                raise ValueError("width must be None for family='simhash' (sign bits have no width)")
            hashes = [SimHash(d, num_hashes, s) for s in _table_seeds(seed, num_tables)]
        else:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
        self._init(d, hashes, num_hashes)
        self.family, self.width, self.seed = family, width, seed

    @classmethod
    def from_hashes(cls, d: int, hashes: list, num_hashes: int) -> LSHModel:
        """Build from hash objects with ``.bucket(x: (n, d)) -> (n,) int64``.

        num_hashes: projections per table, used only to count FLOPs."""
        check_int_in_range(d, "d", 1)
        check_int_in_range(num_hashes, "num_hashes", 1)
        if not hashes or not all(callable(getattr(h, "bucket", None)) for h in hashes):
            raise TypeError("hashes must be a non-empty list of objects with a .bucket(x) method")
        model = cls.__new__(cls)
        model._init(d, list(hashes), num_hashes)
        model.family, model.width, model.seed = "custom", None, None
        return model

    def _init(self, d: int, hashes: list, num_hashes: int) -> None:
        nn.Module.__init__(self)
        self.d, self.num_hashes, self.num_tables = d, num_hashes, len(hashes)
        all_modules = all(isinstance(h, nn.Module) for h in hashes)
        self.hashes = nn.ModuleList(hashes) if all_modules else list(hashes)
        self.table_ids: list[torch.Tensor] = []
        self.table_means: list[torch.Tensor] = []
        self.table_counts: list[torch.Tensor] = []
        self.default: float | None = None

    def fit(self, x: torch.Tensor, y: torch.Tensor, default: float | None = None) -> LSHModel:
        """x: (n, d) float, y: (n,) float, n >= 1. Sets each table's bucket means. Returns self. ValueError
        where a mean's float64 sum overflows (|y| near float64's max)."""
        check_samples(x, y, self.d)
        default = float(y.to(torch.float64).mean()) if default is None else check_real(default, "default")
        fitted = [bucket_means(h.bucket(x), y) for h in self.hashes]
        if not math.isfinite(default) or not all(bool(torch.isfinite(f[1]).all()) for f in fitted):
            largest = float(y.abs().max())
            raise ValueError(f"the means of y overflow float64 (largest |y| {largest:.3g}): scale y down")
        self.default = default
        self.table_ids = [f[0] for f in fitted]
        self.table_means = [f[1] for f in fitted]
        self.table_counts = [f[2] for f in fitted]
        return self

    def table_predictions(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (num_tables, n) float64: each table's constant (``default`` if empty)."""
        if self.default is None:
            raise RuntimeError("predict called before fit")
        check_tokens(x, self.d)
        rows = []
        for h, ids, means in zip(self.hashes, self.table_ids, self.table_means):
            query = h.bucket(x)  # (n,)
            pos = torch.searchsorted(ids, query).clamp_max(ids.numel() - 1)  # (n,)
            found = ids[pos] == query
            rows.append(torch.where(found, means[pos], torch.full_like(means[pos], self.default)))
        return torch.stack(rows)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n,) float64: mean over tables of the bucket constants."""
        constants = self.table_predictions(x)  # (num_tables, n)
        mean = constants.mean(dim=0)
        if not bool(torch.isfinite(mean).all()):  # constants near float64's max: their sum overflowed,
            mean = (constants / self.num_tables).sum(dim=0)  # the mean of finite constants cannot
        return mean

    forward = predict

    @property
    def num_nonempty_buckets(self) -> int:
        """Buckets holding at least one training sample, summed over tables."""
        if self.default is None:
            raise RuntimeError("num_nonempty_buckets read before fit")
        return int(sum(ids.numel() for ids in self.table_ids))

    @property
    def active_units_per_input(self) -> int:
        """One bucket constant per table is used per input."""
        return self.num_tables

    def flops_per_input(self) -> int:
        """Multiply-adds per input: d * num_hashes projections per table plus one add of its constant."""
        return self.num_tables * (self.d * self.num_hashes + 1)
