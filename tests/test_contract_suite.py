"""The contract suite (sparse_bench.testing) on every shipped router and MoE layer, and on broken ones: each
broken object is caught by the clause written for it, and where the defect allows, by that clause alone."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
from broken_routers import BROKEN_LAYERS, BROKEN_ROUTERS

from sparse_bench import ExpertBank, MoELayer
from sparse_bench.routing import ExpertChoiceRouter, HashRouter, LSHRouter, SinkhornRouter, TopKRouter
from sparse_bench.testing import (
    MOE_LAYER_CLAUSES,
    ROUTER_CLAUSES,
    capabilities_of,
    check_moe_layer,
    check_router,
    moe_layer_clauses,
    parametrize_with_checks,
    router_clauses,
)

D_MODEL, D_HIDDEN, NUM_EXPERTS = 16, 24, 5  # small: the T = 1000 reference runs token by token in float64
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


def gate(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bank(activation: str, bias: bool = False, num_experts: int = NUM_EXPERTS) -> ExpertBank:
    return ExpertBank(num_experts, D_MODEL, D_HIDDEN, activation, bias=bias, generator=gate(1))


ROUTERS = [
    TopKRouter(D_MODEL, NUM_EXPERTS, k=1, generator=gate()),  # Switch
    TopKRouter(D_MODEL, NUM_EXPERTS, k=2, normalize=True, generator=gate()),  # Mixtral
    TopKRouter(D_MODEL, NUM_EXPERTS, k=2, capacity_factor=0.5, generator=gate()),
    TopKRouter(D_MODEL, NUM_EXPERTS, k=2, capacity_factor=0.75, drop_policy="probability", generator=gate()),
    TopKRouter(D_MODEL, NUM_EXPERTS, k=1, capacity=4, generator=gate()),
    ExpertChoiceRouter(D_MODEL, NUM_EXPERTS, capacity_factor=1.5, generator=gate()),
    HashRouter(NUM_EXPERTS, key="token_id", seed=1),
    HashRouter(NUM_EXPERTS, key="token_id", balanced=True, token_frequencies=torch.arange(30.0), seed=1),
    HashRouter(NUM_EXPERTS, key="input", seed=1),
    LSHRouter(D_MODEL, NUM_EXPERTS, family="simhash", num_tables=2, seed=1),
    LSHRouter(D_MODEL, NUM_EXPERTS, family="pstable", num_tables=2, seed=1),
    SinkhornRouter(D_MODEL, NUM_EXPERTS, k=2, generator=gate()),
]

LAYERS = [  # every dispatch strategy, each with another router and activation
    MoELayer(TopKRouter(D_MODEL, NUM_EXPERTS, k=1, generator=gate()), bank("relu", bias=True), "loop"),
    MoELayer(TopKRouter(D_MODEL, NUM_EXPERTS, k=2, normalize=True, generator=gate()), bank("gelu", bias=True),
             "einsum"),
    MoELayer(TopKRouter(D_MODEL, NUM_EXPERTS, k=2, capacity_factor=0.75, generator=gate()), bank("swiglu"),
             "sorted"),
    MoELayer(ExpertChoiceRouter(D_MODEL, NUM_EXPERTS, capacity_factor=1.5, generator=gate()), bank("swiglu"),
             "padded"),
    MoELayer(SinkhornRouter(D_MODEL, NUM_EXPERTS, k=2, generator=gate()), bank("relu", bias=True), "grouped"),
    MoELayer(HashRouter(NUM_EXPERTS, key="token_id", seed=1), bank("swiglu"), "auto"),
    # bfloat16 experts behind a float32 router: no float64 comparison (no gamma_n bound there); the rest holds
    MoELayer(TopKRouter(D_MODEL, NUM_EXPERTS, k=2, capacity_factor=1.0, generator=gate()),
             bank("swiglu").to(torch.bfloat16), "sorted"),
]


def hf_layers() -> list:
    """from_hf layers of small randomly initialised HF blocks: Mixtral, Qwen2-MoE (shared expert), Switch."""
    if not HAS_TRANSFORMERS:
        return []
    from transformers import MixtralConfig, Qwen2MoeConfig, SwitchTransformersConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock
    from transformers.models.switch_transformers import modeling_switch_transformers as switch

    from sparse_bench.interop import from_hf

    blocks = [
        MixtralSparseMoeBlock(MixtralConfig(hidden_size=D_MODEL, intermediate_size=D_HIDDEN,
                                            num_local_experts=4, num_experts_per_tok=2)),
        Qwen2MoeSparseMoeBlock(Qwen2MoeConfig(hidden_size=D_MODEL, moe_intermediate_size=12,
                                              shared_expert_intermediate_size=20, num_experts=4,
                                              num_experts_per_tok=2, norm_topk_prob=False)),
        switch.SwitchTransformersSparseMLP(SwitchTransformersConfig(d_model=D_MODEL, d_ff=D_HIDDEN,
                                                                    num_experts=4, expert_capacity=64)),
    ]
    generator = gate(7)
    with torch.no_grad():
        for block in blocks:
            for parameter in block.parameters():
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return [from_hf(block.eval()) for block in blocks]


HF_LAYERS = hf_layers()
CUDA_OBJECTS = [obj.to("cuda") for obj in (LAYERS[2], LAYERS[3])] if torch.cuda.is_available() else []


@parametrize_with_checks(ROUTERS + LAYERS + HF_LAYERS)
def test_contract(obj, check):
    check(obj)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@parametrize_with_checks(CUDA_OBJECTS, device="cuda")
def test_contract_on_cuda(obj, check):
    check(obj)


def failing_clauses(obj, clauses) -> dict[str, str]:
    failures = {}
    for check in clauses:
        try:
            check(obj)
        except AssertionError as error:
            failures[check.__name__] = str(error)
    return failures


@pytest.mark.parametrize("name", sorted(BROKEN_ROUTERS))
def test_broken_router_is_caught_by_its_clause(name):
    broken = BROKEN_ROUTERS[name]
    router = broken.build()
    failures = failing_clauses(router, router_clauses(router))
    assert set(failures) == {broken.clause} | broken.also, failures
    assert failures[broken.clause].startswith(broken.clause + ": ")


@pytest.mark.parametrize("name", sorted(BROKEN_LAYERS))
def test_broken_layer_is_caught_by_its_clause(name):
    broken = BROKEN_LAYERS[name]
    layer = broken.build()
    failures = failing_clauses(layer, moe_layer_clauses(layer))
    assert set(failures) == {broken.clause} | broken.also, failures
    assert failures[broken.clause].startswith(broken.clause + ": ")


def test_every_clause_has_a_broken_object_and_a_shipped_one_it_runs_on():
    for clauses, broken, shipped, select in (
        (ROUTER_CLAUSES, BROKEN_ROUTERS, ROUTERS, router_clauses),
        (MOE_LAYER_CLAUSES, BROKEN_LAYERS, LAYERS, moe_layer_clauses),
    ):
        names = {check.__name__ for check in clauses}
        assert {b.clause for b in broken.values()} == names
        assert {check.__name__ for obj in shipped for check in select(obj)} == names


def names(clauses) -> set[str]:
    return {check.__name__ for check in clauses}


def test_clauses_are_selected_by_capabilities():
    capped = names(router_clauses(TopKRouter(D_MODEL, NUM_EXPERTS, k=2, capacity_factor=1.0)))
    assert "check_router_capacity_respected" in capped
    assert not {"check_router_permutation_equivariant", "check_router_batch_independent"} & capped
    by_id = names(router_clauses(HashRouter(NUM_EXPERTS)))
    assert "check_router_batch_independent" in by_id
    assert not {"check_router_rejects_non_finite", "check_router_gradient_reaches_parameters"} & by_id
    expert_choice = names(router_clauses(ExpertChoiceRouter(D_MODEL, NUM_EXPERTS)))
    assert not {"check_router_assignments_per_token", "check_router_permutation_equivariant"} & expert_choice
    dropless = names(moe_layer_clauses(LAYERS[3]))  # expert choice has no capacity knobs to turn
    assert "check_moe_layer_dropless_matches_ample_capacity" not in dropless
    assert "check_moe_layer_matches_reference" not in names(moe_layer_clauses(LAYERS[-1]))  # bfloat16


def test_undeclared_capabilities_get_the_most_demanding_reading():
    class Bare(torch.nn.Module):
        num_experts = 4

        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 4)

    caps = capabilities_of(Bare())
    assert (caps.learned, caps.drops_tokens, caps.assignments_per_token, caps.needs_token_ids,
            caps.batch_independent) == (True, False, 1, False, True)
    assert len(router_clauses(Bare())) == len(ROUTER_CLAUSES) - 1  # all but capacity (it drops nothing)


def test_check_router_and_check_moe_layer_name_each_failing_clause():
    check_router(ROUTERS[1])  # passes silently
    with pytest.raises(AssertionError, match=r"fails 1 of 13 clauses:\n  - check_router_dtypes: "):
        check_router(BROKEN_ROUTERS["gate_in_input_dtype"].build())
    forgiving = BROKEN_LAYERS["zeroes_nan"].build().to(torch.bfloat16)  # bfloat16: no float64 comparison
    with pytest.raises(AssertionError, match=r"fails 1 of 4 clauses:\n  - check_moe_layer_rejects_bad_input: "
                                             r"x holding nan is accepted"):
        check_moe_layer(forgiving)
    with pytest.raises(ValueError, match="d_model=8 but the router's d_model is 16"):
        check_router(ROUTERS[0], 8)


def test_ids_name_the_object_and_the_clause():
    mark = parametrize_with_checks([ROUTERS[1], LAYERS[2]]).mark
    ids = mark.kwargs["ids"]
    assert "TopKRouter(d_model=16,num_experts=5,k=2,normalize=True)-check_router_dtypes" in ids
    assert "MoELayer[sorted](TopKRouter(d_model=16,num_experts=5,k=2,capacity_factor=0.75))-" \
           "check_moe_layer_dropless_matches_ample_capacity" in ids
    assert len(ids) == len(router_clauses(ROUTERS[1])) + len(moe_layer_clauses(LAYERS[2]))
    assert [check for _, check in mark.args[1]][0] is router_clauses(ROUTERS[1])[0]


def test_hf_layers_are_checked():
    pytest.importorskip("transformers")
    assert len(HF_LAYERS) == 3 and HF_LAYERS[1].shared_expert is not None


def test_library_imports_without_pytest():
    code = ("import sys; sys.modules['pytest'] = None; import sparse_bench.testing as t\n"
            "try:\n    t.parametrize_with_checks([])\nexcept ImportError:\n    print('needs pytest')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "needs pytest"
