"""DSMs whose active units a fixed hash of the input chooses: a uniform random hash, or an LSH.

``HashRoutedDSM`` is DSM(d, s, E s): E blocks ("experts") of s frozen random ReLU units (block e holds units
e s .. (e + 1) s - 1, drawn like ``TopKDSM``'s), and a top-1 router that sends each input to one block, whose
s units are the active ones; the readout over all E s units is trained. Two routers (docs/THEORY.md §A:
"hash layers the same with a fixed hash as router"):

- ``random_hash_dsm``: ``HashRouter(key="input")``, a universal hash of x's bits mod E. Every distinct input
  lands on a uniformly random block, independent of where it lies (near-identical inputs on unrelated blocks).
- ``lsh_routed_dsm``: ``LSHRouter`` with one SimHash table of log2(E) sign bits: a block is a region of input
  space (a cone of the E sign patterns), so nearby inputs share their active units.

The block of x is the router's one expert (``routed.top1_routing``, the expert a top-1 MoE layer with this
router would pick). Every input routed to block e has features only in block e, so the readout's least-squares
problem splits into E independent ones (the Gram matrix is block diagonal): ``select_routed_ridge`` solves it
block by block, exactly ``select_ridge`` on the (n, E s) masked features, at 1/E^2 of the Gram matrix's cost.
FLOPs per input: (d + 1) s, the DSM convention (routing not counted); ``routing_flops_per_input`` gives the
router's own: d log2(E) projection multiply-adds for the LSH, 0 floating-point ones for the random hash (its
2 d integer multiply-adds mod 2^31 - 1 aside).

``RandomBucketHash`` is the same random hash as a table of bucket constants (``LSHModel.from_hashes``): a
locality-free partition to set beside an LSH.
"""

from __future__ import annotations

import torch

from ..routing.hash_router import HashRouter
from ..routing.lsh import LSHRouter
from ..validation import (check_finite_image, check_int_in_range, check_positive_float, check_samples,
                          check_seed, check_tokens)
from .masked import DSM, RIDGE_GRID, random_relu_layer
from .readout import ridge_readout, select_ridge
from .routed import top1_routing


def _router_seed(seed: int) -> int:
    """The router's seed, drawn from the model's: a distinct stream from the units' (seed itself)."""
    gen = torch.Generator().manual_seed(check_seed(seed))
    return int(torch.randint(0, 2**62, (1,), generator=gen, dtype=torch.int64))


