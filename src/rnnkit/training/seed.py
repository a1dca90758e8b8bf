"""Seeding: one call makes python, numpy and torch draw the same numbers again.

Global seeding covers code that uses the default generators (weight init,
dropout, ``torch.randperm`` without a generator). Data pipelines should rather
own a ``torch.Generator`` (``make_generator``) so their shuffling does not shift
when some unrelated code draws one more random number.
"""

from __future__ import annotations

import random

import numpy as np
import torch

# numpy's legacy global seed accepts values below 2**32 only.
_MAX_SEED = 2**32 - 1


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {_MAX_SEED}], got {seed!r}")
    return seed


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    # torch.manual_seed also seeds all CUDA devices when CUDA is present.
    torch.manual_seed(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``, independent of the global one."""
    _check_seed(seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
