"""The n-gram path end to end: it trains, is saved with its config, and loads back to the same predictions."""

import json

import numpy as np
import pytest

from rnnkit.api.classifier import Classifier, train_classifier
from rnnkit.api.data_config import ClassifierDataConfig
from rnnkit.models.config import ClassifierConfig
from rnnkit.training import TrainConfig


@pytest.mark.parametrize("ngrams", ["logits", "features"])
def test_ngram_classifier_trains_saves_and_loads(tiny_csv, tmp_path, ngrams):
    data = ClassifierDataConfig(data=str(tiny_csv["train"]), valid_data=str(tiny_csv["valid"]), min_freq=1,
                                embeddings="random")
    model = ClassifierConfig(embedding_dim=8, hidden_size=8, ngrams=ngrams, ngram_buckets=512, ngram_dim=8)
    clf, summary = train_classifier(data, tmp_path / "run", model=model,
                                    train=TrainConfig(epochs=4, batch_size=16, lr=1e-2, progress=False))
    assert summary["valid_accuracy"] > 0.8  # chance is 1/3
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["model_config"]["ngrams"] == ngrams and saved["model_config"]["ngram_buckets"] == 512
    loaded = Classifier.load(tmp_path / "run")
    assert loaded.model.ngrams.table.weight.shape[0] == len(loaded.vocab) + 512
    texts = ["goal", "the bank and the market shares after a long year of profit with investors"]
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)
    alone = np.vstack([loaded.predict_proba([t]) for t in texts])  # the short text padded or not
    np.testing.assert_allclose(loaded.predict_proba(texts), alone, atol=1e-6)