class HashRoutedDSM(DSM):
    """DSM(d, s, E s) with a fixed top-1 router choosing the active block (see the module docstring).

    d: input dimension; active_units: s, the units per block; router: a ``HashRouter(key="input")`` or an
    ``LSHRouter`` with one table, of E = num_experts blocks; seed: draws the E s units.
    """

    def __init__(self, d: int, active_units: int, router, seed: int = 0, ridge: float = 1e-6):
        if not isinstance(router, (HashRouter, LSHRouter)):
            raise TypeError(f"router must be a HashRouter or an LSHRouter, got {type(router).__name__}")
        if isinstance(router, LSHRouter) and router.d_model != d:
            raise ValueError(f"the LSHRouter hashes d_model={router.d_model} inputs, the DSM's are d={d}")
        route = top1_routing(router)  # ValueError for several tables or a hash of token ids
        check_int_in_range(active_units, "active_units", 1)
        weight, bias = random_relu_layer(d, router.num_experts * active_units, seed)
        super().__init__(weight, bias, active_units, "relu", ridge=ridge)
        self.router, self.num_blocks, self.seed, self._route = router, router.num_experts, seed, route

    def block(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n,) int64 in [0, E): the block each input activates (its hash, in x's
        dtype: the random hash reads x's bits)."""
        check_tokens(x, self.d)
        return self._route(x)[0]

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n, t) bool: the s units of x's block."""
        unit_block = torch.arange(self.total_units) // self.active_units  # (t,)
        return unit_block.unsqueeze(0) == self.block(x).unsqueeze(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n, t) relu(W x + b) on x's block, zero elsewhere, in x's dtype (at least
        float32). Only the active block's pre-activations are computed: 1/E of the dense product."""
        block = self.block(x)
        dtype = torch.promote_types(x.dtype, torch.float32)
        out = torch.zeros(x.shape[0], self.total_units, dtype=dtype)
        for e in range(self.num_blocks):
            rows = torch.nonzero(block == e).squeeze(1)
            units = slice(e * self.active_units, (e + 1) * self.active_units)
            pre = x[rows].to(dtype) @ self.weight[units].to(dtype).T + self.bias[units].to(dtype)  # (n_e, s)
            check_finite_image(pre, x, "x", "its pre-activations W x + b")
            out[rows, units] = pre.clamp_min(0)
        return out

    def fit_validated(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                      ridges: tuple[float, ...] = RIDGE_GRID) -> HashRoutedDSM:
        """Choose ``ridge`` from ``ridges`` by error on (x_val, y_val), then fit on (x, y), block by block
        (``select_routed_ridge``). Returns self."""
        check_samples(x, y, self.d)
        check_samples(x_val, y_val, self.d, "x_val", "y_val")
        self.ridge, self.readout, self.validation_errors = select_routed_ridge(
            self.features(x), self.block(x), y, self.features(x_val), self.block(x_val), y_val,
            self.active_units, ridges)
        return self

    def routing_flops_per_input(self) -> int:
        """Floating-point multiply-adds of the router: d * bits projections (LSH), 0 (random hash)."""
        return self.d * self.router.num_hashes if isinstance(self.router, LSHRouter) else 0


