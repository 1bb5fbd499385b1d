"""Router speed and routing quality: top-k softmax, LSH, hash, expert choice and Sinkhorn routers."""

from __future__ import annotations

from .common import SEED, AreaRatios, Benchmark, get_token_ids, get_tokens, require, safe_import

TopKRouter = LSHRouter = HashRouter = ExpertChoiceRouter = SinkhornRouter = None
with safe_import():
    from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter

NUM_TOKENS = 4096
ROUTER_NAMES = ["topk", "lsh", "hash", "expert_choice", "sinkhorn"]


def make_router(name: str, d_model: int, num_experts: int):
    import torch

    gen = torch.Generator().manual_seed(SEED)
    require(**{"TopKRouter": TopKRouter, "LSHRouter": LSHRouter, "HashRouter": HashRouter,
               "ExpertChoiceRouter": ExpertChoiceRouter, "SinkhornRouter": SinkhornRouter})
    if name == "topk":
        return TopKRouter(d_model, num_experts, k=2, normalize=True, generator=gen)
    if name == "lsh":
        return LSHRouter(d_model, num_experts, family="simhash", seed=SEED)
    if name == "hash":
        return HashRouter(num_experts, key="token_id", seed=SEED)
    if name == "expert_choice":
        return ExpertChoiceRouter(d_model, num_experts, capacity_factor=1.0, generator=gen)
    return SinkhornRouter(d_model, num_experts, k=2, generator=gen)


class Routing(Benchmark):
    """Time to route T = 4096 tokens. Targets: LSH >= 2x faster than top-k at E=64, d=1024; hash flat in d."""

    params = [ROUTER_NAMES, [8, 64], [256, 1024]]
    param_names = ["router", "num_experts", "d_model"]

    def setup(self, router, num_experts, d_model):
        self.prepare_process()
        self.router = make_router(router, d_model, num_experts)
        self.x = get_tokens(NUM_TOKENS, d_model)
        self.ids = get_token_ids(NUM_TOKENS)
        self.plan = self.router(self.x, token_ids=self.ids)
        self.plan.validate()  # verify once: a well-formed plan over all tokens
        if self.plan.num_tokens != NUM_TOKENS:
            raise AssertionError(f"{router}: plan routes {self.plan.num_tokens} tokens, not {NUM_TOKENS}")

    def time_route(self, router, num_experts, d_model):
        self.router(self.x, token_ids=self.ids)

    def track_max_load_over_mean(self, router, num_experts, d_model):
        """Load imbalance: largest expert load / mean load (1 = balanced; lower is better)."""
        counts = self.plan.expert_counts.double()
        return float(counts.max() / counts.mean())

    track_max_load_over_mean.unit = "ratio"


class CostRatios(AreaRatios):
    """LSH router / top-k softmax router at E=64, d=1024, T=4096 (target <= 0.5), hash router at d=1024 /
    d=256 (target <= 1.3), timed side by side (``sparse_bench.bench.components``)."""

    area = "routers"
    params = [["lsh_over_topk", "hash_d1024_over_d256"]]
    track_ratio = AreaRatios.ratio


class CapacityDrops(Benchmark):
    """Fraction of top-k assignments dropped by capacity (Switch, position policy); lower is better."""

    params = [[8, 64], [1, 2], [1.0, 1.25, 2.0]]
    param_names = ["num_experts", "k", "capacity_factor"]

    def setup(self, num_experts, k, capacity_factor):
        import torch

        require(TopKRouter=TopKRouter)
        self.prepare_process()
        gen = torch.Generator().manual_seed(SEED)
        self.router = TopKRouter(512, num_experts, k=k, capacity_factor=capacity_factor, generator=gen)
        self.x = get_tokens(NUM_TOKENS, 512)

    def track_drop_rate(self, num_experts, k, capacity_factor):
        plan = self.router(self.x)
        return plan.dropped / (NUM_TOKENS * k)

    track_drop_rate.unit = "fraction"
