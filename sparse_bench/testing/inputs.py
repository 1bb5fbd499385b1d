"""Seeded inputs for the contract clauses, and a global RNG that cannot leak into (or out of) a clause."""

from __future__ import annotations

import contextlib

import torch

TOKEN_VOCAB = 40  # token ids are drawn from [0, TOKEN_VOCAB): batches of 50 tokens repeat some ids


def tokens(num_tokens: int, d_model: int, seed: int, device="cpu", dtype: torch.dtype = torch.float32
           ) -> torch.Tensor:
    """(num_tokens, d_model) standard-normal tokens drawn on the CPU from ``seed`` (alike on every device)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_tokens, d_model, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def token_ids(num_tokens: int, seed: int, device="cpu") -> torch.Tensor:
    """(num_tokens,) int64 ids in [0, TOKEN_VOCAB) drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, TOKEN_VOCAB, (num_tokens,), generator=gen).to(device)


def permutation(num_tokens: int, seed: int, device="cpu") -> torch.Tensor:
    """(num_tokens,) int64 random permutation drawn from ``seed``."""
    return torch.randperm(num_tokens, generator=torch.Generator().manual_seed(seed)).to(device)


@contextlib.contextmanager
def global_rng_seeded(seed: int, device="cpu"):
    """Run the block with torch's global RNGs seeded to ``seed``, restoring their state afterwards.

    Two calls that must agree run under different seeds: a router or layer that draws from the global RNG
    instead of its own generator then fails deterministically, and the caller's RNG state is left untouched.
    """
    device = torch.device(device)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if (
        device.type == "cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
