"""Sampling text from language models."""

from typing import TYPE_CHECKING

from rnnkit.lazy_names import lazy_names

# Imported on first use: the sampling config the command line is generated from lives in this package, and reading
# it must not load torch.
_HOMES = {
    "SamplingConfig": "rnnkit.generation.config",
    **dict.fromkeys(["filter_logits", "sample_next"], "rnnkit.generation.sampling"),
    "generate_pieces": "rnnkit.generation.generate",
}
__getattr__, __dir__ = lazy_names(__name__, _HOMES)

if TYPE_CHECKING:
    from rnnkit.generation.config import SamplingConfig
    from rnnkit.generation.generate import generate_pieces
    from rnnkit.generation.sampling import filter_logits, sample_next

__all__ = ["SamplingConfig", "filter_logits", "sample_next", "generate_pieces"]
