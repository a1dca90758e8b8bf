"""Pooling a sequence of states into one vector, over each sequence's valid steps only.

Shapes: outputs (B, T, F) batch-first, zero past each length; lengths (B,);
h_last (B, F), each sequence's final state (both directions for a bidirectional layer).
"""

from __future__ import annotations

import torch
from torch import Tensor


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
