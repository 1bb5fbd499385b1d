"""Routed DSMs (sparse_bench.dsm.routed, switch, lsh_readout): float64 references, shapes and bad input."""

import pytest
import torch

from sparse_bench.dsm import LSHModel, select_ridge
from sparse_bench.dsm.lsh_readout import LSHReadout
from sparse_bench.dsm.routed import RoutedDSM, lsh_as_dsm, lsh_units, moe_as_dsm
from sparse_bench.dsm.switch import SwitchRegressor, train_switch
from sparse_bench.dsm.training import ReadoutTraining, train_readout
from sparse_bench.experts import ExpertBank
from sparse_bench.moe import MoELayer
from sparse_bench.routing.expert_choice import ExpertChoiceRouter
from sparse_bench.routing.hash_router import HashRouter
from sparse_bench.routing.lsh import LSHRouter
from sparse_bench.routing.topk import TopKRouter
from sparse_bench.threads import pinned_threads

D, E, H = 6, 4, 5


def _layer(router, bias=False, activation="relu"):
    gen = torch.Generator().manual_seed(1)
    bank = ExpertBank(E, D, H, activation, bias=bias, generator=gen).double()
    return MoELayer(router.double(), bank)


def _x(n=64, seed=0, d=D):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


ROUTERS = {
    "switch": lambda: TopKRouter(D, E, k=1, generator=torch.Generator().manual_seed(2)),
    "switch_normalized": lambda: TopKRouter(D, E, k=1, normalize=True,
                                            generator=torch.Generator().manual_seed(2)),
    "hash": lambda: HashRouter(E, key="input", seed=3),
    "lsh": lambda: LSHRouter(D, E, seed=4),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "swiglu"])
@pytest.mark.parametrize("router", sorted(ROUTERS))
def test_moe_as_dsm_matches_layer(router, activation, bias):
    layer = _layer(ROUTERS[router](), bias, activation)
    x = _x()
    dsm = moe_as_dsm(layer)
    block = H + bias
    assert (dsm.total_units, dsm.active_units) == (E * block, block)
    keep = dsm.mask(x)  # one whole block per row
    assert keep.reshape(-1, E, block).all(dim=2).sum(dim=1).eq(1).all()
    torch.testing.assert_close(dsm.predict(x), layer(x), rtol=0, atol=1e-12)


def test_moe_as_dsm_refuses_other_layers():
    with pytest.raises(TypeError, match="MoELayer"):
        moe_as_dsm(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="top-1"):
        moe_as_dsm(_layer(TopKRouter(D, E, k=2)))
    with pytest.raises(ValueError, match="top-1"):
        moe_as_dsm(_layer(TopKRouter(D, E, k=1, capacity_factor=1.0)))
    with pytest.raises(ValueError, match="top-1"):
        moe_as_dsm(_layer(ExpertChoiceRouter(D, E)))
    with pytest.raises(ValueError, match="reads x"):
        moe_as_dsm(_layer(HashRouter(E, key="token_id")))
    with pytest.raises(ValueError, match="jitter"):
        moe_as_dsm(_layer(TopKRouter(D, E, k=1, jitter=0.1)))


