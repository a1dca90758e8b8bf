"""How to sample: one typed config, and the defaults every way to ask for a sample shares (torch-free, so the
command line is generated from it without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass

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
