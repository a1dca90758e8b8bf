"""A trained language model: ``LanguageModel.load(path)``, ``generate``, ``evaluate_text``, ``save``.

A saved language model is a folder like a classifier's: ``model.safetensors`` and ``config.json`` (model config,
vocabulary, tokenizer settings, metrics); ``rnnkit.pipelines.language_model.train_language_model`` makes one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import torch

from rnnkit.data import Vocabulary
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.generation import SamplingConfig, generate_pieces
from rnnkit.generation.config import MAX_TOKENS, TEMPERATURE
from rnnkit.models.config import LanguageModelConfig, from_saved
from rnnkit.models.language_model import RNNLanguageModel
from rnnkit.saved.folders import build_saved, open_checkpoint
from rnnkit.saved.kinds import LANGUAGE_MODEL
from rnnkit.tasks.language_model import LanguageModelTask
from rnnkit.training import save_checkpoint


class LanguageModel:
    """A trained language model with its tokenizer and vocabulary."""

    kind = LANGUAGE_MODEL  # what config.json says and what serve, export and the CLI ask

    def __init__(self, model: RNNLanguageModel, tokenizer, vocab: Vocabulary, meta: dict | None = None):
        self.model, self.tokenizer, self.vocab = model.eval(), tokenizer, vocab
        self.meta = meta or {}

    def save(self, path: str | Path) -> Path:
        meta = {**self.meta, "kind": LANGUAGE_MODEL, "model_config": asdict(self.model.config),
                "vocab": self.vocab.to_dict(), "tokenizer": self.tokenizer.to_config()}
        return save_checkpoint(path, self.model.state_dict(), meta)

    @classmethod
    def load(cls, path: str | Path, map_location: str = "cpu") -> LanguageModel:
        state, meta, vocab, tokenizer = open_checkpoint(path, LANGUAGE_MODEL, map_location)
        model = build_saved(path, meta, state, lambda saved: RNNLanguageModel(from_saved(LanguageModelConfig, saved),
                                                                               len(vocab), vocab.pad_id))
        return cls(model, tokenizer, vocab, meta)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.vocab.encode(self.tokenizer.tokenize(text)), dtype=torch.long)

    def generate_iter(self, prompt: str = "", max_tokens: int = MAX_TOKENS, temperature: float = TEMPERATURE,
                      top_k: int | None = None, top_p: float | None = None, stop: str | None = None,
                      seed: int | None = None) -> Iterator[str]:
        """Yield text pieces as they are sampled (the prompt is not repeated)."""
        sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
        return generate_pieces(self.model, self.tokenizer, self.vocab, prompt, max_tokens, sampling, stop, seed)

    def generate(self, prompt: str = "", max_tokens: int = MAX_TOKENS, **options) -> str:
        return "".join(self.generate_iter(prompt, max_tokens, **options))

    def evaluate_text(self, text: str) -> dict[str, float]:
        """Bits per character (or perplexity for words) over the whole text, state carried."""
        ids = self.encode(text)
        if ids.numel() < 2:
            raise ValueError("the text needs at least two tokens to score")
        unit = "char" if isinstance(self.tokenizer, CharTokenizer) else "word"
        task = LanguageModelTask(ids, ids, 1, 2, unit=unit)
        return task.evaluate(self.model, "valid")
