"""Deliberately broken routers and MoE layers: one per contract clause, each the kind of mistake the clause
exists to catch. tests/test_contract_suite.py asserts each is caught by its clause and, where the defect
allows, only by it (``also`` names the clauses that must catch it too, with the reason beside it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch

from sparse_bench import ExpertBank, MoELayer
from sparse_bench.dispatch import dispatch_sorted
from sparse_bench.routing import HashRouter, TopKRouter
from sparse_bench.routing.base import expert_softmax, switch_load_balancing_loss, z_loss
from sparse_bench.routing.plan import plan_from_assignments
from sparse_bench.validation import check_tokens

D_MODEL, D_HIDDEN, NUM_EXPERTS = 16, 24, 5


@dataclass(frozen=True)
class Broken:
    """A broken object, the clause that must catch it, and the clauses that catch it too by design."""

    build: Callable[[], torch.nn.Module]
    clause: str
    also: frozenset = field(default_factory=frozenset)


def gate(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_ulp_up_at_random(values: torch.Tensor) -> torch.Tensor:
    """values with about half its entries moved one ulp up, chosen by the global RNG (gradient kept)."""
    bumped = torch.nextafter(values.detach(), torch.full_like(values.detach(), float("inf")))
    chosen = torch.rand(values.shape, device=values.device) < 0.5
    return values + (bumped - values.detach()) * chosen


# --- routers --------------------------------------------------------------------------------------------


class Int32TokenIndex(TopKRouter):
    """token_index stored as int32 (to save memory): RoutingPlan.validate() demands int64."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.token_index = plan.token_index.to(torch.int32)
        return plan


class ExpertIndexDescending(TopKRouter):
    """The plan's assignments reversed: experts descending."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.token_index, plan.expert_index = plan.token_index.flip(0), plan.expert_index.flip(0)
        plan.weight = plan.weight.flip(0)
        return plan


class TokensReversedWithinExpert(TopKRouter):
    """Sorted by expert, but by descending token within an expert (a sort on expert alone, not stable)."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        order = torch.argsort(plan.expert_index * plan.num_tokens - plan.token_index, stable=True)
        plan.token_index, plan.weight = plan.token_index[order], plan.weight[order]
        plan.token_cells = plan.token_cells[order]  # consistent: the order within an expert is the one bug
        return plan


class SecondChoiceWhenConfident(TopKRouter):
    """Declares k=2 without dropping, but keeps a token's second choice only when its probability exceeds 0.2;
    counts, expert_load and the Switch loss follow the assignments it keeps."""

    def plan_from_logits(self, logits):
        self.check_logits(logits)
        T, E = logits.shape
        probs = expert_softmax(logits)
        with torch.no_grad():
            top = torch.topk(probs, 2, dim=-1).indices  # (T, 2)
        weight = probs.gather(1, top)
        keep = torch.ones_like(top, dtype=torch.bool)
        keep[:, 1] = weight[:, 1].detach() > 0.2
        token = torch.arange(T, device=logits.device).unsqueeze(1).expand(T, 2)
        load = torch.bincount(top[keep], minlength=E)
        aux = {"load_balancing_loss": switch_load_balancing_loss(load, probs), "z_loss": z_loss(logits),
               "expert_load": load}
        return plan_from_assignments(token[keep], top[keep], weight[keep], T, E, aux=aux)


class NegatedWeights(TopKRouter):
    """Combine weights negated (a sign slip in a log-probability router)."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.weight = -plan.weight
        return plan


class NaNWeightsOnExpertZero(HashRouter):
    """Weight 0/0 for tokens hashed to expert 0 (a normalisation by an empty count)."""

    def forward(self, x, token_ids=None):
        plan = super().forward(x, token_ids)
        plan.weight = torch.where(plan.expert_index == 0, torch.nan, plan.weight)
        return plan


class DroppedMisreported(TopKRouter):
    """Drops by capacity but reports ``dropped = 0``."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.dropped = 0
        return plan