class RandomBucketHash:
    """A table for ``LSHModel.from_hashes`` whose bucket of x is the expert that
    ``HashRouter(num_buckets, key="input", seed=seed)`` routes x to: every distinct input lands in a uniformly
    random bucket, wherever it lies. x is read in float64, so its value, not its dtype, picks the bucket."""

    def __init__(self, num_buckets: int, seed: int = 0):
        self.num_buckets = check_int_in_range(num_buckets, "num_buckets", 1)
        self.router = HashRouter(num_buckets, key="input", seed=seed)

    def bucket(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n,) int64 bucket ids in [0, num_buckets)."""
        plan = self.router(x.to(torch.float64))
        return torch.empty(x.shape[0], dtype=torch.int64).index_copy_(0, plan.token_index, plan.expert_index)


def random_hash_dsm(d: int, total_units: int, active_units: int, seed: int = 0) -> HashRoutedDSM:
    """DSM(d, s, t) whose active block of s units a uniform random hash of x picks (t / s blocks)."""
    blocks = _blocks(total_units, active_units)
    return HashRoutedDSM(d, active_units, HashRouter(blocks, key="input", seed=_router_seed(seed)), seed)


def lsh_routed_dsm(d: int, total_units: int, active_units: int, seed: int = 0) -> HashRoutedDSM:
    """DSM(d, s, t) whose active block of s units a SimHash of log2(t / s) bits picks (t / s a power of 2, so
    every sign pattern is its own block)."""
    blocks = _blocks(total_units, active_units)
    if blocks & (blocks - 1):
        raise ValueError(f"total_units / active_units must be a power of two for a SimHash router, "
                         f"got {blocks}")
    router = LSHRouter(d, blocks, family="simhash", seed=_router_seed(seed))  # log2(E) bits, E >= 2
    return HashRoutedDSM(d, active_units, router, seed)


def _blocks(total_units: int, active_units: int) -> int:
    check_int_in_range(total_units, "total_units", 1)
    check_int_in_range(active_units, "active_units", 1, total_units)
    if total_units % active_units:
        raise ValueError(f"total_units ({total_units}) must be a multiple of active_units ({active_units})")
    return total_units // active_units


def select_routed_ridge(features: torch.Tensor, block: torch.Tensor, targets: torch.Tensor,
                        val_features: torch.Tensor, val_block: torch.Tensor, val_targets: torch.Tensor,
                        active_units: int, ridges: tuple[float, ...] = RIDGE_GRID
                        ) -> tuple[float, torch.Tensor, list[float]]:
    """``select_ridge`` over the masked features of a block-routed DSM, block by block.

    features: (n, E s) masked features (zero outside each row's block); block: (n,) int64 in [0, E), each
    row's block; targets: (n,) float; val_*: the same for the validation set; active_units: s. The objective
    (1/n) ||F a - y||^2 + ridge ||a||^2 splits over blocks into (1/n_e) ||F_e a_e - y_e||^2 + (n / n_e) ridge
    ||a_e||^2 on each block's rows and units; a block without training rows keeps a zero readout. The ridge
    kept is the one of least validation MSE over all validation rows (ties to the larger ridge).
    Returns (ridge, (E s,) float64 readout, validation MSE per ridge).
    """
    if not ridges:
        raise ValueError("ridges must name at least one value")
    for r in ridges:
        check_positive_float(r, "ridges")
    check_int_in_range(active_units, "active_units", 1)
    sets = (("features", features, "block", block, "targets", targets),
            ("val_features", val_features, "val_block", val_block, "val_targets", val_targets))
    for f_name, f, b_name, b, y_name, y in sets:
        if not isinstance(f, torch.Tensor) or f.dim() != 2 or f.shape[1] % active_units or not f.shape[0]:
            raise ValueError(f"{f_name} must be a (n, E * {active_units}) tensor with n >= 1, got "
                             f"{getattr(f, 'shape', type(f).__name__)}")
        if not isinstance(b, torch.Tensor) or b.dtype != torch.int64 or b.shape != (f.shape[0],):
            raise ValueError(f"{b_name} must be a ({f.shape[0]},) int64 tensor of blocks")
        if not isinstance(y, torch.Tensor) or y.shape != (f.shape[0],) or not y.is_floating_point():
            raise ValueError(f"{y_name} must be a floating ({f.shape[0]},) tensor")
    if features.shape[1] != val_features.shape[1]:
        raise ValueError(f"val_features must have {features.shape[1]} columns like features")
    blocks = features.shape[1] // active_units
    for name, b in (("block", block), ("val_block", val_block)):
        if bool((b < 0).any()) or bool((b >= blocks).any()):
            raise ValueError(f"{name} must lie in [0, {blocks})")
    n, m = features.shape[0], val_features.shape[0]
    rows = [torch.nonzero(block == e).squeeze(1) for e in range(blocks)]
    val_rows = [torch.nonzero(val_block == e).squeeze(1) for e in range(blocks)]
    units = [slice(e * active_units, (e + 1) * active_units) for e in range(blocks)]
    squared = [0.0] * len(ridges)  # validation squared error per ridge, summed over blocks
    for e in range(blocks):
        if not val_rows[e].numel():
            continue
        yv = val_targets[val_rows[e]].to(torch.float64)
        if not rows[e].numel():  # no training row: the block's readout stays zero
            squared = [s + float((yv**2).sum()) for s in squared]
            continue
        scale = n / rows[e].numel()
        errors = select_ridge(features[rows[e]][:, units[e]], targets[rows[e]],
                              val_features[val_rows[e]][:, units[e]], yv, tuple(r * scale for r in ridges))[2]
        squared = [s + err * val_rows[e].numel() for s, err in zip(squared, errors)]
    errors = [s / m for s in squared]
    best = min(range(len(ridges)), key=lambda i: (errors[i], -ridges[i]))
    readout = torch.zeros(features.shape[1], dtype=torch.float64)
    for e in range(blocks):
        if rows[e].numel():
            readout[units[e]] = ridge_readout(features[rows[e]][:, units[e]], targets[rows[e]],
                                              ridges[best] * n / rows[e].numel())
    return float(ridges[best]), readout, errors


__all__ = ["HashRoutedDSM", "RandomBucketHash", "lsh_routed_dsm", "random_hash_dsm", "select_routed_ridge"]
