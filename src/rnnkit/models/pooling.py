"""Pooling a sequence of states into one vector, over each sequence's valid steps only.

Shapes: outputs (B, T, F) batch-first, zero past each length; lengths (B,);
h_last (B, F), each sequence's final state (both directions for a bidirectional layer).
"""

from __future__ import annotations

import torch
from torch import Tensor

POOLINGS = ("last", "mean", "max")


def parse_pooling(spec: str) -> tuple[str, ...]:
    """'max+mean' -> ('max', 'mean'); names a bad part and the choices."""
    parts = tuple(p.strip() for p in str(spec).split("+") if p.strip())
    if not parts:
        raise ValueError(f"pooling must name one or more of {list(POOLINGS)} joined by '+', got {spec!r}")
    for p in parts:
        if p not in POOLINGS:
            raise ValueError(f"pooling part {p!r} in {spec!r} is not one of {list(POOLINGS)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"pooling {spec!r} names a part twice")
    return parts


def pool(outputs: Tensor, lengths: Tensor, h_last: Tensor, parts: tuple[str, ...]) -> Tensor:
    """Concatenate the requested poolings: (B, len(parts)·F)."""
    pooled = []
    valid = None
    for part in parts:
        if part == "last":
            pooled.append(h_last)
        elif part == "mean":
            # Outputs are zero past each length, so the plain sum is the sum over valid steps.
            pooled.append(outputs.sum(1) / lengths.to(outputs.device, outputs.dtype).unsqueeze(1))
        else:
            if valid is None:
                steps = torch.arange(outputs.shape[1], device=outputs.device)
                valid = (steps.unsqueeze(0) < lengths.to(outputs.device).unsqueeze(1)).unsqueeze(2)
            pooled.append(outputs.masked_fill(~valid, float("-inf")).amax(1))
    return torch.cat(pooled, dim=1)