class CapacityOffByOne(TopKRouter):
    """Keeps C + 1 assignments per expert while reporting capacity C."""

    def expert_capacity(self, num_tokens):
        return super().expert_capacity(num_tokens) + 1

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.aux["capacity"] = super().expert_capacity(logits.shape[0])
        return plan


class RandomLastBit(TopKRouter):
    """Weights moved one ulp at random by the global RNG (as from atomics in a reduction)."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.weight = one_ulp_up_at_random(plan.weight)
        return plan


class PositionDecay(TopKRouter):
    """Weights scaled down along the batch: depends on where a token sits, not only on the token."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        position = plan.token_index.to(plan.weight.dtype) / max(plan.num_tokens, 1)
        plan.weight = plan.weight * (1 - position / 2)
        return plan


class HashSaltedByBatchSize(HashRouter):
    """The expert of a token shifted by the batch size (a salt taken from the wrong shape)."""

    def forward(self, x, token_ids=None):
        plan = super().forward(x, token_ids)
        expert = (plan.expert_index + plan.num_tokens) % self.num_experts
        aux = {"expert_load": torch.bincount(expert, minlength=self.num_experts)}
        return plan_from_assignments(plan.token_index, expert, plan.weight, plan.num_tokens, self.num_experts,
                                     aux=aux)


class DetachedWeights(TopKRouter):
    """Combine weights detached from the gate: the router never learns."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.weight = plan.weight.detach()
        return plan


class GateInInputDtype(TopKRouter):
    """Runs the gate in the input's dtype: bfloat16 tokens are routed in bfloat16, not float32."""

    def logits(self, x):
        check_tokens(x, self.d_model)
        return x @ self.weight.to(x.dtype).t()


class CrashesOnEmptyBatch(TopKRouter):
    """Records the batch's largest entry for monitoring with x.max(), which has no value for 0 tokens."""

    def forward(self, x, token_ids=None):
        self.largest_entry = float(x.detach().max())
        return super().forward(x, token_ids)


class ZeroesNaN(TopKRouter):
    """Replaces NaN/Inf in x by 0 and routes on."""

    def forward(self, x, token_ids=None):
        return super().forward(x.nan_to_num(0.0, 0.0, 0.0), token_ids)


class FitsAnyWidth(TopKRouter):
    """Truncates or zero-pads x to d_model instead of refusing another width."""

    def forward(self, x, token_ids=None):
        if x.dim() == 2 and x.is_floating_point() and x.shape[1] != self.d_model:
            x = torch.nn.functional.pad(x, (0, self.d_model - x.shape[1]))
        return super().forward(x, token_ids)


class LossInHFConvention(TopKRouter):
    """Reports HF Mixtral's load-balancing loss, k times the Switch loss the project defines."""

    def plan_from_logits(self, logits):
        plan = super().plan_from_logits(logits)
        plan.aux["load_balancing_loss"] = self.k * plan.aux["load_balancing_loss"]
        return plan


def mixtral(cls, **kwargs):
    return lambda: cls(D_MODEL, NUM_EXPERTS, k=2, normalize=True, generator=gate(), **kwargs)


def switch(cls, **kwargs):
    return lambda: cls(D_MODEL, NUM_EXPERTS, k=1, generator=gate(), **kwargs)