def _lsh(tables=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(200, 3, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.randn(200, generator=gen, dtype=torch.float64)
    return LSHModel(3, "pstable", num_tables=tables, num_hashes=2, width=0.7, seed=seed).fit(x, y), x, y


def test_lsh_as_dsm_matches_model():
    model, _, _ = _lsh()
    q = torch.rand(300, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * 4 - 2
    dsm = lsh_as_dsm(model)
    units, total = lsh_units(model, q)
    assert dsm.active_units == 3 and dsm.total_units == total == sum(i.numel() + 1 for i in model.table_ids)
    sizes = torch.tensor([ids.numel() + 1 for ids in model.table_ids])
    unseen = sizes.cumsum(0) - 1  # each table's last unit
    assert units.shape == (300, 3) and bool((units == unseen).any()), "some query must meet an unseen bucket"
    torch.testing.assert_close(dsm.predict(q), model.predict(q), rtol=0, atol=1e-14)


def test_lsh_as_dsm_refuses_unfitted():
    with pytest.raises(ValueError, match="fit"):
        lsh_as_dsm(LSHModel(3, "pstable", width=1.0))
    with pytest.raises(TypeError, match="LSHModel"):
        lsh_units(object(), _x())


def test_routed_dsm_checks_its_mask_and_readout():
    with pytest.raises(ValueError, match="readout"):
        RoutedDSM(2, lambda x: x, lambda x: x > 0, torch.zeros(3, 2, 2), 1)
    bad = RoutedDSM(2, lambda x: torch.ones(x.shape[0], 3),
                    lambda x: torch.ones(x.shape[0], 3, dtype=torch.bool), torch.zeros(3), 1)
    with pytest.raises(ValueError, match="exactly 1 of 3"):
        bad.predict(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="d_model"):
        bad.predict(torch.zeros(4, 5))


# SwitchRegressor -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("router", ["learned", "hash", "lsh"])
def test_switch_regressor_is_its_dsm(router):
    model = SwitchRegressor(D, E, H, outputs=2, router=router, seed=5, dtype=torch.float64)
    with torch.no_grad():
        model.w_out.normal_(generator=torch.Generator().manual_seed(6))
    x = _x()
    pred = model.predict(x)
    assert pred.shape == (64, 2) and model.flops_per_input() == (D + 2) * H
    torch.testing.assert_close(model.as_dsm().predict(x), pred, rtol=0, atol=1e-12)


def test_switch_regressor_starts_from_the_dsm_units():
    """Expert e holds units e h .. (e + 1) h - 1 of TopKDSM(d, E h, h, seed)'s frozen layer."""
    from sparse_bench.dsm import TopKDSM

    model, dsm = SwitchRegressor(D, E, H, seed=7, dtype=torch.float64), TopKDSM(D, E * H, H, seed=7)
    torch.testing.assert_close(model.w_in.detach().transpose(1, 2).reshape(E * H, D), dsm.weight)
    torch.testing.assert_close(model.b_in.detach().reshape(-1), dsm.bias)


def test_train_switch_learns_and_refit_is_ridge():
    gen = torch.Generator().manual_seed(8)
    x, xv = torch.rand(256, D, generator=gen) * 2 - 1, torch.rand(64, D, generator=gen) * 2 - 1
    f = lambda z: torch.sin(3 * z[:, 0]) + z[:, 1] ** 2  # noqa: E731
    model = SwitchRegressor(D, E, 32, seed=1)
    with pinned_threads(1):  # 240 small steps: on a busy 2-core machine two threads ran 25x slower than one
        run = train_switch(model, x, f(x), ReadoutTraining("adam", lrs=(1e-2,), epochs=30, batch_size=32),
                           torch.Generator().manual_seed(0), xv, f(xv))
    assert run.val_mse[0][run.epoch - 1] < 0.3 * float(f(xv).pow(2).mean())  # far below the zero model's
    assert len(run.expert_share) == E and abs(sum(run.expert_share) - 1) < 1e-9
    ridges = model.refit_readout(x, f(x), xv, f(xv))
    masked = model.as_dsm().masked_features(x)
    expected = select_ridge(masked, f(x), model.as_dsm().masked_features(xv), f(xv), (ridges[0],))[1]
    torch.testing.assert_close(model.w_out.detach().reshape(-1).double(), expected, rtol=1e-5, atol=1e-6)


def test_switch_bad_input():
    with pytest.raises(ValueError, match="router"):
        SwitchRegressor(D, E, H, router="topk")
    model = SwitchRegressor(D, E, H)
    with pytest.raises(ValueError, match="d_model"):
        model.predict(torch.zeros(3, D + 1))
    with pytest.raises(ValueError, match="y must be"):
        train_switch(model, torch.zeros(4, D), torch.zeros(5), ReadoutTraining(), torch.Generator(),
                     torch.zeros(2, D), torch.zeros(2))
    with pytest.raises(ValueError, match="balance"):
        train_switch(model, torch.zeros(4, D), torch.zeros(4), ReadoutTraining(), torch.Generator(),
                     torch.zeros(2, D), torch.zeros(2), balance=-1.0)


# LSHReadout ----------------------------------------------------------------------------------------------
def _one_hot(readout, units):
    return torch.zeros(units.shape[0], readout.total_units, dtype=torch.float64).scatter_(1, units, 1.0)


def test_lsh_ridge_is_the_dense_dual_solution():
    model, x, y = _lsh(tables=4)
    xv = torch.rand(50, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
    yv = torch.randn(50, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    readout = LSHReadout(model)
    units, val_units = readout.units(x), readout.units(xv)
    ridge = readout.fit_ridge(units, y, val_units, yv, (1e-3,))[0]
    f = _one_hot(readout, units)
    mean = y.mean()
    weights = f.T @ torch.linalg.solve(f @ f.T + 200 * ridge * torch.eye(200, dtype=torch.float64), y - mean)
    expected = _one_hot(readout, val_units) @ weights + mean
    torch.testing.assert_close(readout.predict_units(val_units), expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(readout.as_dsm().predict(xv), readout.predict(xv), rtol=0, atol=1e-12)
    assert readout.flops_per_input() == 4 * (3 * 2 + 1)


def test_lsh_train_is_train_readout_on_one_hot_features():
    model, x, y = _lsh(tables=3)
    y2 = torch.stack([y, -2 * y + 1], dim=1)
    readout = LSHReadout(model)
    units = readout.units(x)
    training = ReadoutTraining("adam", lrs=(1e-2, 1e-1), epochs=5, batch_size=16)
    run = readout.train(units, y2, training, torch.Generator().manual_seed(1), units[:40], y2[:40],
                        dtype=torch.float64)
    f = _one_hot(readout, units)
    mean = y2.mean(dim=0)
    ref = train_readout(f, y2 - mean, training, torch.Generator().manual_seed(1), f[:40], y2[:40] - mean)
    assert run.lr == ref.lr and run.epoch == ref.epoch
    torch.testing.assert_close(readout.readout, ref.weights + mean / 3, rtol=0, atol=1e-10)


def test_lsh_readout_bad_input():
    model, x, y = _lsh()
    readout = LSHReadout(model)
    with pytest.raises(RuntimeError, match="before"):
        readout.predict(x)
    units = readout.units(x)
    with pytest.raises(ValueError, match="units must be"):
        readout.fit_ridge(units[:, :2], y, units, y)
    with pytest.raises(ValueError, match="lie in"):
        readout.fit_ridge(units + 10**6, y, units, y)
    with pytest.raises(ValueError, match="y must be"):
        readout.fit_ridge(units, y[:-1], units, y)
    with pytest.raises(ValueError, match="columns"):
        readout.fit_ridge(units, y, units, torch.stack([y, y], 1))
