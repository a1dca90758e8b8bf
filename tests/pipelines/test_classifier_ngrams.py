"""The n-gram path end to end: it trains, is saved with its config, and loads back to the same predictions."""

import json

import numpy as np
import pytest
import torch

from rnnkit.api.classifier import Classifier, train_classifier
from rnnkit.data.config import ClassifierDataConfig, read_file
from rnnkit.models.config import ClassifierConfig
from rnnkit.models.ngrams import NgramBag
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


def test_idf_bag_is_fitted_on_the_training_texts_and_saved_with_the_model(tiny_csv, tmp_path):
    data = ClassifierDataConfig(data=str(tiny_csv["train"]), valid_data=str(tiny_csv["valid"]), min_freq=1,
                                embeddings="random", max_length=6)
    model = ClassifierConfig(embedding_dim=8, hidden_size=8, ngram_buckets=512, ngram_weighting="idf")
    clf, summary = train_classifier(data, tmp_path / "run", model=model,
                                    train=TrainConfig(epochs=4, batch_size=16, lr=1e-2, progress=False))
    assert summary["valid_accuracy"] > 0.8
    loaded = Classifier.load(tmp_path / "run")
    assert loaded.model.config.ngram_weighting == "idf"
    # The saved idf is the one fitted on the training split as the model read it (max_length 6), nothing else.
    examples, _ = read_file(str(tiny_csv["train"]), data)
    refit = NgramBag(len(loaded.vocab), 512, 1, loaded.vocab.pad_id, weighting="idf")
    refit.fit_idf(loaded.encode(examples, with_labels=True).ids, max_length=6)
    torch.testing.assert_close(loaded.model.ngrams.idf, refit.idf, rtol=0, atol=0)
    assert float(loaded.model.ngrams.idf.min()) < float(loaded.model.ngrams.idf.max())
    texts = ["goal", "the bank and the market shares after a long year of profit with investors"]
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)


@pytest.mark.parametrize(("repeat", "chosen"), [(1, "count"), (12, "idf")])
def test_auto_weighting_is_settled_from_the_training_texts_and_saved(tiny_csv, tmp_path, repeat, chosen):
    # The tiny texts are sentence-length; twelve copies of each make documents of 100+ tokens.
    def stretch(path):
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [line.split(",", 1) for line in lines[1:]]
        out = tmp_path / f"{repeat}-{path.name}"
        out.write_text("\n".join([lines[0]] + [f"{y},{' '.join([t] * repeat)}" for y, t in rows]) + "\n")
        return out

    data = ClassifierDataConfig(data=str(stretch(tiny_csv["train"])), valid_data=str(stretch(tiny_csv["valid"])),
                                min_freq=1, embeddings="random")
    model = ClassifierConfig(embedding_dim=8, hidden_size=8, ngram_buckets=512, ngram_weighting="auto")
    train_classifier(data, tmp_path / "run", model=model,
                     train=TrainConfig(epochs=1, batch_size=16, lr=1e-2, progress=False))
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["model_config"]["ngram_weighting"] == chosen
    loaded = Classifier.load(tmp_path / "run")
    assert (loaded.model.ngrams.idf is not None) == (chosen == "idf")
    if chosen == "idf":
        assert float(loaded.model.ngrams.idf.max()) > 1.0  # fitted, not the ones it starts from
