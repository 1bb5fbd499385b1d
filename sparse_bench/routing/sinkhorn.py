"""Sinkhorn routing (BASE-layer style balancing): top-k on the balanced transport plan of the router scores."""

from __future__ import annotations

import math

import torch

from ..gather import select_columns
from ..validation import check_int_in_range, check_positive_float
from .base import LearnedRouter, RouterCapabilities, expert_softmax, switch_load_balancing_loss, z_loss
from .plan import RoutingPlan, plan_from_token_choices


class SinkhornRouter(LearnedRouter):
    """Scale exp(logits / temperature) to row sums 1/T and column sums 1/E, then each token takes its top-k.

    The scaling runs in the log domain under no_grad; it stops after ``iterations`` or when the largest relative
    marginal error drops below ``tol``. Ties in the balanced matrix (a single token's row is exactly uniform) go to
    the higher router probability. Combine weight = the token's softmax probability for the chosen expert
    (so the gate still receives gradient). A lower temperature pushes the assignment toward exactly balanced loads.
    """

    def __init__(
        self,
        d_model: int,
        num_experts: int,
        k: int = 1,
        iterations: int = 100,
        tol: float = 1e-4,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__(d_model, num_experts, generator=generator)
        self.k = check_int_in_range(k, "k", 1, num_experts)
        self.iterations = check_int_in_range(iterations, "iterations", 1)
        self.tol = check_positive_float(tol, "tol")
        self.temperature = check_positive_float(temperature, "temperature")

    @property
    def capabilities(self) -> RouterCapabilities:
        return RouterCapabilities(learned=True, drops_tokens=False, assignments_per_token=self.k)

    def transport(self, logits: torch.Tensor) -> tuple[torch.Tensor, int, float]:
        """logits: (T, E). Returns (P, iterations used, max relative marginal error); P (T, E) sums to 1."""
        T, E = logits.shape  # tokens, experts
        if T == 0:
            return logits.new_zeros(0, E), 0, 0.0
        with torch.no_grad():
            log_p = logits.detach() / self.temperature  # (T, E)
            if not bool(torch.isfinite(log_p).all()):
                raise ValueError(f"logits / temperature overflows at temperature={self.temperature!r}: "
                                 f"the largest |logit| is {float(logits.detach().abs().max()):.3g}; use a "
                                 f"larger temperature")
            log_t, log_e = math.log(T), math.log(E)
            error = float("inf")
            used = 0
            for used in range(1, self.iterations + 1):
                log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True) - log_t  # rows -> 1/T
                log_p = log_p - torch.logsumexp(log_p, dim=0, keepdim=True) - log_e  # columns -> 1/E
                row_error = (torch.logsumexp(log_p, dim=1) + log_t).exp().sub(1).abs().max()
                error = float(row_error)  # columns are exact after the last step
                if error < self.tol:
                    break
            return log_p.exp(), used, error

    def plan_from_logits(self, logits: torch.Tensor) -> RoutingPlan:
        """logits: (T, E) float. Returns a plan with T*k assignments."""
        self.check_logits(logits)
        T, E = logits.shape
        probs = expert_softmax(logits)  # (T, E)
        balanced, used, error = self.transport(logits)
        with torch.no_grad():
            by_prob = torch.argsort(probs.detach(), dim=-1, descending=True, stable=True)  # (T, E)
            by_balance = torch.argsort(balanced.gather(1, by_prob), dim=-1, descending=True, stable=True)
            chosen = by_prob.gather(1, by_balance)[:, : self.k]  # (T, k): ties go to the higher probability
        weight = select_columns(probs, chosen)  # (T, k), differentiable
        aux = {
            "z_loss": z_loss(logits),
            "sinkhorn_iterations": used,
            "sinkhorn_marginal_error": error,
        }
        plan = plan_from_token_choices(chosen, weight, E, aux=aux)
        plan.aux["expert_load"] = plan.expert_counts
        plan.aux["load_balancing_loss"] = switch_load_balancing_loss(plan.expert_counts, probs)
        return plan