BROKEN_ROUTERS = {
    "int32_token_index": Broken(mixtral(Int32TokenIndex), "check_router_plan_validates"),
    # validate() checks the order too, so an unsorted plan fails both clauses
    "expert_index_descending": Broken(mixtral(ExpertIndexDescending), "check_router_expert_index_sorted",
                                      frozenset({"check_router_plan_validates"})),
    "tokens_reversed_within_expert": Broken(mixtral(TokensReversedWithinExpert),
                                            "check_router_expert_index_sorted"),
    "second_choice_when_confident": Broken(mixtral(SecondChoiceWhenConfident),
                                           "check_router_assignments_per_token"),
    "negated_weights": Broken(switch(NegatedWeights), "check_router_weights_finite_nonnegative"),
    "nan_weights": Broken(lambda: NaNWeightsOnExpertZero(NUM_EXPERTS, key="input", seed=1),
                          "check_router_weights_finite_nonnegative"),
    "dropped_misreported": Broken(mixtral(DroppedMisreported, capacity_factor=0.5),
                                  "check_router_counts_consistent"),
    "capacity_off_by_one": Broken(switch(CapacityOffByOne, capacity_factor=0.5),
                                  "check_router_capacity_respected"),
    "random_last_bit": Broken(mixtral(RandomLastBit), "check_router_deterministic"),
    "position_decay": Broken(switch(PositionDecay), "check_router_permutation_equivariant"),
    "hash_salted_by_batch_size": Broken(lambda: HashSaltedByBatchSize(NUM_EXPERTS, key="input", seed=1),
                                        "check_router_batch_independent"),
    "detached_weights": Broken(mixtral(DetachedWeights), "check_router_gradient_reaches_parameters"),
    "gate_in_input_dtype": Broken(mixtral(GateInInputDtype), "check_router_dtypes"),
    "crashes_on_empty_batch": Broken(switch(CrashesOnEmptyBatch), "check_router_empty_batch"),
    "zeroes_nan": Broken(switch(ZeroesNaN), "check_router_rejects_non_finite"),
    "fits_any_width": Broken(switch(FitsAnyWidth), "check_router_rejects_bad_shape"),
    "loss_in_hf_convention": Broken(mixtral(LossInHFConvention), "check_router_aux_identities"),
}


# --- MoE layers -----------------------------------------------------------------------------------------


def squared_weights(x, plan, bank):
    """Combines with weight^2 instead of weight."""
    return dispatch_sorted(x, dataclasses.replace(plan, weight=plan.weight.square()), bank)


def random_last_bit(x, plan, bank):
    """Output moved one ulp at random by the global RNG (as from atomics in the combine)."""
    return one_ulp_up_at_random(dispatch_sorted(x, plan, bank))


def max_expert_first(x, plan, bank):
    """Reads the largest expert index first, which an empty plan does not have."""
    int(plan.expert_index.max())
    return dispatch_sorted(x, plan, bank)


class CapacityForgetsNormalization(TopKRouter):
    """Renormalises the top-k weights on the dropless path only."""

    def plan_from_logits(self, logits):
        if self.expert_capacity(logits.shape[0]) is None:
            return super().plan_from_logits(logits)
        self.normalize = False
        try:
            return super().plan_from_logits(logits)
        finally:
            self.normalize = True


class LayerZeroesNaN(MoELayer):
    """Replaces NaN/Inf in x by 0 before routing."""

    def forward(self, x, token_ids=None, return_plan=False):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            x = x.nan_to_num(0.0, 0.0, 0.0)
        return super().forward(x, token_ids, return_plan)


def layer(dispatcher=None, router_cls=TopKRouter, layer_cls=MoELayer, **router_kwargs):
    def build():
        router = router_cls(D_MODEL, NUM_EXPERTS, k=2, normalize=True, generator=gate(), **router_kwargs)
        built = layer_cls(router, ExpertBank(NUM_EXPERTS, D_MODEL, D_HIDDEN, "swiglu", generator=gate(1)))
        if dispatcher is not None:
            built.dispatcher = dispatcher
        return built

    return build


BROKEN_LAYERS = {
    "squared_weights": Broken(layer(squared_weights), "check_moe_layer_matches_reference"),
    "random_last_bit": Broken(layer(random_last_bit), "check_moe_layer_deterministic"),
    "capacity_forgets_normalization": Broken(
        layer(router_cls=CapacityForgetsNormalization, capacity_factor=1.0),
        "check_moe_layer_dropless_matches_ample_capacity"),
    "zeroes_nan": Broken(layer(layer_cls=LayerZeroesNaN), "check_moe_layer_rejects_bad_input"),
    "max_expert_first": Broken(layer(max_expert_first), "check_moe_layer_empty_batch"),
}
