"""Lipschitz target families and input distributions for the formal model's experiments (docs/THEORY.md §A).

Targets are small ``nn.Module``s mapping ``x: (n, d) float`` to ``(n,)`` values of the same dtype; their
random parameters are drawn once on the CPU from ``torch.Generator().manual_seed(seed)`` and stored as
buffers, so the same seed gives the same function on every device. Samplers take an explicit
``torch.Generator`` (CPU) and a ``device``, draw on the CPU and move the result, so the same generator state
gives the same points everywhere.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from .validation import (
    check_device,
    check_float_dtype,
    check_finite_image,
    check_float_tensor,
    check_generator,
    check_int_in_range,
    check_positive_float,
    check_seed,
    check_tokens,
)

MAX_TERMS = 2**20  # monomials of a polynomial, bumps of a family: beyond this, building one takes minutes


def _finite_values(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """values = f(x), returned when finite; a finite x far outside [-1, 1]^d may overflow: ValueError."""
    check_finite_image(values, x, "x", "f(x)")
    return values


def _monomial_count(d: int, degree: int) -> int:
    """C(d + degree, degree), the number of monomials of degree <= degree in d variables, or the first
    partial product above MAX_TERMS (C(n, i) grows with i up to min(d, degree) <= n / 2: the rest only
    exceeds it more)."""
    count, k = 1, min(d, degree)
    for i in range(1, k + 1):
        count = count * (d + degree - k + i) // i  # C(d + degree - k + i, i), exact
        if count > MAX_TERMS:
            break
    return count


def _monomial_tree(d: int, degree: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All monomials of total degree <= degree in d variables, each built from a parent of one degree less.

    Returns (exponents (M, d), parent (M,), var (M,)) int64, constant monomial first (its parent/var are -1):
    monomial j = monomial parent[j] * x_{var[j]}.
    """
    exps, parents, variables = [[0] * d], [-1], [-1]
    index = {tuple(exps[0]): 0}
    for total in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(d), total):
            row = [0] * d
            for v in combo:
                row[v] += 1
            parent = list(row)
            parent[combo[-1]] -= 1
            index[tuple(row)] = len(exps)
            exps.append(row)
            parents.append(index[tuple(parent)])
            variables.append(combo[-1])
    as_tensor = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    return as_tensor(exps).reshape(len(exps), d), as_tensor(parents), as_tensor(variables)


class RandomPolynomial(nn.Module):
    """f(x) = sum_m c_m prod_i x_i^{e_mi} over all monomials of degree <= ``degree``; sum |c_m| = coef_l1.

    Coefficients are N(0, 1) draws rescaled to the stated l1 norm (< 1), so |f| < 1 on [-1, 1]^d, and the
    gradient obeys ||grad f||_2 <= sum_m |c_m| * deg(m) <= degree * coef_l1 there (``lipschitz_bound``).
    """

    def __init__(self, d: int, degree: int, seed: int = 0, coef_l1: float = 0.99):
        super().__init__()
        check_int_in_range(d, "d", 1)
        check_int_in_range(degree, "degree", 0)
        if _monomial_count(d, degree) > MAX_TERMS:
            raise ValueError(f"d={d}, degree={degree} has more than {MAX_TERMS} monomials "
                             f"(C(d + degree, degree))")
        coef_l1 = check_positive_float(coef_l1, "coef_l1")
        if coef_l1 >= 1:
            raise ValueError(f"coef_l1 must be < 1 (the paper's sum of |coefficients| < 1), got {coef_l1}")
        gen = torch.Generator().manual_seed(check_seed(seed))
        exponents, parent, var = _monomial_tree(d, degree)  # (M, d), (M,), (M,)
        coefs = torch.randn(exponents.shape[0], generator=gen, dtype=torch.float64)
        coefs = coefs * (coef_l1 / coefs.abs().sum())
        self.d, self.degree, self.seed = d, degree, seed
        self.register_buffer("exponents", exponents)
        self.register_buffer("parent", parent)
        self.register_buffer("var", var)
        self.register_buffer("coefs", coefs)
        self.lipschitz_bound = float((coefs.abs() * exponents.sum(dim=1)).sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n,) float."""
        check_tokens(x, self.d)
        monomials = torch.empty(x.shape[0], self.coefs.shape[0], dtype=x.dtype, device=x.device)  # (n, M)
        monomials[:, 0] = 1
        start = 1
        degrees = self.exponents.sum(dim=1)
        for total in range(1, self.degree + 1):  # one vectorised step per degree: parent monomial * variable
            stop = start + int((degrees == total).sum())
            monomials[:, start:stop] = monomials[:, self.parent[start:stop]] * x[:, self.var[start:stop]]
            start = stop
        return _finite_values(monomials @ self.coefs.to(x.dtype), x)  # (n,)


class HypercubeFunction(nn.Module):
    """f(x) = sum_{y in {-1,1}^d} v_y prod_i (1 + y_i x_i) / 2 with v_y uniform in {-1, +1}.

    The multilinear interpolation of random corner signs: f(y) = v_y at every corner, |f| <= 1 on the cube,
    and each partial derivative lies in [-1, 1] there, so ||grad f||_2 <= sqrt(d) (``lipschitz_bound``).
    Corners are indexed with bit i of the corner number set when y_i = +1.
    """

    def __init__(self, d: int, seed: int = 0):
        super().__init__()
        check_int_in_range(d, "d", 1, 20)
        gen = torch.Generator().manual_seed(check_seed(seed))
        signs = torch.randint(0, 2, (1 << d,), generator=gen, dtype=torch.int64) * 2 - 1
        self.d, self.seed = d, seed
        self.register_buffer("corner_values", signs.to(torch.float64))  # (2^d,)
        self.lipschitz_bound = math.sqrt(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, d) float. Returns (n,) float."""
        check_tokens(x, self.d)
        weights = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)  # (n, 1)
        for i in range(self.d):
            factors = torch.stack([(1 - x[:, i]) / 2, (1 + x[:, i]) / 2], dim=1)  # (n, 2): bit i = 0, 1
            weights = (factors.unsqueeze(2) * weights.unsqueeze(1)).reshape(x.shape[0], 2 << i)  # 2^(i+1)
        return _finite_values(weights @ self.corner_values.to(x.dtype), x)  # (n,)


