"""Sequence lengths: validation, the dense/ranked normal form the back ends run, masks and per-sequence reversal.

Everything here is time-major: tensors are (T, B, ·) and ``lengths`` is a CPU
int64 tensor of shape (B,), in the caller's batch order (never sorted).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_lengths(lengths, batch: int, steps: int) -> Tensor | None:
    """Validate ``lengths`` against a (T=steps, B=batch) input; ``None`` stays ``None``."""
    if lengths is None:
        return None
    if not isinstance(lengths, Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError) as err:
            raise TypeError(f"lengths must be a tensor or a list of ints, got {lengths!r}") from err
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.numel() != batch:
        raise ValueError(f"lengths must have shape ({batch},) to match the batch, got {tuple(lengths.shape)}")
    lengths = lengths.detach().to("cpu", torch.int64)
    if batch == 0:
        return lengths  # a batch of zero sequences (torch.nn returns an empty output)
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1:
        bad = int((lengths < 1).nonzero()[0])
        raise ValueError(f"lengths[{bad}] = {int(lengths[bad])}: every sequence needs at least one step")
    if high > steps:
        bad = int((lengths > steps).nonzero()[0])
        raise ValueError(
            f"lengths[{bad}] = {int(lengths[bad])} is longer than the input's {steps} time steps"
        )
    return lengths


def full_as_dense(lengths: Tensor | None, steps: int) -> Tensor | None:
    """``None`` where every sequence runs all ``steps`` (the call is dense), else ``lengths`` unchanged.

    The back ends run such a call as dense, so the tuner keys and times it as dense too: all of them ask here.
    """
    # min() over a list: µs cheaper than a tensor comparison on the per-call path.
    if lengths is not None and (lengths.numel() == 0 or min(lengths.tolist()) == steps):
        return None
    return lengths


def rank(lengths: Tensor) -> Tensor:
    """Row indices longest first, ties in batch order (stable): the order the packed kernels run rows in."""
    return torch.argsort(lengths, descending=True, stable=True)


def step_mask(lengths: Tensor, steps: int, device) -> Tensor:
    """(T, B, 1) boolean mask, True where step t is inside sequence b."""
    t = torch.arange(steps).unsqueeze(1)
    return (t < lengths.unsqueeze(0)).unsqueeze(2).to(device)


def reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """(T, B) index that reverses each sequence within its own length.

    Step t of sequence b maps to len_b - 1 - t; padding steps map to themselves, so
    the permutation is its own inverse.
    """
    t = torch.arange(steps).unsqueeze(1)
    flipped = lengths.unsqueeze(0) - 1 - t
    return torch.where(flipped >= 0, flipped, t)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse a (T, B, F) tensor along time, each sequence within its own length."""
    if lengths is None:
        return x.flip(0)
    index = reverse_index(lengths, x.shape[0]).to(x.device)
    return x.gather(0, index.unsqueeze(2).expand_as(x))


def last_valid(x: Tensor, lengths: Tensor | None) -> Tensor:
    """(B, F): each sequence's value at its own last step from a (T, B, F) tensor."""
    if lengths is None:
        return x[-1]
    index = (lengths - 1).to(x.device).view(1, -1, 1).expand(1, x.shape[1], x.shape[2])
    return x.gather(0, index).squeeze(0)
