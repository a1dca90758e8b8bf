"""Sampling text from language models."""

from rnnkit.generation.generate import generate_pieces
from rnnkit.generation.sampling import SamplingConfig, filter_logits, sample_next

__all__ = ["SamplingConfig", "filter_logits", "sample_next", "generate_pieces"]
