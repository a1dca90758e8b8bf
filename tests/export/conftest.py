"""Tiny in-memory classifiers and language models, saved as the pipelines save them (no training needed)."""

import os

import pytest
import torch

from rnnkit.api.classifier import Classifier
from rnnkit.api.language_model import LanguageModel
from rnnkit.data import Vocabulary
from rnnkit.data.tokenizers import CharTokenizer, WordTokenizer
from rnnkit.models.classifier import build_classifier
from rnnkit.models.config import ClassifierConfig, LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel

WORDS = ["match", "goal", "team", "bank", "profit", "market", "chip", "phone", "data", "the", "a", "of"]
LABELS = ["money", "sport", "tech"]
CHARS = list("abcdefgh \n.")
# The recurrence back end of these models: tests/engine/test_arch_matrix.py sets "fused" to check the export
# against the fused kernels of each x86 build.
BACKEND = os.environ.get("RNNKIT_TEST_BACKEND", "auto")


def tiny_classifier(max_length=30, **config) -> Classifier:
    vocab = Vocabulary(["<pad>", "<unk>", *WORDS])
    options = {"embedding_dim": 6, "hidden_size": 5, "backend": BACKEND, **config}
    net = build_classifier(ClassifierConfig(**options), len(vocab), len(LABELS), vocab.pad_id)
    return Classifier(net, WordTokenizer(), vocab, LABELS, max_length)


def tiny_language_model(**config) -> LanguageModel:
    vocab = Vocabulary(["<pad>", "<unk>", *CHARS])
    options = {"embedding_dim": 6, "hidden_size": 5, "num_layers": 2, "backend": BACKEND, **config}
    return LanguageModel(RNNLanguageModel(LanguageModelConfig(**options), len(vocab), vocab.pad_id),
                         CharTokenizer(), vocab)


@pytest.fixture
def saved_classifier(tmp_path):
    torch.manual_seed(0)
    return tiny_classifier(cell="lstm", num_layers=2).save(tmp_path / "clf" / "model").parent


@pytest.fixture
def saved_language_model(tmp_path):
    torch.manual_seed(0)
    return tiny_language_model(cell="gru").save(tmp_path / "lm" / "model").parent
