"""LSH routing: the expert is a function of x's locality-sensitive bucket (the paper's LSH model as a router)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..hashing import PStableHash, SimHash, universal_hash
from ..validation import check_int_in_range, check_positive_float, check_seed, check_tokens
from .base import Router, RouterCapabilities
from .plan import RoutingPlan, plan_from_token_choices

LSH_FAMILIES = ("simhash", "pstable")
TABLE_SEED_STRIDE = 1_000_003  # table t draws its hash from seed + t * stride (mod 2**63)


class LSHRouter(Router):
    """Route x by its LSH bucket; with ``num_tables=s`` every token gets s assignments, one per table.

    family="simhash": ``num_hashes`` sign bits per table (default ceil(log2 E)); bucket b goes to expert b mod E,
    which is uniform over experts when E is a power of two.
    family="pstable": ``num_hashes`` p-stable hashes of width ``width`` per table (default width sqrt(d_model),
    a few codes per hash for inputs with unit-variance coordinates); the code vector is hashed to an expert, so
    equal buckets share an expert and distinct buckets collide only at random.
    Each assignment has weight 1/num_tables (the output averages the tables). No parameters, no capacity.
    Computes num_tables * num_hashes projections per token instead of a learned router's E.
    """

    def __init__(
        self,
        d_model: int,
        num_experts: int,
        family: str = "simhash",
        num_tables: int = 1,
        width: float | None = None,
        seed: int = 0,
        num_hashes: int | None = None,
    ):
        super().__init__()
        self.d_model = check_int_in_range(d_model, "d_model", 1)
        self.num_experts = check_int_in_range(num_experts, "num_experts", 1)
        self.num_tables = check_int_in_range(num_tables, "num_tables", 1)
        if family not in LSH_FAMILIES:
            raise ValueError(f"family must be one of {LSH_FAMILIES}, got {family!r}")
        if family == "simhash" and width is not None:
            raise ValueError("width applies to family='pstable' only")
        self.family, self.seed = family, check_seed(seed)
        bits = max(1, math.ceil(math.log2(num_experts)))
        max_hashes = 62 if family == "simhash" else None  # simhash: sign bits of a 62-bit bucket id
        self.num_hashes = bits if num_hashes is None else check_int_in_range(num_hashes, "num_hashes", 1,
                                                                             max_hashes)
        self.width = check_positive_float(width, "width") if width is not None else math.sqrt(d_model)
        seeds = [(self.seed + t * TABLE_SEED_STRIDE) % 2**63 for t in range(num_tables)]
        if family == "simhash":
            tables = [SimHash(d_model, self.num_hashes, s) for s in seeds]
        else:
            tables = [PStableHash(d_model, self.num_hashes, self.width, s) for s in seeds]
        self.tables = nn.ModuleList(tables)

    @property
    def capabilities(self) -> RouterCapabilities:
        return RouterCapabilities(learned=False, drops_tokens=False, assignments_per_token=self.num_tables,
                                  batch_independent=True)

    def experts(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, d_model). Returns (T, num_tables) int64 experts."""
        check_tokens(x, self.d_model, values=False)  # NaN/Inf: each table checks its small projection
        columns = []
        for table in self.tables:
            if self.family == "simhash":
                columns.append(table.bucket(x) % self.num_experts)
            else:
                codes = table.codes(x)  # (T, num_hashes)
                columns.append(universal_hash(codes, table.seed) % self.num_experts)
        return torch.stack(columns, dim=1)

    def forward(self, x: torch.Tensor, token_ids: torch.Tensor | None = None) -> RoutingPlan:
        """x: (T, d_model) float. Returns a plan with T * num_tables assignments."""
        with torch.no_grad():
            expert = self.experts(x)  # (T, s)
        T, s = expert.shape
        weight = torch.full((T, s), 1.0 / s, dtype=x.dtype, device=x.device)
        plan = plan_from_token_choices(expert, weight, self.num_experts)
        plan.aux["expert_load"] = plan.expert_counts
        return plan
