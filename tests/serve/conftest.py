"""Tiny models trained once per session (seconds): an LSTM classifier on generated topic sentences, a char LSTM LM."""

from __future__ import annotations

import random

import pytest

from rnnkit.api.classifier import train_classifier
from rnnkit.api.data_config import ClassifierDataConfig
from rnnkit.api.language_model import train_language_model
from rnnkit.models.config import ClassifierConfig, LanguageModelConfig
from rnnkit.training import TrainConfig

WORDS = {
    "sport": ["match", "goal", "team", "coach", "league", "striker", "season"],
    "tech": ["software", "chip", "computer", "network", "phone", "internet", "data"],
    "money": ["shares", "bank", "profit", "market", "rates", "investors", "economy"],
}
FILLER = ["the", "a", "of", "and", "today", "new", "said", "after", "with", "report", "people", "year"]
SONNET = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 30


def _rows(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(WORDS))
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 14))]
        for _ in range(2):
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS[label]))
        rows.append(f"{label},{' '.join(words)}")
    return rows


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-clf")
    paths = {}
    for split, n, seed in (("train", 240, 0), ("valid", 60, 1)):
        paths[split] = root / f"{split}.csv"
        paths[split].write_text("\n".join(["label,text", *_rows(n, seed)]) + "\n", encoding="utf-8")
    data = ClassifierDataConfig(data=str(paths["train"]), valid_data=str(paths["valid"]), min_freq=1,
                                embeddings="random")
    # An LSTM, bidirectional, two layers: every view of the explorer (c, four gates, two directions) has data.
    model = ClassifierConfig(cell="lstm", embedding_dim=12, hidden_size=10, num_layers=2, bidirectional=True)
    train_classifier(data, root / "news", model=model,
                     train=TrainConfig(epochs=8, batch_size=16, lr=1e-2, seed=0, progress=False))
    return root / "news"


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-lm")
    corpus = root / "sonnet.txt"
    corpus.write_text(SONNET, encoding="utf-8")
    train_language_model(str(corpus), root / "poet",
                         model=LanguageModelConfig(cell="lstm", embedding_dim=8, hidden_size=24, num_layers=2,
                                                   dropout=0.0),
                         train=TrainConfig(epochs=15, batch_size=8, lr=1e-2, progress=False, patience=None), bptt=32)
    return root / "poet"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def client_for(app):
    """An httpx client that calls the ASGI app in-process (no socket)."""
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rnnkit.test")