class BumpFamily(nn.Module):
    """Random-sign cones on a grid in [-1, 1]^k: f(x) = sum_c s_c * max(0, r - ||x - c||_2), r = spacing / 2.

    Centres c are the grid points -1 + spacing/2 + j*spacing inside [-1, 1] on each axis; signs s_c uniform in
    {-1, +1}. Cones of radius r around grid points spaced 2r apart never overlap, so the Lipschitz constant is
    exactly 1 and each bump has height r.
    """

    def __init__(self, k: int, spacing: float, seed: int = 0):
        super().__init__()
        check_int_in_range(k, "k", 1)
        spacing = check_positive_float(spacing, "spacing")
        per_axis = int(math.floor(2.0 / spacing + 1e-9))
        if per_axis < 1:
            raise ValueError(f"spacing must be <= 2 so that one bump fits in [-1, 1], got {spacing}")
        if k * math.log(per_axis) > math.log(MAX_TERMS):
            raise ValueError(f"k={k}, spacing={spacing} gives {per_axis}^{k} bumps, more than {MAX_TERMS}")
        axis = -1 + spacing / 2 + spacing * torch.arange(per_axis, dtype=torch.float64)  # (per_axis,)
        centres = torch.cartesian_prod(*([axis] * k)).reshape(-1, k)  # (B, k)
        gen = torch.Generator().manual_seed(check_seed(seed))
        signs = torch.randint(0, 2, (centres.shape[0],), generator=gen, dtype=torch.int64) * 2 - 1
        self.k, self.spacing, self.seed, self.radius = k, spacing, seed, spacing / 2
        self.register_buffer("centres", centres)
        self.register_buffer("signs", signs.to(torch.float64))
        self.lipschitz_bound = 1.0

    @property
    def num_bumps(self) -> int:
        return int(self.centres.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, k) float. Returns (n,) float. Cost O(n * num_bumps * k)."""
        check_tokens(x, self.k)
        dtype = torch.promote_types(x.dtype, torch.float32)  # cdist has no float16 kernel on CPU
        dist = torch.cdist(x.to(dtype), self.centres.to(dtype), compute_mode="donot_use_mm_for_euclid_dist")
        # relu, not clamp_min: on a cone's rim its derivative is 0, as max(0, .) has on its flat side;
        # clamp_min passes the slope there, and two touching cones summed a gradient of norm 2 (Lipschitz 1)
        values = ((self.radius - dist).relu() @ self.signs.to(dtype)).to(x.dtype)  # (n,); dist: (n, B)
        return _finite_values(values, x)


def random_polynomial(d: int, degree: int, seed: int = 0, coef_l1: float = 0.99) -> RandomPolynomial:
    """A random polynomial of the given degree in d variables with sum |coefficients| = coef_l1 < 1."""
    return RandomPolynomial(d, degree, seed, coef_l1)


def hypercube_function(d: int, seed: int = 0) -> HypercubeFunction:
    """The paper's random "hypercube" function in d variables (multilinear interpolation of ±1 corners)."""
    return HypercubeFunction(d, seed)


