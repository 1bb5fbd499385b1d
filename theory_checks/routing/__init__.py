"""Routing checks (docs/THEORY.md §C): Switch loss, capacity drops, maximum load, expert choice, Sinkhorn,
hash and LSH routing, each against an exact or closed-form prediction."""
