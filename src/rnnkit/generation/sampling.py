"""Choosing the next token from logits: temperature, top-k, top-p, banned ids.

Shapes: logits (B, V) → ids (B,). Banned ids (``<pad>``, ``<unk>``, other specials)
get -inf before anything else, so they can never be drawn, whatever the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.config_fields import help_field as _help
from rnnkit.validation import check_positive_int

# The defaults of every way to ask for a sample (LanguageModel.generate, `rnnkit generate`, POST /v1/generate).
# 200 tokens: what the Python and HTTP APIs always gave; the CLI's 500 was the odd one out.
MAX_TOKENS = 200
TEMPERATURE = 0.8


@dataclass
class SamplingConfig:
    temperature: float = _help("softmax temperature; 0 means greedy", default=TEMPERATURE)
    top_k: int | None = _help("sample only among the k most likely tokens", default=None)
    top_p: float | None = _help("nucleus sampling: smallest set with mass ≥ p", default=None)

    def __post_init__(self):
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, int | float) \
                or not 0 <= self.temperature < float("inf"):
            raise ValueError(f"temperature must be a number ≥ 0, got {self.temperature!r}")
        if self.top_k is not None:
            check_positive_int("top_k", self.top_k)
        if self.top_p is not None and not (isinstance(self.top_p, int | float) and 0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")


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