def paper_targets(d: int, seed: int = 0) -> dict[str, nn.Module]:
    """The two targets of the paper's experiments (docs/THEORY.md §A) in d variables, by name: "polynomial", a
    random degree-4 polynomial (sum |coefficients| < 1), and "hypercube", the random hypercube function."""
    return {"polynomial": random_polynomial(d, 4, seed=seed), "hypercube": hypercube_function(d, seed=seed)}


def bump_family(k: int, spacing: float, seed: int = 0) -> BumpFamily:
    """Random ±cones of radius spacing/2 on a grid in [-1, 1]^k; Lipschitz constant exactly 1."""
    return BumpFamily(k, spacing, seed)


def lipschitz_constant(f: nn.Module, x: torch.Tensor) -> float:
    """Largest gradient norm of f over the rows of x: (n, d) float; a lower bound on the Lipschitz const."""
    check_tokens(x, name="x")
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one point")
    with torch.enable_grad():
        pts = x.detach().clone().requires_grad_(True)
        total = f(pts).sum()
        if not total.requires_grad:  # f does not depend on x (a polynomial of degree 0): a constant
            return 0.0
        (grad,) = torch.autograd.grad(total, pts)
    return float(grad.norm(dim=1).max())


def uniform_cube(n: int, d: int, generator: torch.Generator, device=None,
                 dtype=torch.float64) -> torch.Tensor:
    """n points uniform on [-1, 1]^d: (n, d)."""
    check_int_in_range(n, "n", 0)
    check_int_in_range(d, "d", 1)
    check_generator(generator)
    check_float_dtype(dtype)
    return (torch.rand(n, d, generator=generator, dtype=dtype) * 2 - 1).to(check_device(device))


def uniform_sphere(n: int, d: int, generator: torch.Generator, device=None,
                   dtype=torch.float64) -> torch.Tensor:
    """n points uniform on the unit sphere S^{d-1}: (n, d) (normalised Gaussians)."""
    check_int_in_range(n, "n", 0)
    check_int_in_range(d, "d", 1)
    check_generator(generator)
    check_float_dtype(dtype)
    g = torch.randn(n, d, generator=generator, dtype=dtype)
    return (g / g.norm(dim=1, keepdim=True)).to(check_device(device))


def random_subspace(d: int, k: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """An orthonormal basis of a uniformly random k-dimensional subspace of R^d: (d, k) (QR of a Gaussian)."""
    check_int_in_range(d, "d", 1)
    check_int_in_range(k, "k", 1, d)
    check_generator(generator)
    check_float_dtype(dtype)
    q, r = torch.linalg.qr(torch.randn(d, k, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(dtype)  # sign fix: a unique basis per draw


def uniform_subspace_cube(n: int, basis: torch.Tensor, generator: torch.Generator,
                          device=None) -> torch.Tensor:
    """n points uniform on span(basis) intersected with [-1, 1]^d: (n, d), by rejection from a bounding box.

    basis: (d, k) with orthonormal columns. Coordinates z in R^k are drawn uniformly from the box
    |z_j| <= ||basis[:, j]||_1 (which contains the polytope), kept when ||basis @ z||_inf <= 1.
    """
    check_int_in_range(n, "n", 0)
    check_generator(generator)
    device = check_device(device)
    if not isinstance(basis, torch.Tensor) or basis.dim() != 2 or basis.shape[1] > basis.shape[0]:
        raise ValueError("basis must be a (d, k) tensor with k <= d")
    check_float_tensor(basis, 2, "(d, k)", "basis")
    eye = torch.eye(basis.shape[1], dtype=basis.dtype, device=basis.device)
    if not torch.allclose(basis.T @ basis, eye, atol=1e-6):
        raise ValueError("basis must have orthonormal columns")
    basis_cpu = basis.detach().cpu()
    half_box = basis_cpu.abs().sum(dim=0)  # (k,)
    kept, total = [basis_cpu.new_empty(0, basis_cpu.shape[0])], 0
    while total < n:
        batch = max(1024, 2 * (n - total))
        unit = torch.rand(batch, basis_cpu.shape[1], generator=generator, dtype=basis_cpu.dtype)  # (batch, k)
        z = (unit * 2 - 1) * half_box
        x = z @ basis_cpu.T  # (batch, d)
        x = x[x.abs().amax(dim=1) <= 1]
        kept.append(x)
        total += x.shape[0]
    return torch.cat(kept)[:n].to(device)
