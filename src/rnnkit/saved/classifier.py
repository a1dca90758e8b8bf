"""A trained classifier: ``Classifier.load(path)``, ``predict``, ``evaluate``, ``save``.

A saved classifier is a folder: ``model.safetensors`` and ``config.json`` (model config, vocabulary, tokenizer
settings, labels, metrics); ``rnnkit.pipelines.classifier.train_classifier`` makes one.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from rnnkit.data import EncodedDataset, Example, Vocabulary
from rnnkit.data.config import ClassifierDataConfig, read_file
from rnnkit.models.classifier import RNNClassifier, build_classifier
from rnnkit.models.config import classifier_config_from_saved
from rnnkit.saved.folders import build_saved, open_checkpoint
from rnnkit.saved.kinds import CLASSIFIER
from rnnkit.tasks.classification import ClassificationTask
from rnnkit.training import save_checkpoint


class Classifier:
    """A trained classifier with its tokenizer, vocabulary and labels."""

    kind = CLASSIFIER  # what config.json says and what serve, export and the CLI ask

    def __init__(self, model: RNNClassifier, tokenizer, vocab: Vocabulary, labels: list[str],
                 max_length: int | None, meta: dict | None = None):
        self.model, self.tokenizer, self.vocab, self.labels = model.eval(), tokenizer, vocab, labels
        self.max_length = max_length
        self.meta = meta or {}

    # -- persistence ----------------------------------------------------------
    def save(self, path: str | Path, **extra) -> Path:
        meta = {"kind": CLASSIFIER, "model_config": asdict(self.model.config), "vocab": self.vocab.to_dict(),
                "labels": self.labels, "tokenizer": self.tokenizer.to_config(), "max_length": self.max_length,
                **{k: v for k, v in self.meta.items() if k not in ("kind",)}, **extra}
        return save_checkpoint(path, self.model.state_dict(), meta)

    @classmethod
    def load(cls, path: str | Path, map_location: str = "cpu") -> Classifier:
        state, meta, vocab, tokenizer = open_checkpoint(path, CLASSIFIER, map_location)
        model = build_saved(path, meta, state, lambda saved: build_classifier(
            classifier_config_from_saved(saved), len(vocab), len(meta["labels"]), vocab.pad_id))
        return cls(model, tokenizer, vocab, list(meta["labels"]), meta.get("max_length"), meta)

    # -- use ------------------------------------------------------------------
    def encode(self, examples: list[Example], with_labels: bool) -> EncodedDataset:
        return EncodedDataset.from_examples(examples, self.tokenizer, self.vocab,
                                            self.labels if with_labels else None)

    def _task(self) -> ClassificationTask:
        dummy = EncodedDataset([[self.vocab.unk_id]], [0], ["-"])
        return ClassificationTask(dummy, None, self.labels, 1, self.max_length, pad_id=self.vocab.pad_id)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """(N, C) probabilities; an empty text is an error naming its position."""
        examples = []
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"texts[{i}] is empty: nothing to classify")
            examples.append(Example(text.strip(), None, f"texts:{i + 1}"))
        return self._task().predict_proba(self.model, self.encode(examples, with_labels=False))

    def predict(self, texts: list[str] | str, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """For each text, the ``top_k`` (label, probability) pairs, most likely first."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(top_k, int) or not 1 <= top_k <= len(self.labels):
            raise ValueError(f"top_k must be an int in [1, {len(self.labels)}], got {top_k!r}")
        probs = self.predict_proba(list(texts))
        out = []
        for row in probs:
            best = np.argsort(-row, kind="stable")[:top_k]
            out.append([(self.labels[j], float(row[j])) for j in best])
        return out

    def evaluate(self, examples: list[Example]) -> dict:
        """accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
        return self._task().report(self.model, self.encode(examples, with_labels=True))

    def evaluate_file(self, path: str, data_config: ClassifierDataConfig | None = None) -> dict:
        examples, skipped = read_file(path, data_config or ClassifierDataConfig())
        report = self.evaluate(examples)
        report["skipped"] = skipped
        return report
