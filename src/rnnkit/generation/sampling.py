"""Choosing the next token from logits: temperature, top-k, top-p, banned ids.

Shapes: logits (B, V) → ids (B,). Banned ids (``<pad>``, ``<unk>``, other specials)
get -inf before anything else, so they can never be drawn, whatever the settings.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.generation.config import SamplingConfig


def filter_logits(logits: Tensor, config: SamplingConfig, banned: Tensor | None = None) -> Tensor:
    """Logits with -inf wherever a token may not be drawn."""
    logits = logits.clone()
    if banned is not None and banned.numel():
        logits[:, banned] = float("-inf")
    if config.top_k is not None and config.top_k < logits.shape[1]:
        kth = logits.topk(config.top_k, dim=1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p is not None and config.top_p < 1:
        scaled = logits / config.temperature if config.temperature > 0 else logits
        sorted_logits, order = scaled.sort(dim=1, descending=True)
        probs = sorted_logits.softmax(dim=1)
        # Drop a token when the mass before it already reaches top_p. The most likely one always stays, said
        # outright: a top_p below float32's smallest number rounds to 0, and "mass before it ≥ 0" holds for it too.
        drop_sorted = (probs.cumsum(dim=1) - probs) >= config.top_p
        drop_sorted[:, 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: Tensor, config: SamplingConfig, banned: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Draw one id per row of (B, V) logits."""
    logits = filter_logits(logits.float(), config, banned)
    if config.temperature == 0:
        return logits.argmax(dim=1)
    probs = (logits / config.temperature).softmax(dim=1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
